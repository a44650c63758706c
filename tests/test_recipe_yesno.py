"""End to end: the yesno recipe (all stages through `make`) reaches Kaldi's 0.00% WER."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import ASR


@pytest.mark.slow
def test_yesno_recipe_zero_wer(yesno_run: Path) -> None:
    tmp_path, asr = yesno_run, ASR
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
    # tri2 (LDA+MLLT) and tri3 (SAT): the projection lives in the pipeline, tri3 keeps its
    # first-pass model and the training speaker's transform, and both decode as well as tri1.
    tri2, tri3 = tmp_path / "exp" / "yesno" / "tri2", tmp_path / "exp" / "yesno" / "tri3"
    proj = json.loads((tri2 / "model.json").read_text())["pipeline"]["projection"]
    assert len(proj) == 40 and len(proj[0]) == 13 * 9
    with np.load(tri3 / "model.npz") as z:
        assert "si_means" in z.files and z["si_means"].shape[2] == 40
    with np.load(tri3 / "fmllr_train.npz") as z:
        assert z["transforms"].shape[1:] == (40, 41)
    for sys_dir in (tri2, tri3):
        assert float((sys_dir / "decode_test" / "wer.txt").read_text().split()[1]) <= 1.0
    # The hybrid DNN on tri1's tied states reaches 0.00% too (issue target).
    dnn_wer = (tmp_path / "exp" / "yesno" / "dnn" / "decode_test" / "wer.txt").read_text().splitlines()[0]
    assert dnn_wer == "%WER 0.00 [ 0 / 232, 0 ins, 0 del, 0 sub ]"
    assert "| dnn | test | 0.00 |" in (tmp_path / "RESULTS.md").read_text()
    test_wav = tmp_path / "data" / "yesno" / "local" / "waves_yesno" / "1_0_0_0_0_0_1_1.wav"
    out = subprocess.run([str(asr), "decode", str(tmp_path / "exp" / "yesno" / "dnn"), str(test_wav)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["YES", "NO", "NO", "NO", "NO", "NO", "YES", "YES"]
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


def _interrupt_then_resume(trainer_module, train, out: Path, monkeypatch):
    """Run ``train()`` with the module's run_epoch raising KeyboardInterrupt at the start of
    the second training epoch (both trainers pass the optimiser as run_epoch's 5th argument,
    None when evaluating), check it left a checkpoint and no model, then run it again: the
    rerun must continue from epoch 1's checkpoint to the configured 3 epochs. The model."""
    real_epoch = trainer_module.run_epoch
    seen = {"train": 0}

    def interrupted(*args):
        if args[4] is not None:
            seen["train"] += 1
            if seen["train"] == 2:
                raise KeyboardInterrupt
        return real_epoch(*args)

    monkeypatch.setattr(trainer_module, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train()
    monkeypatch.setattr(trainer_module, "run_epoch", real_epoch)
    assert (out / "checkpoint.pt").exists() and not (out / "model.json").exists()
    model = train()
    history = json.loads((out / "train_log.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3] and model.info["epochs"] == 3
    # the model's training time counts epoch 1, run before the interruption, too
    assert model.info["train_seconds"] >= sum(r["seconds"] for r in history)
    assert not (out / "checkpoint.pt").exists()
    return model


@pytest.mark.slow
def test_dnn_training_resumes_after_an_interruption(yesno_run: Path, monkeypatch) -> None:
    """Interrupted in epoch 2, a rerun continues from the epoch-1 checkpoint."""
    import asr.nnet.train as train_mod

    data = yesno_run / "data" / "yesno" / "train_fbank"
    tri = yesno_run / "exp" / "yesno" / "tri1"
    out = yesno_run / "exp" / "yesno" / "dnn_resume"
    cfg = train_mod.TrainConfig.from_flat({"num_layers": 1, "hidden_dim": 32, "max_epochs": 3, "min_epochs": 3,
                                           "threads": 1})
    _interrupt_then_resume(train_mod, lambda: train_mod.train_dnn(data, tri / "ali", tri, out, cfg), out, monkeypatch)
    # The utterances held out of training are listed (Kaldi's valid_uttlist), a dev set to tune on.
    held = (out / "heldout_utts").read_text().split()
    assert held and set(held) <= set((data / "utt2spk").read_text().split()[::2])
    # Two DNNs on the same tree decode as an ensemble through the CLI.
    wav = yesno_run / "data" / "yesno" / "local" / "waves_yesno" / "1_0_0_0_0_0_1_1.wav"
    ens = f"{yesno_run / 'exp' / 'yesno' / 'dnn'},{out}"
    res = subprocess.run([str(ASR), "decode", ens, str(wav)], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["YES", "NO", "NO", "NO", "NO", "NO", "YES", "YES"]


@pytest.mark.slow
def test_yesno_recipe_ctc(yesno_run: Path) -> None:
    """The CTC stage: graph (lexicon + LM) and greedy decodes, CLI decoding and CTC alignment."""
    ctc = yesno_run / "exp" / "yesno" / "ctc"
    assert json.loads((ctc / "model.json").read_text())["type"] == "ctc"
    wer = (ctc / "decode_test" / "wer.txt").read_text().splitlines()[0]
    assert float(wer.split()[1]) <= CTC_YESNO_MAX_WER, wer
    assert (ctc / "decode_test_greedy" / "wer.txt").read_text().startswith("%PER ")
    results = (yesno_run / "RESULTS.md").read_text()
    assert "| ctc | test |" in results and "| ctc | test_greedy |" in results and "(PER)" in results
    wav = yesno_run / "data" / "yesno" / "local" / "waves_yesno" / "1_0_1_1_1_0_1_0.wav"
    out = subprocess.run([str(ASR), "decode", str(ctc), str(wav)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["YES", "NO", "YES", "YES", "YES", "NO", "YES", "NO"]
    out = subprocess.run([str(ASR), "decode", str(ctc), str(wav), "--search", "greedy"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["Y", "N", "Y", "Y", "Y", "N", "Y", "N"]
    ali = yesno_run / "ctc_ali"
    subprocess.run([str(ASR), "align", str(ctc), "--data", str(yesno_run / "data" / "yesno" / "test_fbank"),
                    "--out", str(ali)], check=True, capture_output=True)
    words = [l.split() for l in (ali / "words.ctm").read_text().splitlines()]
    first = [w for w in words if w[0] == "global_1_0_1_1_1_0_1_0"]
    assert [w[4] for w in first] == ["YES", "NO", "YES", "YES", "YES", "NO", "YES", "NO"]
    starts = [float(w[2]) for w in first]
    assert starts == sorted(starts) and 0 < starts[0] < starts[-1] < 7.0


# The target is 0.00%, which `make -C recipes/yesno` reaches on 2 cores; with one thread
# the same recipe gives 0.43%. 27 training utterances leave CTC seed- and thread-sensitive, hence
# the margin.
CTC_YESNO_MAX_WER = 2.0


@pytest.mark.slow
def test_ctc_training_resumes_after_an_interruption(yesno_run: Path, monkeypatch) -> None:
    import asr.nnet.ctc_train as ctc_mod

    data = yesno_run / "data" / "yesno" / "train_fbank"
    lang = yesno_run / "data" / "yesno" / "lang"
    out = yesno_run / "exp" / "yesno" / "ctc_resume"
    cfg = ctc_mod.CtcTrainConfig.from_flat({"num_layers": 1, "hidden_dim": 16, "max_epochs": 3, "min_epochs": 3,
                                            "threads": 1, "batch_frames": 4000})
    _interrupt_then_resume(ctc_mod, lambda: ctc_mod.train_ctc(data, lang, out, cfg), out, monkeypatch)


@pytest.mark.slow
def test_template_recipe_trains_on_your_own_data(yesno_run: Path, tmp_path: Path) -> None:
    """README's "your own data" path: recipes/TEMPLATE on plain Kaldi data dirs + dict + LM text."""
    import shutil

    own = tmp_path / "own"
    for s in ("train", "test"):
        (own / s).mkdir(parents=True)
        for f in ("wav.scp", "text", "utt2spk"):
            shutil.copy(yesno_run / "data" / "yesno" / s / f, own / s / f)
    lm_text = tmp_path / "lm.txt"
    lm_text.write_text("".join(" ".join(l.split()[1:]) + "\n" for l in (own / "train" / "text").read_text().splitlines()))
    root = Path(__file__).resolve().parents[1]
    cmd = ["make", "-C", str(root / "recipes" / "TEMPLATE"), f"ASR={ASR}", f"SRC={own}",
           f"DICT={yesno_run / 'data' / 'yesno' / 'local'}", f"LM_TEXT={lm_text}", "LM_ORDER=1", "SYSTEMS=mono",
           f"CONF={root / 'recipes' / 'yesno' / 'conf.toml'}", f"DATA_ROOT={tmp_path / 'data'}",
           f"EXP_ROOT={tmp_path / 'exp'}", f"RESULTS={tmp_path / 'RESULTS.md'}"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "data" / "mydata" / "local" / "lm.arpa").read_text().startswith("\\data\\")
    wer = (tmp_path / "exp" / "mydata" / "mono" / "decode_test" / "wer.txt").read_text().split()
    # A unigram from 31 random yes/no sequences is about task.arpabo's uniform loop (mono: 0.00%);
    # a trigram learns the training sequences and cost 3 errors here.
    assert float(wer[1]) <= 1.0, wer
    assert "| mono | test |" in (tmp_path / "RESULTS.md").read_text()


@pytest.mark.slow
def test_recipe_dnn_on_speed_perturbed_copies_tuned_on_held_out(tmp_path: Path) -> None:
    """AN4's DNN stage on yesno from an empty data/ and exp/: 3-way speed-perturbed copies
    aligned by tri1, LMWT chosen on the DNN's held-out utterances and applied once to test.
    Only the DNN is asked for, so every stage it reads (the test sets' fbank copies among
    them) must be a prerequisite for the run to get through."""
    from conftest import MIRROR

    if not (MIRROR / "waves_yesno.tar.gz").exists():
        pytest.skip(f"no yesno archive in {MIRROR}")
    data, exp = tmp_path / "data" / "yesno", tmp_path / "exp" / "yesno"
    root = Path(__file__).resolve().parents[1]
    cmd = ["make", "-C", str(root / "recipes" / "yesno"), f"ASR={ASR}", f"MIRROR={MIRROR}", "SYSTEMS=dnn",
           "DNN_SPEED_PERTURB=0.9,1.0,1.1", "DNN_TUNE_HELDOUT=yes", f"DATA_ROOT={tmp_path / 'data'}",
           f"EXP_ROOT={tmp_path / 'exp'}", f"RESULTS={tmp_path / 'RESULTS.md'}"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "train-mono" in run.stdout and "train-tri" in run.stdout  # from scratch
    assert (data / "test_fbank" / "feats.scp").exists()
    utts = (data / "train_sp" / "utt2spk").read_text().split()[::2]
    assert len(utts) == 3 * 31 and sum(u.startswith("sp0.9-") for u in utts) == 31
    assert len((exp / "tri1_ali_sp" / "ali.pdf.scp").read_text().splitlines()) == 93
    # The held-out utterances are real audio, and none of their copies was trained on.
    held = (exp / "dnn" / "heldout_utts").read_text().split()
    assert held and not any(u.startswith("sp") for u in held)
    info = json.loads((exp / "dnn" / "decode_test" / "decode_info.json").read_text())
    assert info["selection"].startswith("tuned on") and info["selection"].endswith("decode_heldout")
    assert (exp / "dnn" / "decode_heldout" / "best_config.json").exists()
    assert info["wer"] <= 1.0, info
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| dnn | heldout |" in results and "| dnn | test |" in results


def test_mkgraph_reuses_the_graph_of_a_model_with_the_same_tree(yesno_run: Path, tmp_path: Path) -> None:
    """The DNN on tri1's tied states takes tri1's graph (Kaldi decodes both with one graph);
    a model with another tree (mono) gets its own."""
    import shutil

    exp, lang = yesno_run / "exp" / "yesno", yesno_run / "data" / "yesno" / "lang"
    dnn = tmp_path / "dnn"
    shutil.copytree(exp / "dnn", dnn)
    (dnn / "graph.npz").unlink()
    run = subprocess.run([str(ASR), "mkgraph", str(dnn), "--lang", str(lang), "--reuse", str(exp / "tri1")],
                         capture_output=True, text=True, check=True)
    assert "reused" in run.stderr
    with np.load(dnn / "graph.npz") as a, np.load(exp / "tri1" / "graph.npz") as b:
        for k in ("arc_start", "ilabel", "olabel", "weight", "label_pdf"):
            np.testing.assert_array_equal(a[k], b[k])
        assert str(a["model_fingerprint"]) != str(b["model_fingerprint"])
    # the copy decodes (its fingerprint is the DNN's own)
    wav = yesno_run / "data" / "yesno" / "local" / "waves_yesno" / "1_0_0_0_0_0_1_1.wav"
    out = subprocess.run([str(ASR), "decode", str(dnn), str(wav)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["YES", "NO", "NO", "NO", "NO", "NO", "YES", "YES"]
    run = subprocess.run([str(ASR), "mkgraph", str(dnn), "--lang", str(lang), "--reuse", str(exp / "mono")],
                         capture_output=True, text=True, check=True)
    assert "not reusable" in run.stderr


@pytest.mark.slow
def test_dnn_on_fmllr_features_of_the_sat_gmm(yesno_run: Path, tmp_path: Path) -> None:
    """Kaldi's classic hybrid: a DNN on tri3's LDA+MLLT+fMLLR frames. The SAT alignment
    writes each speaker's transform; training reads them; decoding runs tri3's
    speaker-independent pass, adapts to each speaker (or file) and lets the DNN score."""
    exp, data = yesno_run / "exp" / "yesno", yesno_run / "data" / "yesno"
    ali = tmp_path / "tri3_ali"
    subprocess.run([str(ASR), "align", str(exp / "tri3"), "--data", str(data / "train"), "--out", str(ali)],
                   capture_output=True, text=True, check=True)
    assert (ali / "fmllr.npz").exists()
    dnn = tmp_path / "dnn_fmllr"
    train = [str(ASR), "train-dnn", "--data", str(data / "train"), "--ali", str(ali), "--gmm", str(exp / "tri3"),
             "--out", str(dnn), "--set", "fmllr=true", "--set", "num_layers=2", "--set", "hidden_dim=128",
             "--set", "max_epochs=6", "--set", "cv_by=utterance"]
    subprocess.run(train, capture_output=True, text=True, check=True)
    meta = json.loads((dnn / "model.json").read_text())
    assert meta["pipeline"]["projection"] is not None and meta["input_dim"] == 40  # tri3's LDA+MLLT space
    assert (dnn / "adapt_gmm" / "model.json").exists()
    subprocess.run([str(ASR), "mkgraph", str(dnn), "--lang", str(data / "lang"), "--reuse", str(exp / "tri3")],
                   capture_output=True, text=True, check=True)
    run = subprocess.run([str(ASR), "decode", str(dnn), "--data", str(data / "test"), "--dir", str(tmp_path / "dec")],
                         capture_output=True, text=True, check=True)
    assert "speaker-independent pass" in run.stderr
    errors = int((tmp_path / "dec" / "wer.txt").read_text().split()[3])
    assert errors <= 3, (tmp_path / "dec" / "wer.txt").read_text()  # of 232 words
    wav = data / "local" / "waves_yesno" / "1_0_0_0_0_0_1_1.wav"
    out = subprocess.run([str(ASR), "decode", str(dnn), str(wav)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["YES", "NO", "NO", "NO", "NO", "NO", "YES", "YES"]
    # fMLLR input needs its alignment's transforms (tri3's own training alignment has none)
    bad = train[:5] + [str(exp / "tri3" / "ali")] + train[6:9] + [str(tmp_path / "bad")] + train[10:]
    run = subprocess.run(bad, capture_output=True, text=True)
    assert run.returncode == 1 and "Traceback" not in run.stderr and "no fmllr.npz" in run.stderr, run.stderr
