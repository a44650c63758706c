"""The WFST graph compiler, the token-passing decoder and its lattices, against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from asr.decode.config import DecoderConfig
from asr.decode.decoder import Decoder, result_from_lattice
from asr.decode.lattice import Lattice, read_lattices, write_lattices
from asr.decode.run import decode_scores
from asr.decode.word_align import word_spans
from asr.graph.compile import DecodingGraph, compile_graph, epsilon_rank
from asr.graph.fst import Fst
from asr.lang.arpa import lm_to_automaton, read_arpa, write_unigram_arpa
from asr.utils import AsrError

INF = math.inf


def make_graph(num_states, arcs, final, label_tid, label_pdf, start=0) -> DecodingGraph:
    """arcs: (src, dst, ilabel, olabel, weight); labels 1.. map to (tid, pdf)."""
    src, dst, il, ol, w = (list(c) for c in zip(*arcs))
    f = Fst.from_arcs(num_states, start, src, dst, il, ol, w, final)
    return DecodingGraph(start=f.start, final=f.final, arc_start=f.arc_start, ilabel=f.ilabel, olabel=f.olabel,
                         weight=f.weight, dst=f.dst, label_tid=np.array([-1] + label_tid, dtype=np.int32),
                         label_pdf=np.array([-1] + label_pdf, dtype=np.int32),
                         eps_rank=epsilon_rank(f.arc_start, f.ilabel, f.dst))


def two_word_graph(loop: bool) -> DecodingGraph:
    """0 -eps:w1-> 1 [pdf 0 loop, pdf 1 loop] -> 3 (final); 0 -eps:w2-> 2 [pdf 2 loop, pdf 1] -> 3.

    Emitting arcs consume the pdf of their label; with ``loop`` the final state goes back to
    the start by an epsilon arc, so word sequences of any length are possible.
    """
    # labels: 1 (tid 0, pdf 0) self-loop, 2 (tid 1, pdf 0) forward, 3 (tid 2, pdf 1) loop,
    # 4 (tid 3, pdf 1) exit, 5 (tid 4, pdf 2) loop, 6 (tid 5, pdf 2) forward, 7 (tid 7, pdf 1) exit
    arcs = [(0, 1, 0, 1, 0.7), (0, 2, 0, 2, 1.3),
            (1, 1, 1, 0, 0.0), (1, 4, 2, 0, 0.0), (4, 4, 3, 0, 0.0), (4, 3, 4, 0, 0.1),
            (2, 2, 5, 0, 0.0), (2, 5, 6, 0, 0.0), (5, 5, 3, 0, 0.0), (5, 3, 7, 0, 0.0)]
    if loop:
        arcs.append((3, 0, 0, 0, 0.3))
    return make_graph(6, arcs, {3: 0.25}, [0, 1, 2, 3, 4, 5, 7], [0, 0, 1, 1, 2, 2, 1])


TRANS_LOG_PROBS = np.log(np.array([0.6, 0.4, 0.7, 0.3, 0.5, 0.5, 0.8, 0.2]))


def arc_cost(g, a, tlp, cfg):
    lab = g.ilabel[a]
    trans = cfg.transition_scale * -tlp[g.label_tid[lab]] if lab > 0 else 0.0
    return float(g.weight[a]) + trans + cfg.word_penalty * (g.olabel[a] > 0)


def brute_force(g: DecodingGraph, scores: np.ndarray, tlp: np.ndarray, cfg: DecoderConfig):
    """Every path that consumes exactly T frames and ends in a final state: (cost, labels, words)."""
    T = scores.shape[0]
    results = []

    def rec(state, t, cost, labels, words, depth):
        if depth > 60:
            return
        if t == T and np.isfinite(g.final[state]):
            results.append((cost + float(g.final[state]), list(labels), list(words)))
        for a in range(g.arc_start[state], g.arc_start[state + 1]):
            c = cost + arc_cost(g, a, tlp, cfg)
            w = words + ([int(g.olabel[a])] if g.olabel[a] > 0 else [])
            lab = int(g.ilabel[a])
            if lab > 0:
                if t < T:
                    rec(int(g.dst[a]), t + 1, c - cfg.acoustic_scale * scores[t, g.label_pdf[lab]], labels + [lab], w,
                        depth + 1)
            else:
                rec(int(g.dst[a]), t, c, labels, w, depth + 1)

    rec(g.start, 0, 0.0, [], [], 0)
    results.sort(key=lambda r: r[0])
    return results


EXACT = dict(beam=1e9, max_active=10**6, lattice_beam=1e9)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("loop", [False, True])
def test_decoder_matches_brute_force(seed, loop):
    g = two_word_graph(loop)
    rng = np.random.default_rng(seed)
    T = 6
    scores = rng.normal(0, 3, (T, 3))
    cfg = DecoderConfig(acoustic_scale=0.7, transition_scale=0.5, word_penalty=0.4, **EXACT)
    paths = brute_force(g, scores, TRANS_LOG_PROBS, cfg)
    assert len(paths) >= 2
    best_cost, best_labels, best_words = paths[0]
    assert paths[1][0] - best_cost > 1e-6  # a unique optimum
    res = Decoder(g, TRANS_LOG_PROBS, cfg).decode(scores)
    assert res.reached_final
    assert res.cost == pytest.approx(best_cost, abs=1e-4)
    assert res.word_ids == best_words
    assert list(res.tids) == [g.label_tid[l] for l in best_labels]
    assert list(res.pdfs) == [g.label_pdf[l] for l in best_labels]


@pytest.mark.parametrize("seed", range(3))
def test_lattice_holds_every_path_within_the_beam(seed):
    """With an unbounded lattice beam, the lattice's n-best equals brute force's distinct
    word sequences, and its best path is the one-best decode."""
    g = two_word_graph(loop=True)
    scores = np.random.default_rng(seed).normal(0, 2, (7, 3))
    cfg = DecoderConfig(acoustic_scale=1.0, transition_scale=1.0, **EXACT)
    res = Decoder(g, TRANS_LOG_PROBS, cfg).decode(scores)
    best = {}
    for cost, _, words in brute_force(g, scores, TRANS_LOG_PROBS, cfg):
        best.setdefault(tuple(words), cost)
    expected = sorted(best.items(), key=lambda x: x[1])[:4]
    nbest = res.lattice.nbest(4, 1.0)
    assert [tuple(w) for w, _ in nbest] == [w for w, _ in expected]
    np.testing.assert_allclose([c for _, c in nbest], [c for _, c in expected], atol=1e-3)
    assert nbest[0][1] == pytest.approx(res.cost, abs=1e-3)


def test_rescoring_equals_decoding_again():
    """The best path of a lattice at another LMWT and penalty is what decoding at them gives."""
    g = two_word_graph(loop=True)
    for seed in range(5):
        scores = np.random.default_rng(seed).normal(0, 3, (8, 3))
        lat = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(acoustic_scale=0.5, **EXACT)).decode(scores).lattice
        for acs, pen in [(0.1, 0.0), (0.3, 1.0), (2.0, -0.5)]:
            direct = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(acoustic_scale=acs, word_penalty=pen, **EXACT)).decode(scores)
            again = result_from_lattice(lat, acs, pen)
            assert again.word_ids == direct.word_ids
            assert again.cost == pytest.approx(direct.cost, abs=1e-4)
            np.testing.assert_array_equal(again.tids, direct.tids)


def test_lattice_beam_prunes_and_keeps_the_best_path():
    g = two_word_graph(loop=True)
    scores = np.random.default_rng(3).normal(0, 3, (12, 3))
    wide = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(acoustic_scale=1.0, beam=1e9, lattice_beam=1e9)).decode(scores)
    narrow = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(acoustic_scale=1.0, beam=1e9, lattice_beam=1.0)).decode(scores)
    assert narrow.lattice.num_arcs < wide.lattice.num_arcs
    assert narrow.word_ids == wide.word_ids and narrow.cost == pytest.approx(wide.cost)
    # every path left is within the lattice beam: the second best sequence costs at most best + 1
    for _, cost in narrow.lattice.nbest(10, 1.0):
        assert cost <= narrow.cost + 1.0 + 1e-6


def test_pruning_a_lattice_equals_decoding_with_that_lattice_beam():
    """Lattice.pruned (Kaldi's lattice-prune) keeps exactly the n-best a narrower lattice beam keeps."""
    g = two_word_graph(loop=True)
    scores = np.random.default_rng(3).normal(0, 3, (12, 3))
    wide = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(acoustic_scale=1.0, beam=1e9, lattice_beam=1e9)).decode(scores)
    narrow = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(acoustic_scale=1.0, beam=1e9, lattice_beam=1.5)).decode(scores)
    pruned = wide.lattice.pruned(1.0, 1.5)
    assert pruned.num_arcs < wide.lattice.num_arcs and bool(np.all(pruned.src < pruned.dst))
    got, want = pruned.nbest(20, 1.0), narrow.lattice.nbest(20, 1.0)
    assert [w for w, _ in got] == [w for w, _ in want]
    np.testing.assert_allclose([c for _, c in got], [c for _, c in want], atol=1e-6)
    assert wide.lattice.pruned(1.0, 1e9).num_arcs == wide.lattice.num_arcs


