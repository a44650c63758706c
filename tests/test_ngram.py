"""`asr lm`: estimated n-gram LMs are normalised, match hand computations, and read back."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from asr.lang.arpa import lm_to_automaton, read_arpa
from asr.lang.ngram import estimate, read_sentences, write_arpa
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


@pytest.mark.parametrize("method", ["kn", "wb"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_history_is_normalised(method, order):
    grams = estimate(SENTS, order, method)
    histories = [()] + [g for g in grams if len(g) < order and g[-1] != "</s>"]
    for h in histories:
        assert sum(_prob(grams, h, w) for w in VOCAB) == pytest.approx(1.0, abs=1e-9), h


def test_witten_bell_unigram_by_hand():
    # 17 tokens (words + </s>), 4 types: p(w) = (c(w) + 4 * 1/4) / (17 + 4)
    grams = estimate(SENTS, 1, "wb")
    counts = {"a": 5, "b": 5, "c": 5, "</s>": 6}
    total = sum(counts.values())
    for w, c in counts.items():
        assert 10 ** grams[(w,)][0] == pytest.approx((c + 1) / (total + 4))


def test_kneser_ney_lower_order_counts_continuations():
    # y occurs 3 times after 3 different words; q occurs 3 times after only <s> and q.
    grams = estimate([["x", "y"], ["z", "y"], ["w", "y"], ["q", "q", "q"]], 2, "kn")
    assert grams[("y",)][0] > grams[("q",)][0]


def test_arpa_round_trip_and_lm_automaton(tmp_path):
    grams = estimate(SENTS, 3, "kn")
    path = tmp_path / "lm.arpa"
    write_arpa(path, grams)
    lm = read_arpa(path)
    auto = lm_to_automaton(lm)
    assert auto.num_states > 1 and auto.final_costs
    for gram, (p, _) in grams.items():
        if gram != ("<s>",):
            assert lm.probs[gram[:-1]][gram[-1]] == pytest.approx(p * math.log(10), abs=1e-5)  # natural log; 6 decimals in the file


def test_bad_input(tmp_path):
    with pytest.raises(AsrError, match="missing.txt"):
        read_sentences(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n<s> </s>\n")
    with pytest.raises(AsrError, match="no words"):
        read_sentences(empty)
    with pytest.raises(AsrError, match="order"):
        estimate(SENTS, 0)


def test_cli_writes_arpa_to_stdout(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(" ".join(s) for s in SENTS) + "\n")
    asr = Path(sys.executable).parent / "asr"
    out = subprocess.run([str(asr), "lm", "--order", "2", "--method", "wb", str(text)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("\\data\\\nngram 1=5\n") and "\\2-grams:" in out.stdout
    assert math.isclose(float(out.stdout.split("\\1-grams:\n")[1].split()[0]), estimate(SENTS, 2, "wb")[("</s>",)][0],
                        abs_tol=1e-6)
