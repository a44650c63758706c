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
from asr.lang.arpa import lm_to_automaton, read_arpa
from asr.model_dir import fingerprint

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
    lm = lm_to_automaton(read_arpa(arpa), set(model.lexicon.words()))
    graph = compile_graph(model.lexicon, model.words, model.phones, lm, model.trans, model.ctx,
                          model.silence_phone, opts.get("sil_prob", 0.5))
    graph.model_fingerprint = fingerprint(model_dir)
    graph.inputs_fingerprint = inputs
    graph.save(model_dir / "graph.npz")