def test_zero_lattice_beam_keeps_the_best_path_only():
    g = two_word_graph(loop=True)
    scores = np.random.default_rng(6).normal(0, 3, (10, 3))
    res = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(acoustic_scale=1.0, beam=1e9, lattice_beam=0.0)).decode(scores)
    exact = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(acoustic_scale=1.0, **EXACT)).decode(scores)
    assert res.word_ids == exact.word_ids and res.cost == pytest.approx(exact.cost)
    assert len(res.lattice.nbest(5, 1.0)) == 1


def test_posteriors_sum_to_one_per_frame():
    g = two_word_graph(loop=True)
    scores = np.random.default_rng(4).normal(0, 1, (9, 3))
    lat = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(acoustic_scale=1.0, **EXACT)).decode(scores).lattice
    post = lat.arc_posteriors(1.0)
    frames = lat.arc_frames()
    emitting = lat.ilabel > 0
    sums = np.bincount(frames[emitting], weights=post[emitting], minlength=9)
    np.testing.assert_allclose(sums, 1.0, atol=1e-6)


def test_word_penalty_reduces_words():
    g = two_word_graph(loop=True)
    # Frames favour w1 w2 w1 (pdfs 0 1 | 2 1 | 0 1).
    scores = np.full((6, 3), -10.0)
    for t, p in enumerate([0, 1, 2, 1, 0, 1]):
        scores[t, p] = 0.0
    base = dict(acoustic_scale=1.0, transition_scale=1.0, **EXACT)
    res0 = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(**base)).decode(scores)
    assert res0.word_ids == [1, 2, 1]
    res1 = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(word_penalty=100.0, **base)).decode(scores)
    assert len(res1.word_ids) == 1
    ref = brute_force(g, scores, TRANS_LOG_PROBS, DecoderConfig(word_penalty=100.0, **base))[0]
    assert res1.cost == pytest.approx(ref[0], abs=1e-4)


