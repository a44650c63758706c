from __future__ import annotations

import math

import numpy as np
import pytest

from asr.decode.viterbi import DecoderConfig, ViterbiDecoder
from asr.graph.compile import DecodingGraph, compile_graph
from asr.lang.arpa import lm_to_automaton, read_arpa, write_unigram_arpa
from asr.utils import AsrError

INF = math.inf


def make_graph(arcs, node_pdf, node_word, final_cost, start=0) -> DecodingGraph:
    """arcs: (src, dst, tid, word, graph_cost, lm_cost), sorted by source as compile_graph does."""
    arcs = sorted(arcs, key=lambda a: a[0])
    cols = list(zip(*arcs))
    return DecodingGraph(
        start=start, final_cost=np.asarray(final_cost, dtype=np.float64),
        node_pdf=np.asarray(node_pdf, dtype=np.int64), node_phone=np.where(np.asarray(node_pdf) >= 0, 1, 0),
        node_word=np.asarray(node_word, dtype=np.int64),
        arc_src=np.array(cols[0], dtype=np.int64), arc_dst=np.array(cols[1], dtype=np.int64),
        arc_tid=np.array(cols[2], dtype=np.int64), arc_word=np.array(cols[3], dtype=np.int64),
        arc_graph_cost=np.array(cols[4], dtype=np.float64), arc_lm_cost=np.array(cols[5], dtype=np.float64))


def two_word_graph(loop: bool) -> DecodingGraph:
    """start(0) -eps:w1-> 1 -> [3 -> 4] -> 5(final);  start -eps:w2-> 2 -> [6 -> 7] -> 5.

    Emitting states have self-loops; with ``loop`` the final state goes back to the start
    so that word sequences of any length are possible.
    """
    arcs = [
        (0, 1, -1, 1, 0.0, 0.7), (0, 2, -1, 2, 0.2, 1.1),
        (1, 3, -1, 0, 0.0, 0.0), (3, 3, 0, 0, 0.0, 0.0), (3, 4, 1, 0, 0.0, 0.0),
        (4, 4, 2, 0, 0.0, 0.0), (4, 5, 3, 0, 0.1, 0.0),
        (2, 6, -1, 0, 0.0, 0.0), (6, 6, 4, 0, 0.0, 0.0), (6, 7, 5, 0, 0.0, 0.0),
        (7, 7, 6, 0, 0.0, 0.0), (7, 5, 7, 0, 0.0, 0.0),
    ]
    if loop:
        arcs.append((5, 0, -1, 0, 0.3, 0.0))
    node_pdf = [-1, -1, -1, 0, 1, -1, 2, 1]
    node_word = [0, 0, 0, 1, 1, 0, 2, 2]
    final = [INF, INF, INF, INF, INF, 0.25, INF, INF]
    return make_graph(arcs, node_pdf, node_word, final)


TRANS_LOG_PROBS = np.log(np.array([0.6, 0.4, 0.7, 0.3, 0.5, 0.5, 0.8, 0.2]))


