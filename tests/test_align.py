from __future__ import annotations

import math

import numpy as np
import pytest

from asr.hmm.align import align_utterances, equal_alignment, viterbi_batch
from asr.hmm.align_graph import build_align_graph
from asr.hmm.context import MonophoneContext
from asr.hmm.topology import Topology, TransitionModel
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.utils import AsrError

TSCALE = 0.1


@pytest.fixture(scope="module")
def setup():
    phones = SymbolTable(["SIL", "A", "B"])
    topo = Topology.default([1, 2, 3], [1], nonsil_states=2, sil_states=3)
    trans = TransitionModel(topo)
    ctx = MonophoneContext(topo)
    lex = Lexicon({"X": [["A", "B"]], "Y": [["B"]]})
    graph = build_align_graph(["X", "Y"], lex, phones, trans, ctx)
    return phones, topo, trans, ctx, lex, graph


def _successors(g):
    succ = {s: [] for s in range(g.num_states)}
    for j in range(g.num_states):
        for k in range(g.pred.shape[1]):
            if g.pred[j, k] >= 0:
                succ[int(g.pred[j, k])].append((j, k))
    return succ


def brute_force(g, emit: np.ndarray, tlp: np.ndarray, tscale: float = TSCALE):
    """Best (score, path) over every state sequence of len(emit) frames the graph allows."""
    T = len(emit)
    succ = _successors(g)
    best = (-math.inf, None)
    count = 0

    def rec(path, score):
        nonlocal best, count
        s = path[-1]
        if len(path) == T:
            if g.final_tid[s] >= 0:
                total = score + tscale * tlp[g.final_tid[s]] + g.final_graph[s]
                count += 1
                if total > best[0]:
                    best = (total, list(path))
            return
        t = len(path)
        for j, k in succ[s]:
            arc = tscale * tlp[g.pred_tid[j, k]] + g.pred_graph[j, k]
            path.append(j)
            rec(path, score + arc + emit[t, j])
            path.pop()

    for s0 in range(g.num_states):
        if np.isfinite(g.init_graph[s0]):
            rec([s0], g.init_graph[s0] + emit[0, s0])
    return best[0], best[1], count


def _align_one(g, emit, trans):
    res = align_utterances({"u": g}, lambda u, gr: emit.astype(np.float32), trans.log_probs, TSCALE,
                           num_frames={"u": len(emit)})
    return res["u"]


def test_graph_structure(setup):
    phones, topo, trans, ctx, lex, g = setup
    # SIL(3) A(2) B(2) SIL(3) B(2) SIL(3)
    assert g.num_states == 15
    assert list(g.phone) == [1] * 3 + [2] * 2 + [3] * 2 + [1] * 3 + [3] * 2 + [1] * 3
    assert list(g.word_pos) == [-1] * 3 + [0] * 4 + [-1] * 3 + [1] * 2 + [-1] * 3
    assert list(g.pdf) == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 5, 6, 0, 1, 2]
    starts = set(np.flatnonzero(np.isfinite(g.init_graph)))
    # Optional silence: start in SIL or directly in A.
    assert starts == {0, 3}
    np.testing.assert_allclose(g.init_graph[[0, 3]], [math.log(0.5), math.log(0.5)])
    # Utterance can end in the last state of the final SIL or in the last state of Y's B.
    ends = set(np.flatnonzero(g.final_tid >= 0))
    assert ends == {11, 14}
    # The first state of the second B can be entered from the first B or from the middle SIL.
    preds_b2 = {int(p) for p in g.pred[10] if p >= 0}
    assert preds_b2 == {6, 9, 10}


@pytest.mark.parametrize("seed", range(4))
def test_viterbi_matches_brute_force(setup, seed):
    *_, trans, ctx, lex, g = setup
    rng = np.random.default_rng(seed)
    T = 9
    emit = rng.normal(0, 2, (T, g.num_states))
    ref_score, ref_path, n = brute_force(g, emit, trans.log_probs)
    assert n > 50  # many competing paths, with and without the optional silences
    ali = _align_one(g, emit, trans)
    assert ali is not None
    assert ali.score == pytest.approx(ref_score, abs=1e-4)
    assert list(ali.states) == ref_path
    # The tids are the arcs taken between consecutive states, plus the exit.
    assert ali.tids.shape == (T + 1,)
    assert ali.tids[0] == -1
    for t in range(1, T):
        k = list(g.pred[ali.states[t]]).index(ali.states[t - 1])
        assert ali.tids[t] == g.pred_tid[ali.states[t], k]
    assert ali.tids[T] == g.final_tid[ali.states[-1]]


def test_viterbi_uses_silence_when_emissions_say_so(setup):
    *_, trans, ctx, lex, g = setup
    T = 12
    emit = np.full((T, g.num_states), -20.0)
    plan = [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14]  # SIL A B (no SIL) B SIL
    emit[np.arange(T), plan] = 0.0
    ali = _align_one(g, emit, trans)
    assert list(ali.states) == plan
    ref_score, ref_path, _ = brute_force(g, emit, trans.log_probs)
    assert ref_path == plan and ali.score == pytest.approx(ref_score, abs=1e-4)


