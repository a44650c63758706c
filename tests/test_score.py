from __future__ import annotations

import math

import pytest

from asr.score import ErrorCounts, align_words, read_text, score_texts, write_scoring
from asr.utils import AsrError


def test_kaldi_line_format():
    e = ErrorCounts(ref_words=773, ins=4, dels=10, subs=68, sentences=130, sentence_errors=53)
    assert e.errors == 82
    assert e.kaldi_line() == "%WER 10.61 [ 82 / 773, 4 ins, 10 del, 68 sub ]"
    assert e.ser_line() == "%SER 40.77 [ 53 / 130 ]"


def test_align_known():
    ali = align_words(["A", "B"], ["A", "X", "C"])
    assert [op for _, _, op in ali] == ["C", "S", "I"]
    assert ali[2] == (None, "C", "I")
    ali = align_words(["A", "B", "C", "D"], ["A", "C", "D"])
    assert ali == [("A", "A", "C"), ("B", None, "D"), ("C", "C", "C"), ("D", "D", "C")]
    # Deterministic: same input, same output.
    assert align_words(["A", "B"], ["B", "A"]) == align_words(["A", "B"], ["B", "A"])


def test_identical():
    e, _ = score_texts({"u1": ["A", "B"], "u2": ["C"]}, {"u1": ["A", "B"], "u2": ["C"]})
    assert e.wer == 0.0 and e.errors == 0 and e.sentence_errors == 0
    assert e.kaldi_line() == "%WER 0.00 [ 0 / 3, 0 ins, 0 del, 0 sub ]"


def test_empty_hypothesis():
    e, lines = score_texts({"u1": ["A", "B", "C"]}, {"u1": []})
    assert (e.dels, e.ins, e.subs, e.wer) == (3, 0, 0, 100.0)
    assert lines[1] == "u1 hyp  ***  ***  ***"
    # Missing hypothesis behaves the same.
    e2, _ = score_texts({"u1": ["A", "B", "C"]}, {})
    assert e2 == e


def test_empty_reference():
    # An utterance with no words is fine inside a set that has some...
    e, _ = score_texts({"u1": [], "u2": ["A"]}, {"u1": ["A", "B"], "u2": ["A"]})
    assert e.ins == 2 and e.ref_words == 1 and e.wer == 200.0
    # ...but a WER over no reference words at all is undefined, not "0.00 [0 / 0]".
    for hyp in ({"u1": ["A", "B"]}, {"u1": []}):
        with pytest.raises(AsrError, match="no words"):
            score_texts({"u1": []}, hyp)
    with pytest.raises(AsrError, match="no utterances"):
        score_texts({}, {})


def test_per_utt_lines():
    e, lines = score_texts({"u1": ["A", "BB"]}, {"u1": ["A", "X", "C"]})
    assert (e.subs, e.ins, e.dels) == (1, 1, 0)
    assert lines == [
        "u1 ref  A  BB  ***",
        "u1 hyp  A  X   C",
        "u1 op   C  S   I",
        "u1 #csid 1 1 1 0",
    ]


def test_unknown_hyp_utt():
    with pytest.raises(AsrError, match="u9"):
        score_texts({"u1": ["A"]}, {"u1": ["A"], "u9": ["B"]})


def test_write_scoring(tmp_path):
    (tmp_path / "ref").write_text("u1 A B C\nu2 D\nu3\n")
    (tmp_path / "hyp").write_text("u1 A X C\nu2 D\nu3 E\n")
    assert read_text(tmp_path / "ref")["u3"] == []
    e = write_scoring(tmp_path / "ref", tmp_path / "hyp", tmp_path / "out")
    assert (e.subs, e.ins, e.ref_words, e.sentence_errors) == (1, 1, 4, 2)
    assert (tmp_path / "out" / "wer.txt").read_text() == (
        "%WER 50.00 [ 2 / 4, 1 ins, 0 del, 1 sub ]\n%SER 66.67 [ 2 / 3 ]\n"
    )
    per_utt = (tmp_path / "out" / "per_utt.txt").read_text().splitlines()
    assert "u1 op   C  S  C" in per_utt and len(per_utt) == 12
