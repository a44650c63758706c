"""Speed of the monophone hot paths on synthetic data (no corpus needed).

    .venv/bin/python bench/bench_mono.py

Prints frames/s of GMM log-likelihoods (all pdfs), of batched Viterbi alignment and of
the beam decoder on an AN4-sized word-loop graph. Figures belong here, not in tests.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from asr.decode.config import DecoderConfig
from asr.decode.decoder import Decoder
from asr.gmm.diag_gmm import DiagGmmSet
from asr.graph.compile import compile_graph
from asr.hmm.align import align_utterances
from asr.hmm.align_graph import build_align_graph
from asr.hmm.context import MonophoneContext
from asr.hmm.topology import Topology, TransitionModel
from asr.lang.arpa import lm_to_automaton, read_arpa, write_unigram_arpa
from asr.lang.lexicon import Lexicon, SymbolTable


def main() -> None:
    rng = np.random.default_rng(0)
    phone_names = ["SIL"] + [f"P{i}" for i in range(38)]
    phones = SymbolTable(phone_names)
    topo = Topology.default(list(range(1, len(phone_names) + 1)), [1])
    trans = TransitionModel(topo)
    ctx = MonophoneContext(topo)
    words = {f"W{i}": [[phone_names[rng.integers(1, len(phone_names))] for _ in range(rng.integers(2, 7))]] for i in range(100)}
    lexicon = Lexicon(words)
    D, M = 39, 10
    gmm = DiagGmmSet(rng.standard_normal((ctx.num_pdfs, M, D)), np.ones((ctx.num_pdfs, M, D)),
                     np.full((ctx.num_pdfs, M), -np.log(M)))
    feats = rng.standard_normal((300_000, D)).astype(np.float32)

    t = time.time()
    for s in range(0, len(feats), 1000):
        gmm.log_likelihoods(feats[s:s + 1000])
    dt = time.time() - t
    print(f"GMM log-likelihoods: {len(feats) / dt / 1e3:.0f} k frames/s ({ctx.num_pdfs} pdfs x {M} Gaussians, D={D})")

    utts = {f"u{i}": list(rng.choice(list(words), 10)) for i in range(200)}
    graphs = {u: build_align_graph(w, lexicon, phones, trans, ctx) for u, w in utts.items()}
    em = {u: torch.randn(400, g.num_states) for u, g in graphs.items()}
    t = time.time()
    align_utterances(graphs, lambda u, g: em[u], trans.log_probs, num_frames={u: 400 for u in graphs})
    dt = time.time() - t
    print(f"batched Viterbi alignment: {200 * 400 / dt / 1e3:.0f} k frames/s (10-word utterances)")

    import tempfile, os
    with tempfile.TemporaryDirectory() as tmp:
        write_unigram_arpa(os.path.join(tmp, "G.arpa"), list(words))
        lm = lm_to_automaton(read_arpa(os.path.join(tmp, "G.arpa")))
    graph = compile_graph(lexicon, SymbolTable(sorted(words)), phones, lm, trans, ctx)
    dec = Decoder(graph, trans.log_probs, DecoderConfig())
    scores = rng.standard_normal((5000, ctx.num_pdfs)) * 5
    t = time.time()
    for s in range(0, 5000, 500):
        dec.decode(scores[s:s + 500])
    dt = time.time() - t
    print(f"beam decoder: {5000 / dt / 1e3:.1f} k frames/s on a {graph.num_states}-state word-loop graph")


if __name__ == "__main__":
    main()
