"""Kaldi's --nj: GMM training and alignment split over processes give the one-process result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

ASR = Path(sys.executable).parent / "asr"


def _run(*args: str) -> None:
    run = subprocess.run([str(ASR), *map(str, args)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]


def test_triphone_training_with_two_jobs_equals_one(yesno_run: Path, tmp_path: Path) -> None:
    exp, data = yesno_run / "exp" / "yesno", yesno_run / "data" / "yesno"
    models = {}
    for nj in (1, 2):
        out = tmp_path / f"tri_nj{nj}"
        _run("train-tri", "--data", data / "train", "--lang", data / "lang", "--ali", exp / "mono" / "ali",
             "--out", out, "--set", "num_leaves=20", "--set", "total_gauss=80", "--set", "num_iters=6",
             "--set", "max_iter_inc=4", "--set", "realign_iters=[3]", "--set", f"nj={nj}")
        with np.load(out / "model.npz") as z:
            models[nj] = {k: z[k] for k in z.files}
        models[nj]["ali"] = (out / "ali" / "ali.pdf.ark").read_bytes()
    assert models[1].keys() == models[2].keys()
    for k in models[1]:
        if k == "ali":
            assert models[1][k] == models[2][k]
        else:
            np.testing.assert_array_equal(models[1][k], models[2][k], err_msg=k)


def test_data_dir_alignment_with_two_jobs_equals_one(yesno_run: Path, tmp_path: Path) -> None:
    exp, data = yesno_run / "exp" / "yesno", yesno_run / "data" / "yesno"
    for nj in (1, 2):
        _run("align", exp / "tri1", "--data", data / "train", "--out", tmp_path / f"ali{nj}", "--nj", nj)
    for name in ("ali.pdf.ark", "ali.tid.ark", "phones.ctm", "words.ctm"):
        assert (tmp_path / "ali1" / name).read_bytes() == (tmp_path / "ali2" / name).read_bytes(), name