def brute_force(g: DecodingGraph, scores: np.ndarray, tlp: np.ndarray, cfg: DecoderConfig):
    """Every path of the graph that consumes exactly T frames and ends in a final state."""
    T = scores.shape[0]
    out_arcs: dict[int, list[int]] = {}
    for e in range(g.num_arcs):
        out_arcs.setdefault(int(g.arc_src[e]), []).append(e)

    def arc_cost(e):
        tid = g.arc_tid[e]
        c = cfg.transition_scale * (-tlp[tid] if tid >= 0 else 0.0)
        return c + g.arc_graph_cost[e] + cfg.lm_weight * g.arc_lm_cost[e] + cfg.word_penalty * (g.arc_word[e] > 0)

    results = []

    def rec(state, t, cost, states, words):
        if t == T and np.isfinite(g.final_cost[state]):
            results.append((cost + g.final_cost[state], list(states), list(words)))
        for e in out_arcs.get(state, []):
            d = int(g.arc_dst[e])
            c = cost + arc_cost(e)
            w = list(words) + ([(int(g.arc_word[e]), t)] if g.arc_word[e] > 0 else [])
            if g.node_pdf[d] >= 0:
                if t < T:
                    rec(d, t + 1, c - cfg.acoustic_scale * scores[t, g.node_pdf[d]], states + [d], w)
            else:
                rec(d, t, c, states, w)

    rec(g.start, 0, 0.0, [], [])
    results.sort(key=lambda r: r[0])
    return results


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("loop", [False, True])
def test_decoder_matches_brute_force(seed, loop):
    g = two_word_graph(loop)
    rng = np.random.default_rng(seed)
    T = 6
    scores = rng.normal(0, 3, (T, 3))
    cfg = DecoderConfig(beam=1e9, max_active=10**6, acoustic_scale=0.7, transition_scale=0.5, lm_weight=1.3,
                        word_penalty=0.4)
    paths = brute_force(g, scores, TRANS_LOG_PROBS, cfg)
    assert len(paths) >= 2
    best_cost, best_states, best_words = paths[0]
    assert paths[1][0] - best_cost > 1e-6  # a unique optimum
    res = ViterbiDecoder(g, TRANS_LOG_PROBS, cfg).decode(scores)
    assert res.reached_final
    assert res.cost == pytest.approx(best_cost, abs=1e-6)
    assert list(res.states) == best_states
    assert [(w.word, w.start) for w in res.words] == best_words
    for n, w in enumerate(res.words):
        assert w.start <= w.end
        assert all(g.node_word[res.states[t]] == w.word for t in range(w.start, w.end + 1))
        if n + 1 < len(res.words):
            assert w.end < res.words[n + 1].start


def test_word_penalty_reduces_words():
    g = two_word_graph(loop=True)
    # Frames favour w1 w2 w1 (pdfs 0 1 | 2 1 | 0 1).
    T = 6
    scores = np.full((T, 3), -10.0)
    for t, p in enumerate([0, 1, 2, 1, 0, 1]):
        scores[t, p] = 0.0
    base = dict(beam=1e9, max_active=10**6, acoustic_scale=1.0, transition_scale=1.0)
    res0 = ViterbiDecoder(g, TRANS_LOG_PROBS, DecoderConfig(**base)).decode(scores)
    assert [w.word for w in res0.words] == [1, 2, 1]
    assert [(w.start, w.end) for w in res0.words] == [(0, 1), (2, 3), (4, 5)]
    res1 = ViterbiDecoder(g, TRANS_LOG_PROBS, DecoderConfig(word_penalty=100.0, **base)).decode(scores)
    assert len(res1.words) == 1
    ref = brute_force(g, scores, TRANS_LOG_PROBS, DecoderConfig(word_penalty=100.0, **base))[0]
    assert res1.cost == pytest.approx(ref[0], abs=1e-6)
    assert list(res1.states) == ref[1]


def test_narrow_beam_is_never_better_than_exact():
    g = two_word_graph(loop=True)
    rng = np.random.default_rng(11)
    scores = rng.normal(0, 3, (6, 3))
    exact = ViterbiDecoder(g, TRANS_LOG_PROBS, DecoderConfig(beam=1e9, acoustic_scale=1.0)).decode(scores)
    narrow = ViterbiDecoder(g, TRANS_LOG_PROBS, DecoderConfig(beam=0.5, max_active=2, acoustic_scale=1.0)).decode(scores)
    if narrow.reached_final:
        assert narrow.cost >= exact.cost - 1e-9


def test_epsilon_cycle_rejected():
    arcs = [(0, 1, -1, 0, 0.0, 0.0), (1, 2, -1, 0, 0.0, 0.0), (2, 1, -1, 0, 0.0, 0.0), (1, 3, 0, 0, 0.0, 0.0),
            (3, 3, 0, 0, 0.0, 0.0), (3, 2, 1, 0, 0.0, 0.0)]
    g = make_graph(arcs, [-1, -1, -1, 0], [0, 0, 0, 0], [INF, INF, 0.0, INF])
    with pytest.raises(AsrError, match="epsilon cycle"):
        ViterbiDecoder(g, np.log([0.5, 0.5]))


def test_empty_utterance_rejected():
    g = two_word_graph(loop=False)
    dec = ViterbiDecoder(g, TRANS_LOG_PROBS)
    with pytest.raises(AsrError):
        dec.decode(np.zeros((0, 3)))


