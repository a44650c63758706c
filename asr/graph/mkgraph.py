"""``asr mkgraph``: a model dir's decoding graph, compiled or copied from a model that shares it.

A graph depends on the tree (topology, context dependency, phone set), the lexicon and word
table, the grammar and the compile options, not on the acoustic model's parameters: a DNN
trained on a GMM's tied states decodes with that GMM's graph (Kaldi's exp/tri3/graph). The
inputs are fingerprinted into the graph so that a copy is made only when they agree.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from asr.acoustic import load_model
from asr.graph.compile import DecodingGraph, compile_graph
from asr.hmm.alignments import tree_fingerprint
from asr.lang.arpa import NgramLM, lm_to_automaton, read_arpa, unigram_arpa_text
from asr.model_dir import fingerprint
from asr.utils import AsrError, ensure_dir, read_utf8, write_text_atomic

log = logging.getLogger(__name__)


def graph_inputs_fingerprint(model, model_dir: Path, arpa: Path, opts: dict) -> str:
    """SHA-256 (16 hex digits) of everything the graph of ``model`` is made of."""
    h = hashlib.sha256(json.dumps({"tree": tree_fingerprint(model.trans, model.ctx, model.phones), "opts": opts,
                                   "silence": model.silence_phone}, sort_keys=True).encode())
    for path in (model_dir / "lexicon.txt", model_dir / "words.txt", arpa):
        h.update(hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"-")
    return h.hexdigest()[:16]


def make_graph(model_dir: str | Path, lang_dir: str | Path, opts: dict, reuse: str | Path | None = None) -> None:
    """Write ``model_dir/graph.npz``: ``reuse``'s graph when made of the same inputs, else compiled
    from the model, its lexicon and ``lang_dir/G.arpa`` (``opts``: the ``[graph]`` options)."""
    model_dir, arpa = Path(model_dir), Path(lang_dir) / "G.arpa"
    model = load_model(model_dir)
    inputs = graph_inputs_fingerprint(model, model_dir, arpa, opts)
    if reuse is not None and (Path(reuse) / "graph.npz").is_file():
        other = DecodingGraph.load(Path(reuse) / "graph.npz")
        if other.inputs_fingerprint == inputs:
            other.model_fingerprint = fingerprint(model_dir)
            other.save(model_dir / "graph.npz")
            log.info("graph of %s reused for %s (same tree, lexicon and LM)", reuse, model_dir)
            return
        log.info("graph of %s not reusable for %s (another tree, lexicon or LM): compiling", reuse, model_dir)
    _compile(model, model_dir, read_arpa(arpa), opts, inputs).save(model_dir / "graph.npz")


def _compile(model, model_dir: Path, ngram: NgramLM, opts: dict, inputs: str) -> DecodingGraph:
    lm = lm_to_automaton(ngram, set(model.lexicon.words()))
    graph = compile_graph(model.lexicon, model.words, model.phones, lm, model.trans, model.ctx,
                          model.silence_phone, opts.get("sil_prob", 0.5))
    graph.model_fingerprint = fingerprint(model_dir)
    graph.inputs_fingerprint = inputs
    return graph


def read_word_list(path: str | Path) -> list[str]:
    """The words of a list file (whitespace-separated, any lines), in first-seen order."""
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"missing word list {path}")
    words = list(dict.fromkeys(read_utf8(path).split()))
    special = [w for w in words if w in ("<s>", "</s>", "<eps>", "#0")]
    if special:
        raise AsrError(f"{path}: {special[0]} is a reserved symbol, not a word")
    if not words:
        raise AsrError(f"{path}: the word list is empty")
    return words


def grammar_graph(model_dir: str | Path, model, words: str | Path | None = None, lm: str | Path | None = None,
                  opts: dict | None = None) -> DecodingGraph:
    """The model's graph for another grammar, compiled on first use and cached in
    ``<model_dir>/graphs/<key>/``: a uniform loop over the words of list file ``words`` (any
    word outside it can never be output), or the ARPA LM ``lm``. Every listed word must
    have a pronunciation in the model's lexicon; LM words without one are dropped."""
    if (words is None) == (lm is None):
        raise AsrError("give a word list or an LM for the grammar, not both")
    owner = Path(model_dir)
    known = set(model.lexicon.words())
    if words is not None:
        vocab = read_word_list(words)
        missing = [w for w in vocab if w not in known]
        if missing:
            raise AsrError(f"{words}: {len(missing)} word(s) not in the lexicon of {owner}: "
                           f"{' '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        arpa_text = unigram_arpa_text(vocab)
    else:
        lm = Path(lm)
        arpa_text = read_utf8(lm) if lm.is_file() else ""
        if not arpa_text:
            raise AsrError(f"missing or empty LM {lm}")
    opts = opts or {}
    key = hashlib.sha256(json.dumps([arpa_text, opts], sort_keys=True).encode()).hexdigest()[:16]
    cache = owner / "graphs" / key
    if (cache / "graph.npz").is_file():
        graph = DecodingGraph.load(cache / "graph.npz")
        if graph.model_fingerprint == fingerprint(owner):
            log.debug("grammar graph of %s from %s", owner, cache)
            return graph
    ensure_dir(cache)
    write_text_atomic(cache / "G.arpa", arpa_text)
    ngram = read_arpa(cache / "G.arpa")
    dropped = ngram.vocabulary() - known - {"<s>", "</s>"}
    if dropped:
        log.warning("%s: %d LM word(s) have no pronunciation in %s and are left out: %s", lm, len(dropped),
                    owner, " ".join(sorted(dropped)[:10]))
    log.info("compiling %s's graph for %s (cached in %s)", owner, words or lm, cache)
    graph = _compile(model, owner, ngram, opts, graph_inputs_fingerprint(model, owner, cache / "G.arpa", opts))
    graph.save(cache / "graph.npz")
    return graph