def test_narrow_beam_is_never_better_than_exact():
    g = two_word_graph(loop=True)
    scores = np.random.default_rng(11).normal(0, 3, (6, 3))
    exact = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(acoustic_scale=1.0, **EXACT)).decode(scores)
    narrow = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(beam=2.0, max_active=2, acoustic_scale=1.0)).decode(scores)
    if narrow.reached_final:
        assert narrow.cost >= exact.cost - 1e-6


def test_epsilon_cycle_rejected():
    with pytest.raises(AsrError, match="epsilon cycle"):
        make_graph(3, [(0, 1, 0, 0, 0.0), (1, 2, 0, 0, 0.0), (2, 1, 0, 0, 0.0), (1, 1, 1, 0, 0.0)], {2: 0.0},
                   [0], [0])


def test_bad_input_rejected():
    g = two_word_graph(loop=False)
    dec = Decoder(g, TRANS_LOG_PROBS)
    with pytest.raises(AsrError, match="no frames"):
        dec.decode(np.zeros((0, 3)))
    with pytest.raises(AsrError, match="pdfs"):
        dec.decode(np.zeros((4, 2)))
    with pytest.raises(AsrError, match="NaN"):
        dec.decode(np.full((4, 3), np.nan))
    with pytest.raises(AsrError, match="transition ids"):
        Decoder(g, np.log([0.5, 0.5]))


