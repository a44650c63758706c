"""Decision-tree state tying: statistics, questions, greedy splitting, triphone graphs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from asr.decode.config import DecoderConfig
from asr.decode.decoder import Decoder
from asr.graph.compile import compile_graph
from asr.hmm.align import align_utterances
from asr.hmm.align_graph import build_align_graph
from asr.hmm.alignments import phone_segments
from asr.hmm.topology import Topology, TransitionModel
from asr.lang.arpa import LmAutomaton
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.tree.build import Root, best_split, build_tree, leaf_statistics
from asr.tree.questions import base_phone, cluster_phone_sets, phone_groups
from asr.tree.stats import LEFT, RIGHT, TreeStats, accumulate_tree_stats, frame_keys, gaussian_objective
from asr.tree.tree import DecisionTree
from asr.utils import AsrError


def synthetic_stats(rng, spec: dict[tuple[int, int, int, int], tuple[int, float]], dim: int = 2) -> TreeStats:
    """Stats of frames drawn from N(mean, 1) for each key -> (count, mean)."""
    keys, count, s, ss = [], [], [], []
    for key, (n, mean) in spec.items():
        x = rng.normal(mean, 1.0, size=(n, dim))
        keys.append(key)
        count.append(n)
        s.append(x.sum(0))
        ss.append((x * x).sum(0))
    return TreeStats(np.array(keys), np.array(count, dtype=float), np.array(s), np.array(ss))


def membership(questions, num_phones):
    m = np.zeros((len(questions), num_phones), dtype=bool)
    for i, q in enumerate(questions):
        m[i, sorted(q)] = True
    return m


def test_gaussian_objective_matches_direct_loglik():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(500, 3))
    packed = np.concatenate([[len(x)], x.sum(0), (x * x).sum(0)])
    mu, var = x.mean(0), x.var(0)
    direct = (-0.5 * (np.log(2 * np.pi * var) + (x - mu) ** 2 / var)).sum()
    assert gaussian_objective(packed, 1e-6) == pytest.approx(direct, rel=1e-9)
    assert gaussian_objective(np.zeros(7), 0.01) == 0.0


def test_best_split_is_the_largest_gain_and_respects_occupancy():
    rng = np.random.default_rng(1)
    # Phone 5, state 0: the left phone decides the mean ({1,2} -> 0, {3,4} -> 6); the right
    # phone moves it a little ({1} -> +1).
    spec = {}
    for left, right in itertools.product([1, 2, 3, 4], [1, 2]):
        spec[(left, 5, right, 0)] = (200, (0.0 if left in (1, 2) else 6.0) + (1.0 if right == 1 else 0.0))
    stats = synthetic_stats(rng, spec)
    questions = [frozenset(q) for q in ([1], [1, 2], [1, 3], [2, 3, 4], [3], [1, 2, 3])]
    m = membership(questions, 6)
    rows = np.arange(len(stats.keys))
    s = best_split(stats, stats.packed, rows, m, min_leaf_occ=10, var_floor=0.01)
    # Brute force over every (position, question).
    total = gaussian_objective(stats.packed.sum(0), 0.01)
    gains = {}
    for k in (LEFT, RIGHT):
        for qi, q in enumerate(questions):
            yes = np.isin(stats.keys[:, k], sorted(q))
            if yes.all() or not yes.any():
                continue
            gains[(k, qi)] = (gaussian_objective(stats.packed[yes].sum(0), 0.01)
                              + gaussian_objective(stats.packed[~yes].sum(0), 0.01) - total)
    k_best, q_best = max(gains, key=gains.get)
    assert (s.key, s.question) == (k_best, q_best) == (LEFT, 1)
    assert s.gain == pytest.approx(gains[(k_best, q_best)])
    assert sorted(np.concatenate([s.yes_rows, s.no_rows])) == list(rows)
    # Floor: with 1000 frames needed per child only the 800/800 splits remain; one
    # above every child size, no split at all.
    s2 = best_split(stats, stats.packed, rows, m, min_leaf_occ=1000, var_floor=0.01)
    assert s2 is None
    s3 = best_split(stats, stats.packed, rows, m, min_leaf_occ=700, var_floor=0.01)
    assert s3 is not None and (s3.key, s3.question) == (LEFT, 1)


def test_build_tree_leaves_occupancy_and_unseen_contexts():
    rng = np.random.default_rng(2)
    spec = {}
    for left, right in itertools.product([1, 2, 3], [1, 2, 3]):
        for state in (0, 1):
            spec[(left, 4, right, state)] = (int(rng.integers(20, 300)), float(left * 3 + right + state * 10))
    spec[(0, 1, 4, 0)] = (500, 0.0)  # "silence" (phone 1), not split
    spec[(4, 1, 0, 0)] = (500, 1.0)
    stats = synthetic_stats(rng, spec)
    questions = [frozenset([p]) for p in range(1, 5)] + [frozenset([1, 2]), frozenset([2, 3])]
    roots = [Root([4], 0), Root([4], 1), Root([1], 0, split=False), Root([5], 0)]  # phone 5 never seen
    tree = build_tree(stats, questions, roots, num_leaves=8, min_leaf_occ=150)
    assert tree.num_pdfs <= 8
    leaf = leaf_statistics(tree, stats)
    occupied = leaf[:, 0] > 0
    assert (leaf[occupied, 0] >= 150).all()
    assert tree.num_pdfs > len(roots)  # it did split
    # Silence and the unseen phone keep one leaf each, whatever the context.
    assert tree.context_independent(1) and tree.context_independent(5)
    assert tree.pdf_of(3, 1, 2, 0) == tree.pdf_of(0, 1, 0, 0)
    # A triphone never seen (left context 9 is no phone of the data) still reaches a leaf.
    assert 0 <= tree.pdf_of(9, 4, 9, 1) < tree.num_pdfs
    assert not tree.context_independent(4)
    # Save / load keeps every answer.
    again = DecisionTree.from_dict(tree.to_dict())
    for l, p, r, s in itertools.product(range(6), [4], range(6), [0, 1]):
        assert again.pdf_of(l, p, r, s) == tree.pdf_of(l, p, r, s)
    with pytest.raises(AsrError, match="no root"):
        tree.pdf_of(0, 4, 0, 7)


def test_more_leaves_never_lower_the_likelihood():
    rng = np.random.default_rng(3)
    spec = {(l, 2, r, 0): (100, float(l - r)) for l, r in itertools.product(range(1, 6), range(1, 6))}
    stats = synthetic_stats(rng, spec)
    questions = [frozenset(c) for n in (1, 2) for c in itertools.combinations(range(1, 6), n)]
    objs = []
    for n in (1, 2, 4, 8):
        tree = build_tree(stats, questions, [Root([2], 0)], num_leaves=n, min_leaf_occ=100)
        assert tree.num_pdfs == n
        objs.append(gaussian_objective(leaf_statistics(tree, stats), 0.01).sum())
    assert all(b > a for a, b in zip(objs, objs[1:]))


def test_cluster_phone_sets_separates_clear_groups():
    rng = np.random.default_rng(4)
    means = [0.0, 0.3, 10.0, 10.4, 10.2]
    items = []
    for m in means:
        x = rng.normal(m, 1.0, size=(300, 2))
        items.append(np.concatenate([[300], x.sum(0), (x * x).sum(0)]))
    sets = cluster_phone_sets(np.array(items), 0.01)
    assert sorted(sets[0]) in ([0, 1], [2, 3, 4]) and sorted(sets[1]) in ([0, 1], [2, 3, 4])
    assert {len(s) for s in sets} >= {1}  # down to single phones
    assert len(sets) == 2 * len(means) - 2  # a full binary tree minus its root


def test_phone_groups_join_position_variants():
    phones = SymbolTable(["SIL", "AA_B", "AA_E", "AA_I", "AA_S", "B_B", "B_E", "#0"])
    assert base_phone("AA_B") == "AA" and base_phone("SIL") == "SIL" and base_phone("_B") == "_B"
    assert phone_groups(phones) == {"SIL": [1], "AA": [2, 3, 4, 5], "B": [6, 7]}


@pytest.fixture(scope="module")
def tiny():
    phones = SymbolTable(["SIL", "A", "B", "C"])
    topo = Topology.default([1, 2, 3, 4], [1], nonsil_states=2, sil_states=2)
    return phones, topo, TransitionModel(topo)


class FullTriphone:
    """Every (left, phone, right, state) its own pdf (silence context-independent): a test oracle."""

    context_width = 3

    def __init__(self, phones: int = 5, states: int = 2):
        self.index = {}
        for l, p, r, s in itertools.product(range(phones), range(1, phones), range(phones), range(states)):
            key = (0, p, 0, s) if p == 1 else (l, p, r, s)
            self.index.setdefault(key, len(self.index))
        self.num_pdfs = len(self.index)

    def pdf_of(self, l, p, r, s):
        return self.index[(0, p, 0, s) if p == 1 else (l, p, r, s)]

    def context_independent(self, p):
        return p == 1


def test_frame_keys_from_a_transition_id_alignment(tiny):
    phones, topo, trans = tiny
    # SIL A A B: 2-state phones, each state one frame, self-loop on the second A's state 0.
    seq = [(1, 0, 1), (1, 1, 2), (2, 0, 1), (2, 1, 2), (2, 0, 0), (2, 0, 1), (2, 1, 2), (3, 0, 1), (3, 1, 2)]
    tids = []
    for p, s, dest in seq:
        tids.append(next(t for t, d in trans.arcs(trans.tstate(p, s)) if d == dest))
    ph, first, last = phone_segments(np.array(tids), trans)
    assert ph.tolist() == [1, 2, 2, 3] and first.tolist() == [0, 2, 4, 7] and last.tolist() == [1, 3, 6, 8]
    keys = frame_keys(np.array(tids), trans)
    assert keys.tolist() == [[0, 1, 2, 0], [0, 1, 2, 1], [1, 2, 2, 0], [1, 2, 2, 1], [2, 2, 3, 0], [2, 2, 3, 0],
                             [2, 2, 3, 1], [2, 3, 0, 0], [2, 3, 0, 1]]
    feats = {"u": np.arange(18, dtype=float).reshape(9, 2)}
    stats = accumulate_tree_stats(feats, {"u": np.array(tids)}, trans)
    assert stats.count.sum() == 9 and len(stats.keys) == 8
    row = stats.keys.tolist().index([2, 2, 3, 0])
    assert stats.count[row] == 2 and stats.sum[row].tolist() == [8 + 10, 9 + 11]
    with pytest.raises(AsrError, match="phone exit"):
        phone_segments(np.array(tids[:-1] + [tids[-2]]), trans)
    with pytest.raises(AsrError, match="frames"):
        accumulate_tree_stats({"u": feats["u"][:5]}, {"u": np.array(tids)}, trans)


def test_two_word_graph_expands_cross_word_contexts(tiny):
    """AB C: the decoding graph's path without silence is A(-,B) B(A,C) C(B,-), and with
    silence between the words B(A,SIL) SIL C(SIL,-): the contexts the aligner trains on."""
    phones, topo, trans = tiny
    ctx = FullTriphone()
    lex = Lexicon({"AB": [["A", "B"]], "C": [["C"]]})
    words = SymbolTable(["AB", "C"])
    lm = LmAutomaton(3, 0, [(0, "AB", 1, 0.0), (1, "C", 2, 0.0)], [], {2: 0.0})
    g = compile_graph(lex, words, phones, lm, trans, ctx, "SIL", sil_prob=0.5)
    A, B, C, SIL = 2, 3, 4, 1
    for middle in ([], [SIL]):
        seq = [(0, A, B)] + [(A, B, middle[0] if middle else C)] + [(0, SIL, 0)] * len(middle) + \
              [(middle[0] if middle else B, C, 0)]
        plan = [ctx.pdf_of(l, p, r, s) for l, p, r in seq for s in range(2)]
        scores = np.full((len(plan), ctx.num_pdfs), -100.0)
        scores[np.arange(len(plan)), plan] = 0.0
        res = Decoder(g, trans.log_probs, DecoderConfig(acoustic_scale=1.0)).decode(scores)
        assert res.reached_final
        assert res.pdfs.tolist() == plan
        assert [words.sym(w) for w in res.word_ids] == ["AB", "C"]
        assert res.cost < 20  # no frame paid the -100 of a wrong pdf


def test_decoding_graph_and_alignment_graph_agree(tiny):
    """Forced decoding through a one-sentence grammar scores exactly what the aligner scores."""
    phones, topo, trans = tiny
    ctx = FullTriphone()
    lex = Lexicon({"AB": [["A", "B"]], "C": [["C"]], "BA": [["B", "A"]]})
    words = SymbolTable(["AB", "BA", "C"])
    sentence = ["AB", "C", "BA", "C"]
    lm = LmAutomaton(5, 0, [(i, w, i + 1, 0.0) for i, w in enumerate(sentence)], [], {4: 0.0})
    g = compile_graph(lex, words, phones, lm, trans, ctx, "SIL", sil_prob=0.3)
    ag = build_align_graph(sentence, lex, phones, trans, ctx, "SIL", sil_prob=0.3)
    rng = np.random.default_rng(5)
    scores = rng.normal(0, 3, size=(30, ctx.num_pdfs))
    res = Decoder(g, trans.log_probs, DecoderConfig(acoustic_scale=1.0, transition_scale=1.0, beam=1e9,
                                                          max_active=10**9)).decode(scores)
    ali = align_utterances({"u": ag}, lambda u, gr: scores[:, gr.pdf].astype(np.float32), trans.log_probs,
                           1.0, num_frames={"u": 30})["u"]
    assert res.cost == pytest.approx(-ali.score, abs=1e-3)
    assert res.pdfs.tolist() == ag.pdf[ali.states].tolist()
