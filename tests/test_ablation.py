"""`asr ablation` end to end on yesno: every kind of row trains, decodes dev and test, and tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asr.nnet.ablation import ablation_table, read_rows
from asr.utils import AsrError

ASR = Path(sys.executable).parent / "asr"

ROWS = """
[base]
max_epochs = 2
min_epochs = 1
num_layers = 1
hidden_dim = 32
threads = 1
[[row]]
name = "baseline"
group = ["net", "ensemble"]
set = {snapshots = 2}
[[row]]
name = "gru"
group = "net"
set = {kind = "rnn", cell = "gru", hidden_dim = 16, context = 0, sequence_frames = 3000}
[[row]]
name = "seed1"
group = "ensemble"
set = {seed = 1, dropout = 0.2}
[[row]]
name = "two_seeds"
group = "ensemble"
ensemble = ["baseline", "seed1"]
[[row]]
name = "snapshots"
group = "ensemble"
snapshots_of = "baseline"
[[row]]
name = "mc"
group = "ensemble"
mc_dropout_of = "seed1"
samples = 3
[[row]]
name = "vote"
group = "ensemble"
vote = ["baseline", "gru", "seed1"]
[[row]]
name = "ctc"
group = "ctc"
trainer = "ctc"
set = {num_layers = 1, hidden_dim = 16, max_epochs = 2, min_epochs = 1}
[[row]]
name = "search"
group = "search"
search = {sampler = "random", trials = 2, space = ["learning_rate=log:1e-3:1e-2"]}
[[plot]]
name = "nets"
rows = ["baseline", "seed1"]
"""


def test_ablation_rows_train_decode_and_table(yesno_run: Path, tmp_path: Path) -> None:
    exp, data = yesno_run / "exp" / "yesno", yesno_run / "data" / "yesno"
    rows = tmp_path / "ablation.toml"
    rows.write_text(ROWS)
    table = tmp_path / "ABLATION.md"
    cmd = [str(ASR), "ablation", str(rows), "--data", str(data / "train_fbank"), "--ali", str(exp / "tri1" / "ali"),
           "--gmm", str(exp / "tri1"), "--lang", str(data / "lang"), "--dev", str(data / "train_fbank"),
           "--test", str(data / "test_fbank"), "--out", str(tmp_path / "abl"), "--table", str(table),
           "--set", "cv_by=utterance"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    text = table.read_text()
    for name in ("baseline", "gru", "two_seeds", "snapshots", "mc", "vote", "ctc", "search"):
        assert f"| {name} |" in text or f"| **{name}** |" in text, name
        info = json.loads((tmp_path / "abl" / name / "row.json").read_text())
        assert 0 <= info["test_wer"] <= 100 and 0 <= info["dev_wer"] <= 100
        if name != "vote":
            assert json.loads((tmp_path / "abl" / name / "decode_test" / "decode_info.json").read_text())[
                "selection"].startswith("tuned on")
    assert len(list((tmp_path / "abl" / "baseline" / "snapshots").glob("epoch*"))) == 2
    assert json.loads((tmp_path / "abl" / "mc" / "decode_dev" / "decode_info.json").read_text())[
        "mc_dropout_samples"] == 3
    assert (tmp_path / "ABLATION_nets.png").exists() and "ABLATION_nets.png" in text
    assert text.count("| ensemble |") == 6 and text.count("**") >= 2  # the group's dev-best row in bold
    # finished rows are not trained again
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0 and "epoch" not in again.stderr


def test_rows_file_errors_name_the_row(tmp_path: Path) -> None:
    bad = tmp_path / "rows.toml"
    bad.write_text('[[row]]\nname = "a"\nensemble = ["b"]\n')
    with pytest.raises(AsrError, match="row a refers to 'b'"):
        read_rows(bad)
    bad.write_text('[[row]]\nname = "a"\n[[row]]\nname = "a"\n')
    with pytest.raises(AsrError, match="unique"):
        read_rows(bad)
    bad.write_text('[[row]]\nname = "a"\nset = {}\nvote = ["a"]\n')
    with pytest.raises(AsrError):
        read_rows(bad)


def test_table_bolds_each_groups_dev_best_not_its_test_best() -> None:
    rows = [{"name": "a", "group": "g", "set": {"x": 1}}, {"name": "b", "group": "g", "set": {"x": 2}}]
    results = [{"name": "a", "dev_wer": 5.0, "test_wer": 1.0}, {"name": "b", "dev_wer": 4.0, "test_wer": 9.0}]
    text = ablation_table(results, rows)
    assert "| g | **b** | x=2 | 4.00 | 9.00 |" in text and "| g | a | x=1 | 5.00 | 1.00 |" in text
    # a dev tie goes to the lower held-out cross-entropy, whatever test says
    tie = [{"name": "a", "dev_wer": 4.0, "dev_errors": 2, "test_wer": 0.0, "cv_loss": 0.9, "cv_acc": 0.7},
           {"name": "b", "dev_wer": 4.0, "dev_errors": 2, "test_wer": 9.0, "cv_loss": 0.5, "cv_acc": 0.8}]
    text = ablation_table(tie, rows)
    assert "| g | **b** | x=2 | 4.00 (2) | 9.00 |" in text and "| g | a |" in text