def test_empty_lattice_rejected(tmp_path):
    empty = Lattice(np.array([INF]), *(np.zeros(0, dtype=np.int32) for _ in range(4)), np.zeros(0), np.zeros(0))
    with pytest.raises(AsrError, match="empty lattice"):
        empty.best_path(0.1)
    (tmp_path / "bad.txt").write_text("utt1\n0 1 3 0 1.0\n\n")
    with pytest.raises(AsrError, match="bad.txt:2"):
        read_lattices(tmp_path / "bad.txt")


@pytest.mark.parametrize("name", ["lat.gz", "lat.txt", "lat.npz"])
def test_lattice_archive_round_trip(tmp_path, name):
    """Kaldi text (gzipped or not) and the binary archive give the lattices back: the same
    arcs (costs to float32 / 6 digits), so the same best paths at any scale."""
    g = two_word_graph(loop=True)
    lats = {}
    for k in range(3):
        scores = np.random.default_rng(k).normal(0, 2, (7, 3))
        lats[f"u{k}"] = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(acoustic_scale=0.5)).decode(scores).lattice
    lats["u3"] = lats["u0"].pruned(0.5, 0.0)  # a one-path lattice beside the bushy ones
    write_lattices(tmp_path / name, lats)
    back = read_lattices(tmp_path / name)
    assert list(back) == sorted(lats)
    for u, lat in lats.items():
        assert back[u].num_arcs == lat.num_arcs and back[u].num_nodes <= lat.num_nodes
        for acs in (0.2, 0.5, 1.0):
            a, b = lat.best_path(acs), back[u].best_path(acs)
            assert lat.words(a) == back[u].words(b)
            assert lat.path_cost(a, acs) == pytest.approx(back[u].path_cost(b, acs), abs=1e-3)
    if name == "lat.npz":  # binary -> text -> binary (text renumbers nodes): the same paths
        write_lattices(tmp_path / "t.gz", back)
        write_lattices(tmp_path / "again.npz", read_lattices(tmp_path / "t.gz"))
        again = read_lattices(tmp_path / "again.npz")
        for u in lats:
            assert again[u].num_arcs == back[u].num_arcs
            got, want = again[u].nbest(20, 0.5), back[u].nbest(20, 0.5)
            assert [w for w, _ in got] == [w for w, _ in want]
            np.testing.assert_allclose([c for _, c in got], [c for _, c in want], atol=1e-4)


