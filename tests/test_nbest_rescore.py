"""N-best lists with their cost parts (brute force over every lattice path), the log-linear
LM swap, and asr nbest-rescore end to end on the yesno recipe's lattices."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from asr.decode.lattice import Lattice
from asr.decode.nbest_rescore import NbestList, RescoreSetting, settings_grid, tuned_setting
from asr.utils import AsrError
from conftest import ASR


def _random_lattice(seed: int, n: int = 9) -> Lattice:
    rng = np.random.default_rng(seed)
    src, dst = [], []
    for s in range(n - 1):
        for d in rng.choice(np.arange(s + 1, n), size=min(2, n - 1 - s), replace=False):
            src.append(s)
            dst.append(int(d))
    o = np.lexsort((dst, src))
    src, dst = np.array(src)[o], np.array(dst)[o]
    m = len(src)
    final = np.full(n, np.inf)
    final[n - 1] = 0.3
    final[n - 2] = 1.1
    return Lattice(final, src.astype(np.int32), dst.astype(np.int32), np.arange(1, m + 1, dtype=np.int32),
                   rng.integers(0, 4, size=m).astype(np.int32), rng.uniform(0, 2, m), rng.uniform(0, 20, m))


def _all_paths(lat: Lattice):
    """(word ids, graph cost, acoustic cost) of every start-to-final path."""
    out = []

    def walk(node, arcs):
        if np.isfinite(lat.final[node]):
            a = np.array(arcs, dtype=int)
            out.append((tuple(int(w) for w in lat.olabel[a] if w > 0) if len(a) else (),
                        float(lat.graph_cost[a].sum() + lat.final[node]), float(lat.acoustic_cost[a].sum())))
        for k in np.flatnonzero(lat.src == node):
            walk(int(lat.dst[k]), arcs + [int(k)])

    walk(0, [])
    return out


@pytest.mark.parametrize("seed", range(5))
def test_nbest_paths_match_brute_force(seed):
    lat = _random_lattice(seed)
    scale, pen = 0.1, 0.5
    best: dict[tuple, tuple[float, float, float]] = {}
    for words, g, a in _all_paths(lat):
        total = g + scale * a + pen * len(words)
        if words not in best or total < best[words][0]:
            best[words] = (total, g, a)
    want = sorted(best.items(), key=lambda kv: kv[1][0])
    got = lat.nbest_paths(len(want) + 3, scale, pen)
    assert len(got) == len(want)
    for (words, cost, g, a), (w_words, (w_cost, w_g, w_a)) in zip(got, want):
        assert cost == pytest.approx(w_cost, abs=1e-9)
        assert cost == pytest.approx(g + scale * a + pen * len(words), abs=1e-9)
        if best[tuple(words)][0] == pytest.approx(cost):  # ties may come in either order
            assert (g, a) == pytest.approx(best[tuple(words)][1:], abs=1e-9)
    assert [c for _, c in lat.nbest(3, scale, pen)] == [c for _, c, _, _ in got[:3]]


def test_the_lm_weight_swaps_the_ngram_for_the_other_lm():
    nb = NbestList(words=[[1, 2], [1, 3], [4]], graph=np.array([10.0, 11.0, 12.0]),
                   acoustic=np.array([100.0, 100.0, 100.0]), ngram=np.array([8.0, 9.0, 10.0]),
                   other=np.array([9.0, 5.0, 30.0]))
    assert nb.best(0.1, 0.0, 0.0) == 0  # the n-gram alone: the first pass's order
    assert nb.best(0.1, 0.0, 1.0) == 1  # graph - ngram + other: 11, 7, 32
    assert nb.best(0.1, 0.0, 0.5) == 1  # 10.5, 9, 22
    assert nb.best(0.1, -5.0, 0.0) == 0  # a negative penalty favours longer word strings
    assert nb.best(0.1, 5.0, 0.0) == 2
    with pytest.raises(AsrError, match=r"\[0, 1\]"):
        settings_grid([10.0], [0.0], [1.5])
    assert len(settings_grid([7.0, 8.0], [0.0, 1.0], [0.0, 0.5])) == 8
    assert RescoreSetting(10.0, 0.5, 0.25).acoustic_scale == pytest.approx(0.1)


def test_a_tuned_setting_comes_only_from_the_same_model_and_lm(tmp_path: Path) -> None:
    dev = tmp_path / "decode_dev_lstm"
    dev.mkdir()
    with pytest.raises(AsrError, match="no rescore_config.json"):
        tuned_setting(dev)
    (dev / "rescore_config.json").write_text(json.dumps({"lmwt": 12, "word_penalty": 0.5, "weight": 0.75}))
    (dev / "decode_info.json").write_text(json.dumps({"model_fingerprint": "aaaa", "rescoring_lm": "lm (weights 1)"}))
    assert tuned_setting(dev, "aaaa", "lm (weights 1)") == RescoreSetting(12.0, 0.5, 0.75)
    with pytest.raises(AsrError, match="another model"):
        tuned_setting(dev, "bbbb", "lm (weights 1)")
    with pytest.raises(AsrError, match="rescored with lm \\(weights 1\\), not lm \\(weights 2\\)"):
        tuned_setting(dev, "aaaa", "lm (weights 2)")


def _asr(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(ASR), *map(str, args)], capture_output=True, text=True, check=check)


@pytest.mark.slow
def test_nbest_rescore_on_the_yesno_lattices(yesno_run: Path, tmp_path: Path) -> None:
    """An LSTM LM trained on yesno's transcripts rescores the recipe's test lattices: with
    weight 0 the n-best lists give back the decode's words; a tuned run reuses dev's setting."""
    tri1, data = yesno_run / "exp" / "yesno" / "tri1", yesno_run / "data" / "yesno"
    text = tmp_path / "lm.txt"
    lines = [l.split(maxsplit=1)[1] for l in (data / "train" / "text").read_text().splitlines()]
    text.write_text("\n".join(lines * 20) + "\n")
    _asr("lstm-lm", "train", tmp_path / "lm", text, "--set", "shortlist=2", "--set", "cutoffs=[]",
         "--set", "embed_dim=8", "--set", "hidden_dim=16", "--set", "max_epochs=1", "--set", "heldout_every=10")
    ppl = _asr("lstm-lm", "eval", tmp_path / "lm", data / "test" / "text", "--kaldi-text").stdout
    assert "ppl=" in ppl
    lm = data / "lang" / "G.arpa"
    common = ["--graph-lm", lm, "--lstm-lm", tmp_path / "lm", "--data", data / "test", "--lattices",
              tri1 / "decode_test"]
    _asr("nbest-rescore", tri1, *common, "--dir", tmp_path / "w0", "--sweep", "10:10", "--penalties", "0",
         "--weights", "0", "--nbest", "20")
    first = json.loads((tri1 / "decode_test" / "best_config.json").read_text())
    n_gram_only = (tmp_path / "w0" / "hyp.txt").read_text()
    if round(1 / first["acoustic_scale"]) == 10 and first["word_penalty"] == 0:
        assert n_gram_only == (tri1 / "decode_test" / "hyp.txt").read_text()
    _asr("nbest-rescore", tri1, *common, "--dir", tmp_path / "grid", "--sweep", "7:12")
    chosen = json.loads((tmp_path / "grid" / "rescore_config.json").read_text())
    assert set(chosen) == {"lmwt", "word_penalty", "weight"}
    _asr("nbest-rescore", tri1, *common, "--dir", tmp_path / "tuned", "--tune-on", tmp_path / "grid")
    info = json.loads((tmp_path / "tuned" / "decode_info.json").read_text())
    assert info["config"] == chosen and info["selection"].startswith("tuned on")
    assert (tmp_path / "tuned" / "wer.txt").read_text().split()[:2] == \
        (tmp_path / "grid" / "wer.txt").read_text().split()[:2]
    bad = _asr("nbest-rescore", tri1, *common, "--dir", tmp_path / "bad", check=False)
    assert bad.returncode == 1 and "--sweep" in bad.stderr and "Traceback" not in bad.stderr
