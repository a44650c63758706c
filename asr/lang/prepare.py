"""Kaldi's prepare_lang: dictionary dir + LM -> lang dir.

Input (``data/local`` as written by the corpus preparers):
    lexicon.txt, nonsilence_phones.txt, silence_phones.txt
Output lang dir:
    phones.txt, words.txt, lexicon.txt, topo.json, silence_phones.txt, G.arpa
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from asr.hmm.topology import Topology
from asr.lang.arpa import read_arpa, write_unigram_arpa
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.utils import AsrError, Config, ensure_dir, read_json, read_utf8, write_text_atomic

log = logging.getLogger(__name__)


def _read_list(path: Path) -> list[str]:
    if not path.exists():
        raise AsrError(f"missing {path}")
    return [l.split()[0] for l in read_utf8(path).splitlines() if l.strip()]


POSITIONS = ("_B", "_E", "_I", "_S")


@dataclass
class LangConfig(Config):
    """A recipe's [lang] section: the HMM topology and phone set of ``prepare_lang``."""

    nonsil_states: int = 3
    sil_states: int = 5
    sil_topology: str = "kaldi"
    position_dependent: bool = False


def mark_positions(lexicon: Lexicon, silence: set[str]) -> Lexicon:
    """Kaldi's word-position-dependent phones: _B(egin) _I(nside) _E(nd) _S(ingleton).

    Silence phones stay unmarked. The monophone system then has separate models for a
    phone at a word edge and inside a word, and word boundaries can be read off phones.
    """
    def mark(pron: list[str]) -> list[str]:
        if len(pron) == 1:
            return [pron[0] if pron[0] in silence else pron[0] + "_S"]
        tags = ["_B"] + ["_I"] * (len(pron) - 2) + ["_E"]
        return [p if p in silence else p + t for p, t in zip(pron, tags)]

    return Lexicon({w: [mark(p) for p in alts] for w, alts in lexicon.prons.items()})


def prepare_lang(dict_dir: str | Path, out_dir: str | Path, lm: str | Path | None = None,
                 nonsil_states: int = 3, sil_states: int = 5, sil_topology: str = "kaldi",
                 position_dependent: bool = False) -> None:
    """Write a lang dir.

    Args:
        dict_dir: folder with lexicon.txt, nonsilence_phones.txt, silence_phones.txt.
        lm: an ARPA file; None builds a uniform word loop over the lexicon's words.
        nonsil_states / sil_states: HMM states per non-silence / silence phone.
        sil_topology: ``kaldi`` (Kaldi's silence HMM) or ``left-to-right``.
        position_dependent: mark non-silence phones by word position (Kaldi's default).
    """
    dict_dir, out_dir = Path(dict_dir), Path(out_dir)
    lexicon = Lexicon.read(dict_dir / "lexicon.txt")
    sil_phones = _read_list(dict_dir / "silence_phones.txt")
    nonsil = _read_list(dict_dir / "nonsilence_phones.txt")
    unknown = set(lexicon.phones()) - set(sil_phones) - set(nonsil)
    if unknown:
        raise AsrError(f"{dict_dir}/lexicon.txt uses phones not in the phone lists: {' '.join(sorted(unknown))}")
    if position_dependent:
        lexicon = mark_positions(lexicon, set(sil_phones))
        nonsil = [p + t for p in nonsil for t in POSITIONS]
    phones = SymbolTable(sil_phones + sorted(nonsil))
    words = SymbolTable(lexicon.words())
    ensure_dir(out_dir)
    phones.write(out_dir / "phones.txt")
    words.write(out_dir / "words.txt")
    lexicon.write(out_dir / "lexicon.txt")
    write_text_atomic(out_dir / "silence_phones.txt", "".join(p + "\n" for p in sil_phones))
    topo = Topology.default([phones.id(p) for p in phones.symbols[1:]], [phones.id(p) for p in sil_phones],
                            nonsil_states, sil_states, sil_topology)
    write_text_atomic(out_dir / "topo.json", json.dumps(topo.to_dict()) + "\n")
    if lm is None:
        write_unigram_arpa(out_dir / "G.arpa", [w for w in lexicon.words() if not w.startswith("<")])
    else:
        shutil.copyfile(lm, out_dir / ".G.arpa.tmp")
        (out_dir / ".G.arpa.tmp").replace(out_dir / "G.arpa")
    ngram = read_arpa(out_dir / "G.arpa")
    oov = ngram.vocabulary() - set(lexicon.words()) - {"<s>", "</s>"}
    if oov:
        log.warning("%d LM word(s) are not in the lexicon: %s", len(oov), " ".join(sorted(oov)[:20]))
    log.info("lang %s: %d phones, %d words, %d-gram LM", out_dir, len(phones) - 1, len(words) - 1, ngram.order)


@dataclass
class Lang:
    """A lang dir read back: what training needs from it."""

    phones: SymbolTable
    words: SymbolTable
    lexicon: Lexicon
    topo: Topology
    silence_phones: list[str]

    @classmethod
    def load(cls, lang_dir: str | Path) -> "Lang":
        d = Path(lang_dir)
        if not (d / "topo.json").exists():
            raise AsrError(f"{d} is not a lang dir (no topo.json); run the lang stage (asr lang)")
        return cls(SymbolTable.read(d / "phones.txt"), SymbolTable.read(d / "words.txt"),
                   Lexicon.read(d / "lexicon.txt"), Topology.from_dict(read_json(d / "topo.json")),
                   _read_list(d / "silence_phones.txt"))
