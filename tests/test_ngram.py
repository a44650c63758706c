"""`asr lm`: estimated n-gram LMs are normalised, match hand computations and the dict reference,
prune to a size while staying normalised, and read back."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ngram_reference
from asr.lang.arpa import lm_to_automaton, read_arpa
from asr.lang.ngram import UNK, estimate, prune, read_sentences
from asr.utils import AsrError

SENTS = [s.split() for s in ["a b c", "a b", "b c a", "c c", "a", "b a b c"]]
VOCAB = ["a", "b", "c", "</s>"]


def _prob(grams, h: tuple[str, ...], w: str) -> float:
    """p(w | h) by the ARPA back-off rule."""
    if h + (w,) in grams:
        return 10 ** grams[h + (w,)][0]
    if not h:
        return 0.0
    bow = grams.get(h, (0.0, None))[1]
    return (10 ** bow if bow is not None else 1.0) * _prob(grams, h[1:], w)


def _random_corpus(seed: int, n: int = 60) -> list[list[str]]:
    rng = random.Random(seed)
    words = "the cat dog sat on a mat and ran".split()
    return [[rng.choice(words[: rng.randint(3, len(words))]) for _ in range(rng.randint(1, 8))] for _ in range(n)]


@pytest.mark.parametrize("method", ["kn", "mkn", "wb"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_history_is_normalised(method, order):
    grams = estimate(SENTS, order, method).to_grams()
    histories = [()] + [g for g in grams if len(g) < order and g[-1] != "</s>"]
    for h in histories:
        assert sum(_prob(grams, h, w) for w in VOCAB) == pytest.approx(1.0, abs=1e-9), h


@pytest.mark.parametrize("method", ["kn", "mkn", "wb"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_arrays_match_the_dict_reference(method, order, seed):
    sents = _random_corpus(seed) + SENTS
    ours = estimate(sents, order, method).to_grams()
    ref = ngram_reference.estimate(sents, order, method)
    assert set(ours) == set(ref)
    for g, (p, b) in ref.items():
        assert ours[g][0] == pytest.approx(p, abs=1e-9), g
        assert (ours[g][1] is None) == (b is None) and (b is None or ours[g][1] == pytest.approx(b, abs=1e-9)), g


def test_witten_bell_unigram_by_hand():
    # 17 tokens (words + </s>), 4 types: p(w) = (c(w) + 4 * 1/4) / (17 + 4)
    grams = estimate(SENTS, 1, "wb").to_grams()
    counts = {"a": 5, "b": 5, "c": 5, "</s>": 6}
    total = sum(counts.values())
    for w, c in counts.items():
        assert 10 ** grams[(w,)][0] == pytest.approx((c + 1) / (total + 4))


def test_kneser_ney_bigram_by_hand():
    """Corpus "a b" x2 and "b": bigram counts <s>a 2, ab 2, b</s> 3, <s>b 1; unigram
    continuation counts N1+(. a) = 1, N1+(. b) = 2, N1+(. </s>) = 1 (D = 0.5 at both orders
    as no count-of-counts n2 exists at the unigram level... computed below)."""
    grams = estimate([["a", "b"], ["a", "b"], ["b"]], 2, "kn").to_grams()
    # unigrams: continuation counts a 1, b 2, </s> 1 (total 4, 3 types); n1 = 2, n2 = 1 -> D1 = 0.5
    D1 = 2 / (2 + 2 * 1)
    uni = {w: max(c - D1, 0) / 4 + D1 * 3 / 4 * (1 / 3) for w, c in {"a": 1, "b": 2, "</s>": 1}.items()}
    for w, p in uni.items():
        assert 10 ** grams[(w,)][0] == pytest.approx(p)
    # bigrams: counts <s>a 2, <s>b 1, ab 2, b</s> 3; n1 = 1, n2 = 2 -> D2 = 1 / 5
    D2 = 1 / (1 + 2 * 2)
    p_sa = (2 - D2) / 3 + D2 * 2 / 3 * uni["a"]
    assert 10 ** grams[("<s>", "a")][0] == pytest.approx(p_sa)
    assert 10 ** grams[("<s>",)][1] == pytest.approx(D2 * 2 / 3)  # back-off weight = gamma(<s>)
    assert 10 ** grams[("b", "</s>")][0] == pytest.approx((3 - D2) / 3 + D2 * 1 / 3 * uni["</s>"])


def test_kneser_ney_lower_order_counts_continuations():
    # y occurs 3 times after 3 different words; q occurs 3 times after only <s> and q.
    grams = estimate([["x", "y"], ["z", "y"], ["w", "y"], ["q", "q", "q"]], 2, "kn").to_grams()
    assert grams[("y",)][0] > grams[("q",)][0]


def test_vocabulary_maps_other_words_to_unk_and_covers_unseen_words():
    lm = estimate(SENTS, 2, "kn", vocabulary=["a", "b", "zzz"])
    grams = lm.to_grams()
    assert (UNK,) in grams and ("zzz",) in grams and ("c",) not in grams
    assert ("b", UNK) in grams  # "b c" became "b <UNK>"
    vocab = ["a", "b", "zzz", UNK, "</s>"]
    for h in [(), ("a",), ("b",), (UNK,), ("<s>",)]:
        assert sum(_prob(grams, h, w) for w in vocab) == pytest.approx(1.0, abs=1e-9), h


@pytest.mark.parametrize("order", [2, 3])
def test_pruning_keeps_every_history_normalised(order):
    sents = _random_corpus(3, 200)
    lm = estimate(sents, order, "kn")
    vocab = sorted({w for s in sents for w in s}) + ["</s>"]
    small = prune(lm, max_ngrams=lm.num_ngrams * 2 // 3)
    assert small.num_ngrams <= lm.num_ngrams * 2 // 3 and len(small.keys[0]) == len(lm.keys[0])
    grams = small.to_grams()
    histories = [()] + [g for g in grams if len(g) < order and g[-1] != "</s>"]
    for h in histories:
        assert sum(_prob(grams, h, w) for w in vocab) == pytest.approx(1.0, abs=1e-6), h
    # Every kept n-gram's history is kept too, and kept probabilities are unchanged.
    full = lm.to_grams()
    for g in grams:
        assert g[:-1] in grams or len(g) == 1
        assert grams[g][0] == pytest.approx(full[g][0], abs=1e-6)
    # A higher threshold keeps fewer n-grams.
    assert prune(lm, threshold=1e-3).num_ngrams <= prune(lm, threshold=1e-5).num_ngrams


def test_pruning_removes_the_least_informative_ngram_first():
    """Of two bigrams after "a", the one its back-off already predicts well goes first."""
    sents = [["a", "b"]] * 20 + [["a", "c"]] + [["c"]] * 30 + [["b", "d"]] * 5
    lm = estimate(sents, 2, "wb")
    full = lm.to_grams()
    one_less = prune(lm, max_ngrams=lm.num_ngrams - 1).to_grams()
    gone = set(full) - set(one_less)
    assert len(gone) == 1 and gone == {("a", "c")}


def test_arpa_round_trip_and_lm_automaton(tmp_path):
    lm = estimate(SENTS, 3, "kn")
    grams = lm.to_grams()
    path = tmp_path / "lm.arpa"
    lm.write_arpa(path)
    back = read_arpa(path)
    auto = lm_to_automaton(back)
    assert auto.num_states > 1 and auto.final_costs
    for gram, (p, _) in grams.items():
        if gram != ("<s>",):
            assert back.probs[gram[:-1]][gram[-1]] == pytest.approx(p * math.log(10), abs=1e-5)


def test_bad_input(tmp_path):
    with pytest.raises(AsrError, match="missing.txt"):
        read_sentences(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n<s> </s>\n")
    with pytest.raises(AsrError, match="no words"):
        read_sentences(empty)
    with pytest.raises(AsrError, match="order"):
        estimate(SENTS, 0)
    with pytest.raises(AsrError, match="no words"):
        estimate([], 2)
    with pytest.raises(AsrError, match="one of them"):
        prune(estimate(SENTS, 2))


def test_cli_writes_arpa_to_stdout(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(" ".join(s) for s in SENTS) + "\n")
    asr = Path(sys.executable).parent / "asr"
    out = subprocess.run([str(asr), "lm", "--order", "2", "--method", "wb", str(text)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("\\data\\\nngram 1=5\n") and "\\2-grams:" in out.stdout
    eos = next(l for l in out.stdout.splitlines() if l.split("\t")[1:2] == ["</s>"])
    assert math.isclose(float(eos.split()[0]), estimate(SENTS, 2, "wb").to_grams()[("</s>",)][0], abs_tol=1e-6)


def test_perplexity_by_hand_and_oovs(tmp_path):
    """asr lm-eval's figures for a hand-made bigram: every token's probability by the ARPA
    rules, </s> included; an unknown word maps to <UNK> when the LM has one, else is skipped."""
    from asr.lang.arpa_scorer import ArpaScorer, perplexity

    arpa = tmp_path / "lm.arpa"
    arpa.write_text("\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-0.5\t</s>\n-99\t<s>\t-0.2\n-0.4\tX\t-0.1\n"
                    "-0.6\tY\n\n\\2-grams:\n-0.1\t<s> X\n-0.3\tX Y\n\n\\end\\\n")
    lm = ArpaScorer(arpa)
    r = perplexity(lm, [["X", "Y"], ["Y"]])
    # X Y </s>: -0.1, -0.3, bo(Y)=0 + -0.5 | Y </s>: bo(<s>) -0.2 + -0.6, -0.5
    logprob = -0.1 - 0.3 - 0.5 - 0.8 - 0.5
    assert r["logprob"] == pytest.approx(logprob) and r["words"] == 3 and r["oovs"] == 0
    assert r["ppl"] == pytest.approx(10 ** (-logprob / 5))
    skipped = perplexity(lm, [["X", "ZZZ", "Y"]])  # no <UNK>: ZZZ skipped, Y starts afresh (unigram)
    assert skipped["oovs"] == 1 and skipped["oov_rate"] == pytest.approx(100 / 3)
    assert skipped["logprob"] == pytest.approx(-0.1 - 0.6 - 0.5)


def test_modified_kneser_ney_discounts_by_hand():
    """Chen & Goodman's three discounts from n1..n4 (here 4, 2, 1, 1: Y = 0.5), and the
    single KN discount when a count of counts is missing."""
    from asr.lang.ngram import _discount, _mkn_discounts

    d1, d2, d3 = _mkn_discounts(np.array([1, 1, 1, 1, 2, 2, 3, 4]))
    assert (d1, d2, d3) == pytest.approx((1 - 2 * 0.5 * 2 / 4, 2 - 3 * 0.5 * 1 / 2, 3 - 4 * 0.5 * 1 / 1))
    no_fours = np.array([1, 1, 2, 3])
    assert _mkn_discounts(no_fours) == (_discount(no_fours),) * 3