def test_damaged_binary_lattice_archive_rejected(tmp_path):
    g = two_word_graph(loop=True)
    lat = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(acoustic_scale=0.5)).decode(
        np.random.default_rng(0).normal(0, 2, (7, 3))).lattice
    write_lattices(tmp_path / "lat.npz", {"u": lat})
    with np.load(tmp_path / "lat.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["dst_minus_src"][0] = -1  # an arc going backwards
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(AsrError, match="bad.npz: u: arcs out of order"):
        read_lattices(tmp_path / "bad.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "lat.npz").read_bytes()[:200])
    with pytest.raises(AsrError, match="cut.npz: not a binary lattice archive"):
        read_lattices(tmp_path / "cut.npz")


# -- the compiled graph ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bigram(tmp_path_factory):
    arpa = tmp_path_factory.mktemp("lm") / "G.arpa"
    arpa.write_text("\\data\\\nngram 1=4\nngram 2=3\n\n\\1-grams:\n-0.5\t</s>\n-99\t<s>\t-0.2\n-0.4\tX\t-0.1\n"
                    "-0.6\tY\t-0.3\n\n\\2-grams:\n-0.1\t<s> X\n-0.2\tX Y\n-0.3\tY </s>\n\n\\end\\\n")
    return read_arpa(arpa)


# The ARPA file above, by hand (log10): unigrams with back-offs, and the bigrams.
UNI = {"</s>": (-0.5, 0.0), "X": (-0.4, -0.1), "Y": (-0.6, -0.3), "<s>": (-99, -0.2)}
BI = {("<s>", "X"): -0.1, ("X", "Y"): -0.2, ("Y", "</s>"): -0.3}


def _lm_cost(words):
    """-ln P(words </s> | <s>) by the ARPA back-off rules."""
    hist, log10p = "<s>", 0.0
    for w in words + ["</s>"]:
        log10p += BI[(hist, w)] if (hist, w) in BI else UNI[hist][1] + UNI[w][0]
        hist = w
    return -log10p * math.log(10)


@pytest.mark.parametrize("context", ["mono", "tri"])
def test_hclg_accepts_exactly_the_lm_word_strings_with_their_costs(tiny_mono, bigram, context):
    """Project HCLG on its words and determinize it: every word string up to length 3 is there,
    at the LM cost plus the silence choices (sil_prob 0.5: ln 2 per word boundary)."""
    import kaldifst

    t = tiny_mono
    ctx = t.ctx if context == "mono" else _all_contexts(t)
    g = compile_graph(t.lex, t.words, t.phones, lm_to_automaton(bigram), t.trans, ctx, "SIL", sil_prob=0.5)
    fst = Fst.from_arcs(g.num_states, g.start, np.repeat(np.arange(g.num_states), np.diff(g.arc_start)), g.dst,
                        g.olabel, g.olabel, g.weight, g.final).to_kaldifst()
    kaldifst.rmepsilon(fst)
    det = Fst.from_kaldifst(kaldifst.determinize(fst))
    for n in range(4):
        for words in itertools.product(["X", "Y"], repeat=n):
            s, cost = det.start, 0.0
            for w in words:
                arcs = [a for a in range(det.arc_start[s], det.arc_start[s + 1]) if det.olabel[a] == t.words.id(w)]
                assert len(arcs) == 1, words
                cost += det.weight[arcs[0]]
                s = det.dst[arcs[0]]
            expected = _lm_cost(list(words)) + (n + 1) * math.log(2)
            assert cost + det.final[s] == pytest.approx(expected, abs=5e-3), words  # minimization quantizes to 1/1024


def _all_contexts(t):
    """A context-dependent stand-in: pdf depends on the left phone (for A and B), as a tree can."""
    class LeftContext:
        context_width = 3

        def __init__(self, base):
            self.base = base
            self.num_pdfs = base.num_pdfs + 16

        def pdf_of(self, left, phone, right, s):
            p = self.base.pdf_of(left, phone, right, s)
            return p if phone == 1 else self.base.num_pdfs + 4 * (left % 4) + s

    return LeftContext(t.ctx)


@pytest.fixture(scope="module")
def real_graph(tmp_path_factory, tiny_mono):
    t = tiny_mono
    arpa = tmp_path_factory.mktemp("lm") / "G.arpa"
    write_unigram_arpa(arpa, ["X", "Y"])
    return compile_graph(t.lex, t.words, t.phones, lm_to_automaton(read_arpa(arpa)), t.trans, t.ctx)


def _plan_scores(pdf_plan, num_pdfs):
    scores = np.full((len(pdf_plan), num_pdfs), -50.0)
    scores[np.arange(len(pdf_plan)), pdf_plan] = 0.0
    return scores


def test_decode_compiled_graph(real_graph, tiny_mono):
    t = tiny_mono
    # SIL(0 1 2) | X = A(3 3 4) B(5 6 6) | Y = B(5 5 6) | SIL(0 1 2)
    plan = [0, 1, 2, 3, 3, 4, 5, 6, 6, 5, 5, 6, 0, 1, 2]
    dec = Decoder(real_graph, t.trans.log_probs, DecoderConfig(acoustic_scale=1.0))
    res = dec.decode(_plan_scores(plan, t.ctx.num_pdfs))
    assert res.reached_final
    assert [t.words.sym(w) for w in res.word_ids] == ["X", "Y"]
    np.testing.assert_array_equal(res.pdfs, plan)
    prons = {t.words.id(w): [tuple(t.phones.id(p) for p in pr) for pr in alts] for w, alts in t.lex.prons.items()}
    assert word_spans(res.tids, res.word_ids, t.trans, prons, {t.phones.id("SIL")}) == [(3, 8), (9, 11)]
    # The path's acoustic cost is zero, so the total is the graph + transition cost, all small.
    assert 0 < res.cost < 20
    # Without the silences and with Y first: "Y X".
    res2 = dec.decode(_plan_scores([5, 6, 3, 4, 4, 5, 6], t.ctx.num_pdfs))
    assert [t.words.sym(w) for w in res2.word_ids] == ["Y", "X"]
    assert word_spans(res2.tids, res2.word_ids, t.trans, prons, {t.phones.id("SIL")}) == [(0, 1), (2, 6)]


def test_decode_compiled_graph_matches_brute_force(real_graph, tiny_mono):
    t = tiny_mono
    scores = np.random.default_rng(5).normal(0, 2, (5, t.ctx.num_pdfs))
    cfg = DecoderConfig(acoustic_scale=1.0, transition_scale=0.3, word_penalty=0.2, **EXACT)
    paths = brute_force(real_graph, scores, t.trans.log_probs, cfg)
    res = Decoder(real_graph, t.trans.log_probs, cfg).decode(scores)
    assert res.cost == pytest.approx(paths[0][0], abs=1e-4)
    assert res.word_ids == paths[0][2]


def test_parallel_jobs_match_one_job(real_graph, tiny_mono):
    t = tiny_mono
    rng = np.random.default_rng(8)
    scores = {f"u{k:02d}": rng.normal(0, 2, (int(rng.integers(4, 30)), t.ctx.num_pdfs)) for k in range(12)}
    cfg = DecoderConfig(acoustic_scale=0.5)
    dec = Decoder(real_graph, t.trans.log_probs, cfg)
    one = decode_scores(dec, scores, nj=1)
    two = decode_scores(dec, scores, nj=2)
    assert sorted(one) == sorted(two) == sorted(scores)
    for u in scores:
        assert one[u].word_ids == two[u].word_ids and one[u].cost == two[u].cost
        np.testing.assert_array_equal(one[u].lattice.src, two[u].lattice.src)
        np.testing.assert_array_equal(one[u].lattice.graph_cost, two[u].lattice.graph_cost)


def test_graph_file_round_trip_and_damage(real_graph, tmp_path):
    real_graph.save(tmp_path / "graph.npz")
    back = DecodingGraph.load(tmp_path / "graph.npz")
    for name in ("arc_start", "ilabel", "olabel", "weight", "dst", "final", "label_tid", "label_pdf", "eps_rank"):
        np.testing.assert_array_equal(getattr(back, name), getattr(real_graph, name))
    data = dict(np.load(tmp_path / "graph.npz"))
    data["dst"] = data["dst"] + 1000
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(AsrError, match="damaged"):
        DecodingGraph.load(tmp_path / "bad.npz")


def test_words_without_pronunciation(tiny_mono, tmp_path, caplog):
    t = tiny_mono
    write_unigram_arpa(tmp_path / "G.arpa", ["X", "Y", "ZED"])
    lm = lm_to_automaton(read_arpa(tmp_path / "G.arpa"))
    g = compile_graph(t.lex, t.words, t.phones, lm, t.trans, t.ctx)
    assert "ZED" in caplog.text and set(g.olabel[g.olabel > 0]) == {t.words.id("X"), t.words.id("Y")}
    write_unigram_arpa(tmp_path / "G2.arpa", ["ZED"])
    with pytest.raises(AsrError, match="no LM word has a pronunciation"):
        compile_graph(t.lex, t.words, t.phones, lm_to_automaton(read_arpa(tmp_path / "G2.arpa")), t.trans, t.ctx)


# -- LM rescoring -----------------------------------------------------------------------------------
def _bigram_file(tmp_path):
    p = tmp_path / "big.arpa"
    p.write_text("\\data\\\nngram 1=4\nngram 2=4\n\n\\1-grams:\n-0.5\t</s>\n-99\t<s>\t-0.2\n-0.4\tX\t-0.1\n"
                 "-0.6\tY\t-0.3\n\n\\2-grams:\n-0.05\t<s> Y\n-0.1\tY Y\n-1.5\tX Y\n-0.2\tY </s>\n\n\\end\\\n")
    return p


def test_lm_rescoring_equals_decoding_with_the_new_lm(tiny_mono, tmp_path):
    """Decode with a unigram graph, rescore its lattice with a bigram: the best path and its
    cost are those of decoding with the bigram's own graph (up to HCLG's weight quantisation)."""
    from asr.decode.lm_rescore import ArpaScorer, rescore_lattice

    t = tiny_mono
    write_unigram_arpa(tmp_path / "small.arpa", ["X", "Y"])
    big = _bigram_file(tmp_path)
    g_small = compile_graph(t.lex, t.words, t.phones, lm_to_automaton(read_arpa(tmp_path / "small.arpa")), t.trans,
                            t.ctx)
    g_big = compile_graph(t.lex, t.words, t.phones, lm_to_automaton(read_arpa(big)), t.trans, t.ctx)
    old, new = ArpaScorer(tmp_path / "small.arpa", t.words), ArpaScorer(big, t.words)
    cfg = DecoderConfig(acoustic_scale=0.3, **EXACT)
    changed = 0
    for seed in range(6):
        scores = np.random.default_rng(seed).normal(0, 2, (14, t.ctx.num_pdfs))
        first = Decoder(g_small, t.trans.log_probs, cfg).decode(scores)
        rescored = rescore_lattice(first.lattice, old, new)
        again = result_from_lattice(rescored, cfg.acoustic_scale, 0.0)
        direct = Decoder(g_big, t.trans.log_probs, cfg).decode(scores)
        assert again.word_ids == direct.word_ids
        assert again.cost == pytest.approx(direct.cost, abs=0.02)
        changed += again.word_ids != first.word_ids
        # rescoring with the same LM changes nothing
        same = result_from_lattice(rescore_lattice(first.lattice, old, old), cfg.acoustic_scale, 0.0)
        assert same.word_ids == first.word_ids and same.cost == pytest.approx(first.cost, abs=1e-6)
    assert changed  # the bigram's preferences (Y Y, no X Y) do change some decodes
    assert new.sentence_cost([t.words.id("Y")]) == pytest.approx((0.05 + 0.2) * math.log(10))


def test_lm_rescoring_bad_input(tiny_mono, tmp_path):
    from asr.decode.lm_rescore import ArpaScorer

    (tmp_path / "bad.arpa").write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-0.5\n\n\\end\\\n")
    with pytest.raises(AsrError, match="bad.arpa:5"):
        ArpaScorer(tmp_path / "bad.arpa", tiny_mono.words)
    with pytest.raises(AsrError, match="missing"):
        ArpaScorer(tmp_path / "none.arpa", tiny_mono.words)
    (tmp_path / "noeos.arpa").write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-0.5\tX\n\n\\end\\\n")
    with pytest.raises(AsrError, match="</s>"):
        ArpaScorer(tmp_path / "noeos.arpa", tiny_mono.words)


def test_grid_words_equal_best_paths_at_each_setting():
    g = two_word_graph(loop=True)
    lat = Decoder(g, TRANS_LOG_PROBS, DecoderConfig(acoustic_scale=0.5, **EXACT)).decode(
        np.random.default_rng(9).normal(0, 3, (12, 3))).lattice
    settings = [(a, p) for a in (0.1, 0.5, 2.0) for p in (-1.0, 0.0, 2.0)]
    assert lat.best_words_grid(settings) == [lat.words(lat.best_path(a, p)) for a, p in settings]


def test_arpa_with_a_missing_back_off_entry_is_one_clear_error(tmp_path):
    (tmp_path / "lm.arpa").write_text("\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-0.5\t</s>\n-99\t<s>\t-0.2\n"
                                      "-0.4\tX\n\n\\2-grams:\n-0.1\tY X\n\n\\end\\\n")
    with pytest.raises(AsrError, match=r"2-gram 'Y X' has no 1-gram 'Y'"):
        read_arpa(tmp_path / "lm.arpa")