def test_batching_matches_single(setup):
    phones, topo, trans, ctx, lex, g = setup
    g2 = build_align_graph(["Y"], lex, phones, trans, ctx)
    g3 = build_align_graph(["Y", "X", "X"], lex, phones, trans, ctx)
    rng = np.random.default_rng(42)
    specs = {"a": (g, 9), "b": (g2, 4), "c": (g3, 25), "d": (g, 14), "e": (g2, 1), "f": (g, 7)}
    emits = {u: rng.normal(0, 2, (T, gr.num_states)) for u, (gr, T) in specs.items()}
    graphs = {u: gr for u, (gr, _) in specs.items()}
    fn = lambda u, gr: emits[u].astype(np.float32)  # noqa: E731
    frames = {u: T for u, (_, T) in specs.items()}
    together = align_utterances(graphs, fn, trans.log_probs, TSCALE, num_frames=frames)
    # A tiny batch budget forces one utterance per batch.
    apart = align_utterances(graphs, fn, trans.log_probs, TSCALE, num_frames=frames, max_batch_elems=1)
    for u in specs:
        single = align_utterances({u: graphs[u]}, fn, trans.log_probs, TSCALE, num_frames=frames)[u]
        for res in (together[u], apart[u]):
            if single is None:
                assert res is None
            else:
                assert res.score == pytest.approx(single.score, abs=1e-4)
                np.testing.assert_array_equal(res.states, single.states)
                np.testing.assert_array_equal(res.tids, single.tids)
    # "e": 1 frame cannot hold Y's two B states; "f": 7 frames do hold X Y (6 states minimum).
    assert together["e"] is None
    assert together["f"] is not None and len(together["f"].states) == 7
    # Spot-check a batched result against brute force.
    ref_score, ref_path, _ = brute_force(g, emits["a"], trans.log_probs)
    assert list(together["a"].states) == ref_path
    assert together["a"].score == pytest.approx(ref_score, abs=1e-4)


def test_viterbi_batch_direct(setup):
    *_, trans, ctx, lex, g = setup
    rng = np.random.default_rng(3)
    tlp = trans.log_probs * TSCALE
    arc = np.where(g.pred_tid >= 0, tlp[np.maximum(g.pred_tid, 0)], 0.0) + g.pred_graph
    fin = np.where(g.final_tid >= 0, tlp[np.maximum(g.final_tid, 0)], 0.0) + g.final_graph
    e1 = rng.normal(0, 2, (9, g.num_states))
    e2 = rng.normal(0, 2, (5, g.num_states))
    out = viterbi_batch([g, g], [e1.astype(np.float32), e2.astype(np.float32)], [arc, arc], [fin, fin])
    ref_score, ref_path, _ = brute_force(g, e1, trans.log_probs)
    assert out[0].score == pytest.approx(ref_score, abs=1e-4)
    assert list(out[0].states) == ref_path
    assert out[1] is None  # 5 frames < 6 states on the shortest path


def test_too_short_returns_none(setup):
    *_, trans, ctx, lex, g = setup
    emit = np.zeros((5, g.num_states))
    assert _align_one(g, emit, trans) is None
    emit6 = np.zeros((6, g.num_states))
    ali = _align_one(g, emit6, trans)
    assert ali is not None
    assert list(ali.states) == [3, 4, 5, 6, 10, 11]


def test_equal_alignment(setup):
    *_, g = setup
    path = g.equal_path
    # Leading silence, the words' first pronunciations, trailing silence (no inner silence).
    assert list(path) == [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14]
    # The path is a real path through the graph.
    assert np.isfinite(g.init_graph[path[0]]) and g.final_tid[path[-1]] >= 0
    for a, b in zip(path, path[1:]):
        assert a in set(g.pred[b])
    n = len(path)
    np.testing.assert_array_equal(equal_alignment(g, 2 * n), np.repeat(path, 2))
    np.testing.assert_array_equal(equal_alignment(g, n), path)
    assert equal_alignment(g, n - 1) is None
    assert equal_alignment(g, 0) is None
    ali = equal_alignment(g, 40)
    assert len(ali) == 40
    assert (np.diff(np.searchsorted(path, ali)) >= 0).all()
    counts = np.array([(ali == s).sum() for s in path])
    assert counts.min() >= 3 and counts.max() <= 4 and counts.sum() == 40


def test_unknown_word_rejected(setup):
    phones, topo, trans, ctx, lex, g = setup
    with pytest.raises(AsrError, match="Z"):
        build_align_graph(["X", "Z"], lex, phones, trans, ctx, utt="u1")
    bad = Lexicon({"Q": [["A", "C"]]})
    with pytest.raises(AsrError):
        build_align_graph(["Q"], bad, phones, trans, ctx)