@pytest.fixture(scope="module")
def real_graph(tmp_path_factory, tiny_mono):
    phones, words, trans, ctx, lex = tiny_mono.phones, tiny_mono.words, tiny_mono.trans, tiny_mono.ctx, tiny_mono.lex
    arpa = tmp_path_factory.mktemp("lm") / "G.arpa"
    write_unigram_arpa(arpa, ["X", "Y"])
    lm = lm_to_automaton(read_arpa(arpa))
    g = compile_graph(lex, words, phones, lm, trans, ctx)
    return g, trans, ctx, words


def test_compile_graph_structure(real_graph):
    g, trans, ctx, words = real_graph
    assert g.num_states == len(g.final_cost) == len(g.node_word)
    assert (np.diff(g.arc_src) >= 0).all()
    emitting = g.node_pdf >= 0
    # Pdfs: SIL 0-2, A 3-4, B 5-6; every pdf used, SIL once per LM state, B in both words.
    assert set(g.node_pdf[emitting]) == set(range(ctx.num_pdfs))
    assert set(g.arc_word[g.arc_word > 0]) == {words.id("X"), words.id("Y")}
    # Word arcs are epsilon (non-emitting destination) arcs.
    assert (~emitting[g.arc_dst[g.arc_word > 0]]).all()
    assert np.isfinite(g.final_cost).sum() >= 1
    assert not emitting[g.start]
    # Arc into an emitting state carries the tid of a transition out of the source's tstate.
    for e in np.flatnonzero(emitting[g.arc_src] & (g.arc_tid >= 0)):
        assert trans.tstates[trans.tid_tstate[g.arc_tid[e]]][0] == g.node_phone[g.arc_src[e]]


def _plan_scores(g, ctx, pdf_plan, num_pdfs):
    scores = np.full((len(pdf_plan), num_pdfs), -50.0)
    scores[np.arange(len(pdf_plan)), pdf_plan] = 0.0
    return scores


def test_decode_compiled_graph(real_graph):
    g, trans, ctx, words = real_graph
    # SIL(0 1 2) | X = A(3 3 4) B(5 6 6) | Y = B(5 5 6) | SIL(0 1 2)
    plan = [0, 1, 2, 3, 3, 4, 5, 6, 6, 5, 5, 6, 0, 1, 2]
    scores = _plan_scores(g, ctx, plan, ctx.num_pdfs)
    dec = ViterbiDecoder(g, trans.log_probs, DecoderConfig(acoustic_scale=1.0))
    res = dec.decode(scores)
    assert res.reached_final
    assert [words.sym(w.word) for w in res.words] == ["X", "Y"]
    assert [(w.start, w.end) for w in res.words] == [(3, 8), (9, 11)]
    np.testing.assert_array_equal(g.node_pdf[res.states], plan)
    # The path's acoustic cost is zero, so the total is the graph + LM + transition cost, all small.
    assert 0 < res.cost < 20

    # Without the silences and with Y first: "Y X".
    plan2 = [5, 6, 3, 4, 4, 5, 6]
    res2 = dec.decode(_plan_scores(g, ctx, plan2, ctx.num_pdfs))
    assert [words.sym(w.word) for w in res2.words] == ["Y", "X"]
    assert [(w.start, w.end) for w in res2.words] == [(0, 1), (2, 6)]


def test_decode_compiled_graph_matches_brute_force(real_graph):
    g, trans, ctx, words = real_graph
    rng = np.random.default_rng(5)
    T = 5
    scores = rng.normal(0, 2, (T, ctx.num_pdfs))
    cfg = DecoderConfig(beam=1e9, max_active=10**6, acoustic_scale=1.0, transition_scale=0.3, word_penalty=0.2)
    paths = brute_force(g, scores, trans.log_probs, cfg)
    res = ViterbiDecoder(g, trans.log_probs, cfg).decode(scores)
    assert res.cost == pytest.approx(paths[0][0], abs=1e-6)
    assert list(res.states) == paths[0][1]
    assert [(w.word, w.start) for w in res.words] == paths[0][2]
