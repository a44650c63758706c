"""G2P: trained on a tiny dictionary, it pronounces words held out of it; error rates by hand."""

from __future__ import annotations

import random

import pytest

from asr.lang.g2p import G2p, G2pConfig, error_rates, held_out, strip_stress, train_g2p
from asr.utils import AsrError

# A toy spelling: each letter has one sound, except that "C" before "H" makes one phone CH.
SOUND = {"A": "AE", "B": "B", "C": "K", "D": "D", "E": "EH", "H": "HH", "I": "IH", "K": "K", "O": "AA", "T": "T"}


def _pron(word: str) -> list[str]:
    out, i = [], 0
    while i < len(word):
        if word[i:i + 2] == "CH":
            out.append("CH")
            i += 2
        else:
            out.append(SOUND[word[i]])
            i += 1
    return out


def _toy_dictionary(n: int = 1500) -> list[tuple[str, list[str]]]:
    rng = random.Random(0)
    words = {"".join(rng.choice("ABCDEHIKOT") for _ in range(rng.randint(2, 7))) for _ in range(n)}
    return [(w, _pron(w)) for w in sorted(words)]


def test_g2p_learns_a_spelling_and_pronounces_held_out_words(tmp_path):
    entries = _toy_dictionary()
    cfg = G2pConfig(hidden_dim=64, num_layers=1, embed_dim=16, max_epochs=25, batch_size=64, held_out=0.1,
                    learning_rate=5e-3)
    rates = train_g2p(entries, tmp_path / "g2p", cfg)
    assert rates["words"] > 50 and rates["per"] < 3.0, rates
    g2p = G2p.load(tmp_path / "g2p")
    test_words = [w for w, _ in entries if held_out(w, 0.1)][:20]
    assert sum(p == _pron(w) for w, p in zip(test_words, g2p.pronounce(test_words))) >= 18


def test_error_rates_by_hand():
    class Fixed:
        def pronounce(self, words):
            return [{"AB": ["AE", "B"], "CAT": ["K", "AE"], "TO": ["T", "UW"]}[w] for w in words]

    entries = [("AB", ["AE", "B"]), ("CAT", ["K", "AE", "T"]), ("TO", ["T", "AA"]), ("TO", ["T", "UW"])]
    r = error_rates(Fixed(), entries)
    # AB right; CAT one deletion of 3 phones; TO matches its second pronunciation
    assert r == {"words": 3, "per": pytest.approx(100 * 1 / 7), "wer": pytest.approx(100 / 3)}


def test_stress_and_bad_input(tmp_path):
    assert [strip_stress(p) for p in ["AH0", "EY1", "T"]] == ["AH", "EY", "T"]
    with pytest.raises(AsrError, match="too small"):
        train_g2p([("AB", ["AE", "B"])], tmp_path / "x")
    with pytest.raises(AsrError, match="not a G2P model dir"):
        G2p.load(tmp_path)


def test_lexicon_takes_cmudict_and_guesses_the_rest(tmp_path):
    from asr.lang.g2p import build_lexicon

    class Spell:
        def pronounce(self, words):
            return [list(w) for w in words]

    entries, counts = build_lexicon(["HELLO", "ZZYZXQ", "HELLO"], Spell())
    prons = {}
    for w, p in entries:
        prons.setdefault(w, []).append(p)
    assert ["HH", "AH", "L", "OW"] in prons["HELLO"] and all(not any(c.isdigit() for c in x) for x in prons["HELLO"][0])
    assert prons["ZZYZXQ"] == [list("ZZYZXQ")]
    assert counts == {"words": 2, "cmudict": 1, "g2p": 1, "without_pronunciation": 0}
    _, counts = build_lexicon(["ZZYZXQ"], None)
    assert counts["without_pronunciation"] == 1
