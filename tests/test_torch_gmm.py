"""The torch (GPU) path of GMM scoring, EM statistics and batched Viterbi, run on the CPU
against the numpy/numba path it must reproduce."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.gmm.diag_gmm import DiagGmmSet
from asr.gmm.torch_gmm import TorchGmm
from asr.hmm.align_torch import torch_device, viterbi_torch
from asr.hmm.align import _viterbi_one
from asr.utils import AsrError

ASR = Path(sys.executable).parent / "asr"


def _gmm(seed: int = 0, P: int = 9, M: int = 8, D: int = 5) -> DiagGmmSet:
    rng = np.random.default_rng(seed)
    lw = np.log(rng.dirichlet(np.ones(M), size=P))
    for p, m in enumerate(rng.integers(1, M + 1, P)):
        lw[p, m:] = -np.inf  # mixtures of every size: several buckets, padding inside them
    lw -= np.logaddexp.reduce(lw, axis=1, keepdims=True)
    return DiagGmmSet(rng.normal(0, 2, (P, M, D)), rng.uniform(0.3, 2, (P, M, D)), lw)


def test_torch_log_likelihoods_match_numpy():
    gmm = _gmm()
    x = np.random.default_rng(1).normal(0, 2, (300, 5)).astype(np.float32)
    got = TorchGmm(gmm, "cpu").log_likelihoods(x, chunk=128).numpy()
    np.testing.assert_allclose(got, gmm.log_likelihoods(x), rtol=1e-4, atol=1e-3)


def test_torch_statistics_match_numpy():
    gmm = _gmm(2)
    rng = np.random.default_rng(3)
    x = rng.normal(0, 2, (2000, 5))
    ids = rng.integers(-1, gmm.num_pdfs, 2000)
    ref = gmm.accumulate(x, ids)
    got = TorchGmm(gmm, "cpu").accumulate(x, ids, chunk=300)
    np.testing.assert_allclose(got.occ, ref.occ, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.sx, ref.sx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got.sxx, ref.sxx, rtol=1e-4, atol=1e-3)
    assert got.loglik == pytest.approx(ref.loglik, rel=1e-5) and got.frames == ref.frames
    two = rng.normal(0, 1, (2000, 3))  # statistics of other features under the same posteriors
    np.testing.assert_allclose(TorchGmm(gmm).accumulate(x, ids, two).sx, gmm.accumulate(x, ids, two).sx,
                               rtol=1e-4, atol=1e-4)


def _random_graph(rng, S: int):
    """A left-to-right graph: each state from itself, its predecessor, and (skip) two back."""
    pred = np.full((S, 3), -1, dtype=np.int64)
    for j in range(S):
        pred[j, 0] = j
        if j >= 1:
            pred[j, 1] = j - 1
        if j >= 2 and rng.random() < 0.5:
            pred[j, 2] = j - 2
    arc = np.where(pred >= 0, rng.normal(-1, 0.5, pred.shape), -np.inf)
    init = np.full(S, -np.inf)
    init[0] = 0.0
    final = np.full(S, -np.inf)
    final[-1] = 0.0
    return pred, arc, init, final


def test_batched_torch_viterbi_finds_the_compiled_paths():
    rng = np.random.default_rng(4)
    graphs, emissions = [], []
    for S, T in [(4, 9), (7, 20), (3, 3), (6, 2), (5, 1), (2, 12)]:  # the last-but-two cannot fit
        graphs.append(_random_graph(rng, S))
        emissions.append(rng.normal(0, 3, (T, S)).astype(np.float32))
    paths = viterbi_torch([g[0] for g in graphs], [g[1] for g in graphs], [g[2] for g in graphs],
                          [g[3] for g in graphs], emissions)
    for (pred, arc, init, final), e, got in zip(graphs, emissions, paths):
        states, ks, score = _viterbi_one(pred, arc, init, final, e)
        if not np.isfinite(score):
            assert got is None
            continue
        np.testing.assert_array_equal(got[0], states)
        np.testing.assert_array_equal(got[1][1:], ks[1:])
        assert got[2] == pytest.approx(score, rel=1e-12)


def test_device_names():
    assert torch_device("cpu") is None and torch_device("torch") == torch.device("cpu")
    with pytest.raises(AsrError):
        torch_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(AsrError, match="no GPU"):
            torch_device("cuda")


def test_training_on_the_torch_path_matches_the_cpu_path(yesno_run: Path, tmp_path: Path) -> None:
    exp, data = yesno_run / "exp" / "yesno", yesno_run / "data" / "yesno"
    logs = {}
    for device in ("cpu", "torch"):
        out = tmp_path / device
        run = subprocess.run([str(ASR), "train-tri", "--data", str(data / "train"), "--lang", str(data / "lang"),
                              "--ali", str(exp / "mono" / "ali"), "--out", str(out), "--set", "num_leaves=20",
                              "--set", "total_gauss=80", "--set", "num_iters=6", "--set", "max_iter_inc=4",
                              "--set", "realign_iters=[3]", "--set", f"device={device}"],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        import json

        logs[device] = json.loads((out / "train_log.json").read_text())
        logs[device + "_ali"] = (out / "ali" / "ali.pdf.ark").read_bytes()
    for a, b in zip(logs["cpu"], logs["torch"]):
        assert a["loglik_per_frame"] == pytest.approx(b["loglik_per_frame"], rel=1e-5)
        assert a["gaussians"] == b["gaussians"]
    assert logs["cpu_ali"] == logs["torch_ali"]  # the same best paths
