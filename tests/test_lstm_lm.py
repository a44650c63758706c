"""The LSTM LM (asr lstm-lm): a distribution over its whole word list, learns a toy language
to its known entropy, round-trips through disk, resumes an interrupted training exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import asr.lang.lstm_lm as lstm_lm
from asr.lang.lstm_lm import LmVocab, LstmLm, LstmLmConfig, sentence_batches, train_lstm_lm
from asr.utils import AsrError

WORDS = [f"W{i}" for i in range(12)]


def _toy_text(n: int = 1500, seed: int = 0) -> list[list[str]]:
    """A uniformly drawn first word W0..W8, then the next three words in order: after the
    first word everything is determined, so the entropy is ln 9 per sentence."""
    rng = np.random.default_rng(seed)
    return [[WORDS[k + j] for j in range(4)] for k in rng.integers(0, 9, size=n)]


def _cfg(**kw) -> LstmLmConfig:
    base = dict(shortlist=8, cutoffs=(4,), embed_dim=16, hidden_dim=32, batch_tokens=120, max_epochs=4,
                learning_rate=1e-2, dropout=0.0, threads=1, heldout_every=20)
    base.update(kw)
    return LstmLmConfig(**base)


def test_vocab_shortlist_and_out_of_shortlist_unigram():
    vocab = LmVocab(["A", "B", "C", "D", "<UNK>"], [10, 5, 2, 0, 1], shortlist=2, unk="<UNK>")
    assert vocab.tokens[:4] == ["</s>", "<oos>", "A", "B"]
    assert vocab.encode("A") == (2, 0.0)
    # C, D, <UNK> share the rest, add-one: (2 + 1) / (3 + 1 + 2) for C
    t, extra = vocab.encode("C")
    assert t == 1 and extra == pytest.approx(math.log(3 / 6))
    assert sum(math.exp(vocab.encode(w)[1]) for w in ["C", "D", "<UNK>"]) == pytest.approx(1.0)
    assert vocab.encode("NEVER-SEEN") == vocab.encode("<UNK>")
    with pytest.raises(AsrError, match="outside the LM's word list"):
        LmVocab(["A"], [1], 1, "<UNK>").encode("Z")


def test_batches_cover_every_sentence_once_within_the_token_budget():
    lengths = np.array([1, 5, 3, 9, 2, 2, 7, 30])
    batches = sentence_batches(lengths, 20, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    for b in batches:  # a sentence longer than the budget travels alone
        assert len(b) == 1 or len(b) * (lengths[b].max() + 1) <= 20


def test_learns_a_toy_language_to_its_entropy(tmp_path):
    text = _toy_text()
    info = train_lstm_lm(lambda: iter(text), tmp_path / "lm", _cfg(shortlist=12), WORDS + ["<UNK>"])
    best = math.exp(math.log(9) / 5)  # ln 9 per sentence, over 4 words + </s>
    assert info["heldout_ppl"] < best * 1.15
    lm = LstmLm.load(tmp_path / "lm")
    good, bad = lm.sentence_costs([["W2", "W3", "W4", "W5"], ["W5", "W3", "W4", "W2"]])
    assert good == pytest.approx(math.log(9), abs=0.4) and bad > good + 10


@pytest.mark.parametrize("cutoffs", [(4,), ()])  # adaptive softmax, plain softmax
def test_round_trip_and_perplexity_matches_the_sentence_costs(tmp_path, cutoffs):
    text = _toy_text(300)
    train_lstm_lm(lambda: iter(text), tmp_path / "lm", _cfg(max_epochs=1, cutoffs=cutoffs), WORDS + ["<UNK>"])
    a, b = LstmLm.load(tmp_path / "lm"), LstmLm.load(tmp_path / "lm")
    sents = [["W1", "W2"], ["W9", "W10", "W11"], ["OOV", "W3"]]
    assert np.array_equal(a.sentence_costs(sents), b.sentence_costs(sents))
    r = a.perplexity(sents)
    assert r["oovs"] == 1 and r["words"] == 7
    assert r["ppl"] == pytest.approx(math.exp(a.sentence_costs(sents).sum() / (7 + 3)))
    lm = a
    # Every word of the list (shortlist and out-of-shortlist alike) and </s>: one distribution.
    with torch.no_grad():
        inp = torch.zeros(1, 1, dtype=torch.long)
        h, _ = lm.net.lstm(lm.net.embed(inp))
        token_logp = lm.net.log_probs(h[0]).numpy()[0]
    total = math.exp(token_logp[0]) + sum(
        math.exp(token_logp[t] + extra) for t, extra in (lm.vocab.encode(w) for w in WORDS + ["<UNK>"]))
    assert total == pytest.approx(1.0, abs=1e-5)



def test_interrupted_training_resumes_to_the_same_model(tmp_path, monkeypatch):
    text = _toy_text(400)
    cfg = _cfg(max_epochs=2, checkpoint_minutes=0.0)  # a checkpoint after every batch
    full = train_lstm_lm(lambda: iter(text), tmp_path / "full", cfg, WORDS + ["<UNK>"])
    real, calls = lstm_lm.batch_tensors, {"n": 0}

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 25:  # in the middle of the second epoch (16 batches each)
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(lstm_lm, "batch_tensors", failing)
    with pytest.raises(KeyboardInterrupt):
        train_lstm_lm(lambda: iter(text), tmp_path / "cut", cfg, WORDS + ["<UNK>"])
    assert (tmp_path / "cut" / "checkpoint.pt").exists()
    monkeypatch.setattr(lstm_lm, "batch_tensors", real)
    resumed = train_lstm_lm(lambda: iter(text), tmp_path / "cut", cfg, WORDS + ["<UNK>"])
    assert resumed["heldout_ppl"] == pytest.approx(full["heldout_ppl"], rel=1e-5)
    assert not (tmp_path / "cut" / "checkpoint.pt").exists()


def test_bad_input(tmp_path):
    with pytest.raises(AsrError, match="cutoffs"):
        LstmLmConfig(cutoffs=(10, 5))
    with pytest.raises(AsrError, match="not an LSTM LM dir"):
        LstmLm.load(tmp_path)
    with pytest.raises(AsrError, match="nothing to hold out"):
        train_lstm_lm(lambda: iter([["A", "B"]] * 5), tmp_path / "lm", _cfg(), None)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "lstm_lm.json").write_text('{"type": "lstm_lm", "config": {}}')
    with pytest.raises(AsrError, match="damaged LSTM LM"):
        LstmLm.load(tmp_path / "broken")


def test_interpolated_perplexity_ends_are_the_two_models(tmp_path):
    from asr.lang.arpa_scorer import ArpaScorer, perplexity
    from asr.lang.lstm_lm import interpolated_perplexity
    from asr.lang.ngram import estimate

    text = _toy_text(300)
    train_lstm_lm(lambda: iter(text), tmp_path / "lm", _cfg(max_epochs=1), WORDS + ["<UNK>"])
    lm = LstmLm.load(tmp_path / "lm")
    estimate(text, 2, "kn", vocabulary=WORDS).write_arpa(tmp_path / "g.arpa")
    ngram = ArpaScorer(tmp_path / "g.arpa")
    sents = [["W1", "W2", "W3", "W4"], ["W8", "W9", "W10", "W11"], ["W4", "W0"]]
    mix = interpolated_perplexity(lm, ngram, sents, [0.0, 0.5, 1.0])
    assert mix[0.0] == pytest.approx(perplexity(ngram, sents)["ppl"], rel=1e-9)
    assert mix[1.0] == pytest.approx(lm.perplexity(sents)["ppl"], rel=1e-6)
    # a mixture is never worse than the worse of its two ends, word by word
    assert mix[0.5] <= max(mix[0.0], mix[1.0])
    with pytest.raises(AsrError, match=r"\[0, 1\]"):
        interpolated_perplexity(lm, ngram, sents, [2.0])
