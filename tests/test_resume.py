"""A kill -9 in the middle of training, then the same command again, ends with the same
model as an uninterrupted run (same seed, same threads): mono, tri1, tri2 (MLLT), tri3
(fMLLR) and DNN."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ASR, ROOT

CONF = ROOT / "recipes" / "yesno" / "conf.toml"


def _run(cmd: list) -> None:
    run = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]


def _kill_midway_then_rerun(cmd: list, out: Path, checkpoint: str) -> None:
    """Start ``cmd``; SIGKILL it once its first checkpoint is on disk (and a moment later,
    so it is busy in a later iteration); check it left a checkpoint and no model; rerun."""
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (out / checkpoint).exists():
        assert proc.poll() is None, "training finished before its first checkpoint was seen"
        assert time.time() < deadline
        time.sleep(0.01)
    time.sleep(0.5)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / checkpoint).exists() and not (out / "model.json").exists()
    _run(cmd)
    assert (out / "model.json").exists() and not (out / checkpoint).exists()


def _same_arrays(a: Path, b: Path) -> None:
    with np.load(a) as za, np.load(b) as zb:
        assert sorted(za.files) == sorted(zb.files)
        for k in za.files:
            np.testing.assert_array_equal(za[k], zb[k], err_msg=k)


@pytest.mark.slow
def test_gmm_training_killed_and_rerun_gives_the_same_model(yesno_run: Path, tmp_path: Path) -> None:
    data, lang = yesno_run / "data" / "yesno" / "train", yesno_run / "data" / "yesno" / "lang"
    for name, extra in [("mono", ["train-mono"]),
                        ("tri1", ["train-tri", "--section", "tri1", "--ali", yesno_run / "exp" / "yesno" / "mono" / "ali"]),
                        ("tri2", ["train-lda-mllt", "--ali", yesno_run / "exp" / "yesno" / "tri1" / "ali"]),
                        ("tri3", ["train-sat", "--prev", yesno_run / "exp" / "yesno" / "tri2"])]:
        def cmd(out: Path) -> list:
            return [ASR, *extra, "--config", CONF, "--data", data, "--lang", lang, "--out", out]

        whole, resumed = tmp_path / f"{name}_whole", tmp_path / f"{name}_resumed"
        _run(cmd(whole))
        _kill_midway_then_rerun(cmd(resumed), resumed, "checkpoint.npz")
        _same_arrays(whole / "model.npz", resumed / "model.npz")
        assert (whole / "ali" / "ali.pdf.scp").exists()
        import kaldiio

        a = kaldiio.load_scp(str(whole / "ali" / "ali.pdf.scp"))
        b = kaldiio.load_scp(str(resumed / "ali" / "ali.pdf.scp"))
        assert sorted(a) == sorted(b) and all(np.array_equal(a[u], b[u]) for u in a)


@pytest.mark.slow
def test_dnn_training_killed_and_rerun_gives_the_same_network(yesno_run: Path, tmp_path: Path) -> None:
    import torch

    tri = yesno_run / "exp" / "yesno" / "tri1"

    def cmd(out: Path) -> list:
        return [ASR, "train-dnn", "--config", CONF, "--data", yesno_run / "data" / "yesno" / "train_fbank",
                "--ali", tri / "ali", "--gmm", tri, "--out", out, "--set", "threads=1", "--set", "max_epochs=6",
                "--set", "min_epochs=6", "--set", "dropout=0.2", "--set", "spec_augment=true"]

    whole, resumed = tmp_path / "dnn_whole", tmp_path / "dnn_resumed"
    _run(cmd(whole))
    _kill_midway_then_rerun(cmd(resumed), resumed, "checkpoint.pt")
    a = torch.load(whole / "nnet.pt", weights_only=True)
    b = torch.load(resumed / "nnet.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    _same_arrays(whole / "model.npz", resumed / "model.npz")
