"""CMU AN4 (census / alphanumeric): 948 train and 130 test utterances, 16 kHz big-endian raw."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from asr.corpora.download import extract, find_or_download, write_lang_sources
from asr.datadir import DataDir
from asr.utils import AsrError, atomic_open, log, read_utf8

ARCHIVE = "an4_raw.bigendian.tar.gz"
URL = "http://www.speech.cs.cmu.edu/databases/an4/an4_raw.bigendian.tar.gz"
UNK = "<UNK>"
_TRAILER = re.compile(r"\(([^()\s]+)\)\s*$")
_ALT = re.compile(r"\(\d+\)$")


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise AsrError(f"AN4 file not found: {path}")
    return [ln.strip() for ln in read_utf8(path).splitlines() if ln.strip()]


def read_an4_dic(path: Path) -> list[tuple[str, list[str]]]:
    """Read ``an4.dic``; alternates ``WORD(2)`` become extra lines of ``WORD``.

    Returns (word, phones) pairs in file order, exact duplicates removed.
    """
    out: list[tuple[str, list[str]]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for n, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        if len(parts) < 2:
            raise AsrError(f"{path}:{n}: word '{parts[0]}' has no pronunciation")
        word = _ALT.sub("", parts[0])
        key = (word, tuple(parts[1:]))
        if key not in seen:
            seen.add(key)
            out.append((word, parts[1:]))
    return out


def _utt_id(spk: str, name: str) -> str:
    """``an251-fash-b`` of speaker ``fash`` -> ``fash-an251-b`` (speaker-prefixed, no repeat)."""
    parts = name.split("-")
    if len(parts) == 3 and parts[1] == spk:
        return f"{spk}-{parts[0]}-{parts[2]}"
    return f"{spk}-{name}"


def _prepare_split(
    etc: Path, wav_root: Path, part: str, vocab: set[str], unknown: set[str]
) -> DataDir:
    """Build a DataDir from ``an4_<part>.transcription`` + ``an4_<part>.fileids``."""
    trans_path = etc / f"an4_{part}.transcription"
    ids_path = etc / f"an4_{part}.fileids"
    trans, fileids = _read_lines(trans_path), _read_lines(ids_path)
    if len(trans) != len(fileids):
        raise AsrError(f"{trans_path}: {len(trans)} lines but {ids_path} has {len(fileids)}")
    d = DataDir()
    for n, (line, fid) in enumerate(zip(trans, fileids), 1):
        m = _TRAILER.search(line)
        if not m:
            raise AsrError(f"{trans_path}:{n}: no trailing (utterance) name")
        name = m.group(1)
        fid_parts = fid.split("/")
        if len(fid_parts) != 3 or fid_parts[2] != name:
            raise AsrError(f"{ids_path}:{n}: '{fid}' does not match transcription utterance '{name}'")
        spk = fid_parts[1]
        utt = _utt_id(spk, name)
        if not utt.startswith(spk) or utt in d.wav:
            raise AsrError(f"{ids_path}:{n}: bad or duplicate utterance id '{utt}'")
        words = [w for w in line[: m.start()].split() if w not in ("<s>", "</s>")]
        for i, w in enumerate(words):
            if w not in vocab:
                unknown.add(w)
                words[i] = UNK
        raw = wav_root / f"{fid}.raw"
        if not raw.is_file():
            raise AsrError(f"{ids_path}:{n}: audio file missing for '{name}': {raw}")
        d.wav[utt] = str(raw)
        d.text[utt] = words
        d.utt2spk[utt] = spk
    return d


def prepare_an4(
    out_dir: Path, mirror: str | Path | None = None, work_dir: Path = Path("data/local")
) -> dict[str, DataDir]:
    """Prepare ``out_dir/{train,test}`` and the lang sources in ``out_dir/local``.

    ``out_dir/local`` gets ``lexicon.txt`` (from an4.dic plus ``<UNK> SIL``), ``lm.arpa``
    (an4.ug.lm verbatim), ``nonsilence_phones.txt`` and ``silence_phones.txt``. Transcript
    words missing from the lexicon are mapped to ``<UNK>`` with a warning. wav.scp holds
    absolute ``.raw`` paths (16 kHz big-endian PCM; read with :func:`asr.audio.read_audio`).
    """
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    archive = find_or_download(ARCHIVE, URL, mirror)
    an4 = (extract(archive, work_dir) / "an4").resolve()
    etc, wav_root = an4 / "etc", an4 / "wav"

    lexicon = read_an4_dic(etc / "an4.dic")
    vocab = {w for w, _ in lexicon}
    phones = _read_lines(etc / "an4.phone")
    nonsil = [p for p in phones if p != "SIL"]
    for w, prons in lexicon:
        bad = [p for p in prons if p not in phones]
        if bad:
            raise AsrError(f"{etc / 'an4.dic'}: word '{w}' uses phones not in an4.phone: {' '.join(bad)}")

    result: dict[str, DataDir] = {}
    for name, part in (("train", "train"), ("test", "test")):
        unknown: set[str] = set()
        d = _prepare_split(etc, wav_root, part, vocab, unknown)
        if unknown:
            log.warning("an4 %s: words not in an4.dic mapped to %s: %s", name, UNK, " ".join(sorted(unknown)))
        d.write(out_dir / name)
        n_words = sum(len(w) for w in d.text.values())
        log.info("an4 %s: %d utterances, %d speakers, %d words", name, len(d.wav), len(d.spk2utt), n_words)
        result[name] = d

    local = out_dir / "local"
    write_lang_sources(local, lexicon + [(UNK, ["SIL"])], nonsil)
    # The LM is copied verbatim: its prose header before \data\ is the reader's business.
    with atomic_open(local / "lm.arpa", "wb") as f, open(etc / "an4.ug.lm", "rb") as src:
        shutil.copyfileobj(src, f)
    return result


def prepare_an4_lang_sources(out_dir: Path) -> dict[str, Path]:
    """Paths of the lang sources :func:`prepare_an4` writes under ``out_dir/local``."""
    local = Path(out_dir) / "local"
    return {
        "lexicon": local / "lexicon.txt",
        "lm": local / "lm.arpa",
        "nonsilence_phones": local / "nonsilence_phones.txt",
        "silence_phones": local / "silence_phones.txt",
    }
