"""DNN training under torchrun (DDP, gloo on CPU): two processes give one process's model,
every rank makes the same newbob decisions, and only rank 0 writes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ASR = Path(sys.executable).parent / "asr"
TORCHRUN = Path(sys.executable).parent / "torchrun"


def _train(yesno_run: Path, out: Path, ranks: int, *extra: str) -> subprocess.CompletedProcess:
    exp, data = yesno_run / "exp" / "yesno", yesno_run / "data" / "yesno"
    args = ["-m", "asr.cli", "train-dnn", "--data", str(data / "train_fbank"), "--ali", str(exp / "tri1" / "ali"),
            "--gmm", str(exp / "tri1"), "--out", str(out), "--set", "num_layers=2", "--set", "hidden_dim=32",
            "--set", "max_epochs=4", "--set", "min_epochs=1", "--set", "batch_size=64", "--set", "threads=1",
            "--set", "cv_by=utterance", *extra]
    cmd = ([str(TORCHRUN), "--standalone", f"--nproc_per_node={ranks}"] + args if ranks > 1
           else [sys.executable] + args)
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
@pytest.mark.parametrize("chunk_frames", [0, 3000])  # in memory; streamed from the archive in chunks
def test_two_ranks_train_the_model_one_process_trains(yesno_run: Path, tmp_path: Path, chunk_frames: int) -> None:
    plain = ["--set", "batch_norm=false", "--set", "dropout=0.0", "--set", f"chunk_frames={chunk_frames}"]
    _train(yesno_run, tmp_path / "one", 1, *plain)
    _train(yesno_run, tmp_path / "two", 2, *plain)
    a = torch.load(tmp_path / "one" / "nnet.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "nnet.pt", weights_only=True)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    log1 = json.loads((tmp_path / "one" / "train_log.json").read_text())
    log2 = json.loads((tmp_path / "two" / "train_log.json").read_text())
    assert [r["accepted"] for r in log1] == [r["accepted"] for r in log2]
    for r1, r2 in zip(log1, log2):
        assert r1["cv_loss"] == pytest.approx(r2["cv_loss"], rel=1e-4) and r2["ranks"] == 2


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
def test_ranks_agree_on_held_out_losses_with_batch_norm(yesno_run: Path, tmp_path: Path) -> None:
    run = _train(yesno_run, tmp_path / "bn", 2, "--set", "batch_norm=true")
    losses: dict[int, list[str]] = {}
    for m in re.finditer(r"epoch +(\d+): .*held-out loss ([0-9.]+) acc ([0-9.]+)", run.stderr):
        losses.setdefault(int(m.group(1)), []).append(m.group(2) + "/" + m.group(3))
    # every epoch is logged by both ranks, with the same held-out figures
    assert losses and all(len(v) == 2 and len(set(v)) == 1 for v in losses.values()), losses
    assert sum("(rejected)" in line for line in run.stderr.splitlines()) % 2 == 0
    assert (tmp_path / "bn" / "model.json").exists() and not (tmp_path / "bn" / "checkpoint.pt").exists()


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
def test_ctc_under_two_ranks_equals_one_process(yesno_run: Path, tmp_path: Path) -> None:
    exp, data = yesno_run / "exp" / "yesno", yesno_run / "data" / "yesno"
    models = {}
    for ranks in (1, 2):
        out = tmp_path / f"ctc{ranks}"
        args = ["-m", "asr.cli", "train-ctc", "--data", str(data / "train_fbank"), "--lang", str(data / "lang"),
                "--out", str(out), "--set", "num_layers=1", "--set", "hidden_dim=16", "--set", "dropout=0.0",
                "--set", "max_epochs=3", "--set", "min_epochs=1", "--set", "batch_frames=3000", "--set", "threads=1",
                "--set", "cv_by=utterance"]
        cmd = ([str(TORCHRUN), "--standalone", f"--nproc_per_node={ranks}"] if ranks > 1 else [sys.executable]) + args
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        models[ranks] = torch.load(out / "nnet.pt", weights_only=True)
    for k in models[1]:
        torch.testing.assert_close(models[1][k], models[2][k], rtol=1e-4, atol=1e-5)