def test_alternate_pronunciations(setup):
    phones, topo, trans, ctx, lex, _ = setup
    lex2 = Lexicon({"X": [["A", "B"], ["B"]]})
    g = build_align_graph(["X"], lex2, phones, trans, ctx)
    # SIL, A, B (pron 1), B (pron 2), SIL
    assert g.num_states == 3 + 2 + 2 + 2 + 3
    starts = set(np.flatnonzero(np.isfinite(g.init_graph)))
    assert starts == {0, 3, 7}
    rng = np.random.default_rng(0)
    emit = rng.normal(0, 2, (8, g.num_states))
    ref_score, ref_path, _ = brute_force(g, emit, trans.log_probs)
    ali = _align_one(g, emit, trans)
    assert ali.score == pytest.approx(ref_score, abs=1e-4)
    assert list(ali.states) == ref_path


# ---------------------------------------------------------------- streaming (long recordings)


def _arcs(g, trans):
    from asr.hmm.align import arc_scores, scaled_transitions

    tlp = scaled_transitions(trans.log_probs, TSCALE)
    return arc_scores(g.pred_tid, g.pred_graph, tlp), arc_scores(g.final_tid, g.final_graph, tlp)


def _planted_emissions(g, rng, stay: float = 0.6, margin: float = 3.0) -> np.ndarray:
    """(T, S) noise plus ``margin`` along one random path through the graph (a recording
    that fits its transcript), T being the length of that path."""
    succ = _successors(g)
    s = int(np.flatnonzero(np.isfinite(g.init_graph))[0])
    last = int(np.flatnonzero(g.final_tid >= 0).max())
    path = [s]
    while s != last or rng.random() < stay:
        nxt = [j for j, _ in succ[s] if j != s]
        s = s if (rng.random() < stay or not nxt) else int(rng.choice(nxt))
        if s > last:  # wandered past the end's silence: restart the walk's tail there
            s = last
        path.append(s)
    emit = rng.normal(0, 1, (len(path), g.num_states))
    emit[np.arange(len(path)), path] += margin
    return emit


@pytest.mark.parametrize("seed", range(3))
def test_streaming_viterbi_without_pruning_is_exact_viterbi(setup, seed):
    """With an unbounded beam the band, block and partial-traceback bookkeeping must
    reproduce exact Viterbi on arbitrary (noise) scores, whatever the block sizes."""
    from asr.hmm.align_long import viterbi_streaming

    phones, topo, trans, ctx, lex, _ = setup
    rng = np.random.default_rng(seed)
    words = list(rng.choice(["X", "Y"], size=12))
    g = build_align_graph(words, lex, phones, trans, ctx)
    emit = rng.normal(0, 2, (150, g.num_states))
    exact = _align_one(g, emit, trans)
    arc, fin = _arcs(g, trans)
    cuts = np.sort(rng.choice(np.arange(1, 150), size=7, replace=False))
    blocks = np.split(emit, cuts)  # uneven blocks, one of them possibly a single frame
    got, _ = viterbi_streaming(g, blocks, arc, fin, np.arange(g.num_states), beam=math.inf)
    assert got.score == pytest.approx(exact.score, abs=1e-3)
    np.testing.assert_array_equal(got.states, exact.states)
    np.testing.assert_array_equal(got.tids, exact.tids)


def test_streaming_viterbi_on_a_long_transcript_is_exact_in_a_fraction_of_the_memory(setup):
    """800 words, ~5k frames: the beam-pruned pass finds the exact path while holding
    a tiny part of the T x S back-pointers, because the paths merge and are committed."""
    from asr.hmm.align_long import viterbi_streaming

    phones, topo, trans, ctx, lex, _ = setup
    rng = np.random.default_rng(7)
    g = build_align_graph(list(rng.choice(["X", "Y"], size=800)), lex, phones, trans, ctx)
    emit = _planted_emissions(g, rng)
    T, S = emit.shape
    exact = _align_one(g, emit, trans)
    arc, fin = _arcs(g, trans)
    got, peak = viterbi_streaming(g, (emit[t:t + 500] for t in range(0, T, 500)), arc, fin,
                                  np.arange(S), beam=30.0)
    np.testing.assert_array_equal(got.states, exact.states)
    np.testing.assert_array_equal(got.tids, exact.tids)
    assert got.score == pytest.approx(exact.score, rel=1e-6)
    assert peak < 0.002 * T * S, (peak, T * S)


def test_streaming_viterbi_reports_a_recording_that_does_not_fit(setup):
    from asr.hmm.align_long import viterbi_streaming

    phones, topo, trans, ctx, lex, _ = setup
    g = build_align_graph(["X", "Y", "X"], lex, phones, trans, ctx)
    arc, fin = _arcs(g, trans)
    # Too few frames to reach a final state: no alignment, as with exact Viterbi.
    got, _ = viterbi_streaming(g, [np.zeros((4, g.num_states))], arc, fin, np.arange(g.num_states))
    assert got is None
    # Every path pruned away: a one-line error naming the frame.
    emit = np.zeros((20, g.num_states))
    emit[5:] = -np.inf
    with pytest.raises(AsrError, match="no path within the beam survives frame"):
        viterbi_streaming(g, [emit], arc, fin, np.arange(g.num_states))
