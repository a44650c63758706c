"""End to end: the yesno recipe (all stages through `make`) reaches Kaldi's 0.00% WER."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("ASR_CORPUS_MIRROR", ROOT.parent / "shared" / "corpora"))


@pytest.mark.slow
def test_yesno_recipe_zero_wer(tmp_path: Path) -> None:
    if not (MIRROR / "waves_yesno.tar.gz").exists():
        pytest.skip(f"no yesno archive in {MIRROR}")
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    asr = Path(sys.executable).parent / "asr"
    cmd = ["make", "-C", str(ROOT / "recipes" / "yesno"), f"ASR={asr}", f"MIRROR={MIRROR}",
           f"DATA_ROOT={tmp_path / 'data'}", f"EXP_ROOT={tmp_path / 'exp'}", f"RESULTS={tmp_path / 'RESULTS.md'}"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    wer = (tmp_path / "exp" / "yesno" / "mono" / "decode_test" / "wer.txt").read_text().splitlines()[0]
    assert wer == "%WER 0.00 [ 0 / 232, 0 ins, 0 del, 0 sub ]"
    assert "| mono | test | 0.00 |" in (tmp_path / "RESULTS.md").read_text()
    # The triphone stage ran from the monophone alignment: a tree model, decoded, aligned.
    tri = tmp_path / "exp" / "yesno" / "tri1"
    assert json.loads((tri / "model.json").read_text())["context"]["kind"] == "tree"
    assert (tri / "ali" / "ali.tid.scp").exists() and (tri / "ali" / "ali.pdf.scp").exists()
    tri_wer = float((tri / "decode_test" / "wer.txt").read_text().split()[1])
    assert tri_wer <= 1.0, tri_wer
    assert "| tri1 | test |" in (tmp_path / "RESULTS.md").read_text()
    # The model dir is self-contained: the CLI decodes a test wav with it alone.
    wav = tmp_path / "data" / "yesno" / "local" / "waves_yesno" / "1_0_1_1_1_0_1_0.wav"
    out = subprocess.run([str(asr), "decode", str(tmp_path / "exp" / "yesno" / "mono"), str(wav)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["YES", "NO", "YES", "YES", "YES", "NO", "YES", "NO"]
    # Kaldi wav.scp in, Kaldi text out, scored by `asr score`.
    hyp = tmp_path / "hyp.txt"
    test_dir = tmp_path / "data" / "yesno" / "test"
    subprocess.run([str(asr), "decode", str(tmp_path / "exp" / "yesno" / "mono"), "--scp", str(test_dir / "wav.scp"),
                    "--out", str(hyp)], check=True, capture_output=True)
    lines = hyp.read_text().splitlines()
    assert len(lines) == 29 and lines[0].split()[0] == "global_1_0_0_0_0_0_0_0"
    score = subprocess.run([str(asr), "score", str(test_dir / "text"), str(hyp)], capture_output=True, text=True,
                           check=True)
    assert score.stdout.startswith("%WER ") and "/ 232," in score.stdout
    # Bad input: a one-line error naming the file, exit status 1, no traceback.
    bad = subprocess.run([str(asr), "decode", str(tmp_path / "exp" / "yesno" / "mono"), str(tmp_path / "missing.wav")],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "missing.wav" in bad.stderr and "Traceback" not in bad.stderr
