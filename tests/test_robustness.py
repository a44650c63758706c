"""Careless and hostile input: nothing runs code from data, every failure is one line naming
the file or utterance, and nothing quietly succeeds with a wrong answer."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from asr import audio as audio_mod
from asr import backend
from asr.audio import read_audio, read_wav_scp_entry
from asr.features import FeatureConfig, make_features
from asr.utils import AsrError, atomic_open, read_utf8, write_text_atomic
from conftest import ASR


def _asr(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(ASR), *map(str, args)], capture_output=True, text=True, **kw)


def _one_line_error(run: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit status 1 (argparse: 2), no traceback, one error line holding every needle."""
    assert run.returncode in (1, 2), (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    errors = [l for l in run.stderr.splitlines() if "error:" in l]
    assert len(errors) == 1, run.stderr
    for n in needles:
        assert n in errors[0], (n, errors[0])


def _tone(path: Path, rate: int = 16000, seconds: float = 0.5) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    return path


# ---------------------------------------------------------------- code from data


class _Payload:
    """Unpickling this runs code (what a planted checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_checkpoint_is_refused_not_run(tmp_path: Path) -> None:
    import torch

    from asr.nnet.schedule import Newbob, load_checkpoint

    marker, ckpt = tmp_path / "ran", tmp_path / "checkpoint.pt"
    torch.save({"fingerprint": "x", "weights": _Payload(marker)}, ckpt)
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(AsrError, match="checkpoint.pt: not a checkpoint this trainer wrote"):
        load_checkpoint(ckpt, "x", net, opt, Newbob(0.1, 1, 0.01, 0.001, 3))
    assert not marker.exists()


def test_a_real_checkpoint_still_resumes(tmp_path: Path) -> None:
    import torch

    from asr.nnet.schedule import Newbob, load_checkpoint, save_checkpoint

    net = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.ones(1, 2)).sum().backward()
    opt.step()
    sched = Newbob(0.1, 1, 0.01, 0.001, 3)
    sched.end_epoch(net, 1.0, {"epoch": 1})
    save_checkpoint(tmp_path / "c.pt", "fp", net, opt, sched, seconds=123.5)
    net2 = torch.nn.Linear(2, 2)
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.1)
    sched2 = Newbob(0.1, 1, 0.01, 0.001, 3)
    assert load_checkpoint(tmp_path / "c.pt", "fp", net2, opt2, sched2)
    assert sched2.epoch == 1 and torch.equal(net2.weight, net.weight)
    # the time already spent counts in the resumed run's total, and is not schedule state
    assert sched2.seconds_before == 123.5 and "seconds" not in sched2.state
    assert 123.5 <= sched2.seconds(time.time()) < 124.5


def test_a_checkpoint_resumes_under_another_epoch_limit_only(tmp_path: Path) -> None:
    import dataclasses

    import torch

    from asr.nnet.schedule import Newbob, checkpoint_fingerprint, load_checkpoint, save_checkpoint

    @dataclasses.dataclass
    class Cfg:
        learning_rate: float = 0.1
        max_epochs: int = 10

    def fingerprint(**cfg) -> str:
        return checkpoint_fingerprint(Cfg(**cfg), data="d")

    net, sched = torch.nn.Linear(2, 2), Newbob(0.1, 1, 0.01, 0.001, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for epoch in (1, 2):
        sched.end_epoch(net, 1.0 / epoch, {"epoch": epoch})
    save_checkpoint(tmp_path / "c.pt", fingerprint(), net, opt, sched)

    def resumes(fp: str) -> bool:
        net2 = torch.nn.Linear(2, 2)
        return load_checkpoint(tmp_path / "c.pt", fp, net2, torch.optim.SGD(net2.parameters(), lr=0.1),
                               Newbob(0.1, 1, 0.01, 0.001, 3))

    assert resumes(fingerprint(max_epochs=6)) and resumes(fingerprint(max_epochs=20))
    assert not resumes(fingerprint(learning_rate=0.2))
    assert not resumes(fingerprint(max_epochs=6, learning_rate=0.2))


def test_a_file_name_ending_in_a_pipe_is_a_path_not_a_command(tmp_path: Path) -> None:
    from asr.acoustic import features_for_files

    marker = tmp_path / "y"
    name = f"x; touch {marker} |"
    with pytest.raises(AsrError, match="audio file not found"):
        read_audio(name)
    model = SimpleNamespace(feature=FeatureConfig(), pipeline=None)
    with pytest.raises(AsrError, match="audio file not found"):
        features_for_files(model, [name])
    assert not marker.exists()
    # A wav.scp entry may be a command (Kaldi's convention), and only a wav.scp entry.
    wav = _tone(tmp_path / "a.wav")
    samples, rate = read_wav_scp_entry(f"cat {wav} |")
    assert rate == 16000 and len(samples) == 8000


# ---------------------------------------------------------------- audio checked on read


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_rejected_naming_the_file(tmp_path: Path, bad: float) -> None:
    x = np.zeros(16000, dtype=np.float32)
    x[100] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AsrError, match=r"nan\.wav: 1 of 16000 samples are NaN or infinite"):
        read_audio(path)


def test_a_nan_file_in_a_data_dir_stops_the_features_naming_it(tmp_path: Path) -> None:
    good, bad = _tone(tmp_path / "good.wav"), tmp_path / "bad.wav"
    x = np.zeros(8000, dtype=np.float32)
    x[5] = np.nan
    sf.write(bad, x, 16000, subtype="FLOAT")
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text(f"s1-a {good}\ns1-b {bad}\n")
    (d / "utt2spk").write_text("s1-a s1\ns1-b s1\n")
    with pytest.raises(AsrError, match="bad.wav"):
        make_features(d, FeatureConfig())
    assert not (d / "cmvn.scp").exists()  # no NaN CMVN statistics left behind


@pytest.mark.parametrize("rate", [1, 100, 3999, 500000])
def test_implausible_sample_rates_are_rejected_at_once(tmp_path: Path, rate: int) -> None:
    path = tmp_path / "r.wav"
    sf.write(path, np.zeros(2000, dtype=np.float32), rate)
    with pytest.raises(AsrError, match=f"implausible sample rate {rate} Hz"):
        read_audio(path, target_rate=16000)


@pytest.mark.parametrize("rate", [16001, 44100, 22050, 11025, 8000, 48000, 17777, 96000])
def test_odd_sample_rates_resample_with_a_bounded_kernel(rate: int) -> None:
    up, down = backend.resample_ratio(rate, 16000)
    assert up <= backend.MAX_RESAMPLE_PHASES and down <= backend.MAX_RESAMPLE_PHASES
    assert abs(up / down - 16000 / rate) < 1e-4 * 16000 / rate
    y = backend.resample(np.random.default_rng(0).standard_normal(rate).astype(np.float32), rate, 16000)
    assert abs(len(y) - 16000) <= 2


def test_a_truncated_wav_is_named(tmp_path: Path) -> None:
    path = _tone(tmp_path / "t.wav", seconds=1.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AsrError, match=r"t\.wav: truncated wav file"):
        read_audio(path)


def test_a_wav_scp_command_with_endless_output_is_cut_off(monkeypatch) -> None:
    monkeypatch.setattr(audio_mod, "MAX_PIPE_BYTES", 1 << 20)
    with pytest.raises(AsrError, match="wrote more than 1 MiB"):
        read_wav_scp_entry("yes |")


def test_a_failing_wav_scp_command_names_its_error() -> None:
    with pytest.raises(AsrError, match="failed with status 3: oops"):
        read_wav_scp_entry("echo oops >&2; exit 3 |")


# ---------------------------------------------------------------- stale derived files


def test_features_are_recomputed_when_their_inputs_change(tmp_path: Path) -> None:
    a, b = _tone(tmp_path / "a.wav", seconds=0.5), _tone(tmp_path / "b.wav", seconds=1.0)
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text(f"s1-u {a}\n")
    (d / "utt2spk").write_text("s1-u s1\n")
    make_features(d, FeatureConfig())
    frames = (d / "utt2num_frames").read_text()
    make_features(d, FeatureConfig())  # unchanged: kept
    assert (d / "utt2num_frames").read_text() == frames
    (d / "wav.scp").write_text(f"s1-u {b}\n")  # other audio under the same id
    make_features(d, FeatureConfig())
    assert (d / "utt2num_frames").read_text() != frames
    inputs = json.loads((d / "feats_inputs.json").read_text())
    assert set(inputs) >= {"wav.scp", "utt2spk", "audio files"}
    # The audio file rewritten in place, wav.scp untouched: recomputed too.
    frames = (d / "utt2num_frames").read_text()
    _tone(b, seconds=2.0)
    os.utime(b, ns=(1, 1))
    make_features(d, FeatureConfig())
    assert (d / "utt2num_frames").read_text() != frames


# ---------------------------------------------------------------- text and files


def test_non_utf8_text_is_one_error_with_file_and_line(tmp_path: Path) -> None:
    from asr.datadir import read_kv
    from asr.lang.lexicon import Lexicon

    path = tmp_path / "lexicon.txt"
    path.write_bytes(b"A a\nB \xff\xfe b\n")
    with pytest.raises(AsrError, match=r"lexicon.txt:2: not UTF-8"):
        read_utf8(path)
    with pytest.raises(AsrError, match=r"lexicon.txt:2: not UTF-8"):
        Lexicon.read(path)
    with pytest.raises(AsrError, match=r"lexicon.txt:2: not UTF-8"):
        read_kv(path)


def test_outputs_keep_the_umask_permissions(tmp_path: Path) -> None:
    import sys

    script = ("import numpy as np, sys; from asr.utils import write_text_atomic, atomic_path; "
              "write_text_atomic(sys.argv[1] + '/a.txt', 'x'); "
              "cm = atomic_path(sys.argv[1] + '/b.npz'); tmp = cm.__enter__(); np.savez(tmp, x=np.zeros(1)); "
              "cm.__exit__(None, None, None)")
    for umask, mode in ((0o022, 0o644), (0o027, 0o640)):
        subprocess.run(f"umask {umask:03o} && {sys.executable} -c \"{script}\" {tmp_path}", shell=True, check=True)
        for name in ("a.txt", "b.npz"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, (name, oct(umask))


def test_writing_over_a_directory_or_under_a_file_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(AsrError, match="is a directory"):
        write_text_atomic(tmp_path / "d", "x")
    (tmp_path / "f").write_text("x")
    with pytest.raises(AsrError, match="in the way"):
        with atomic_open(tmp_path / "f" / "g.txt") as fh:
            fh.write("x")


def test_unexpected_exceptions_are_one_line(monkeypatch, capsys) -> None:
    from asr import cli

    def boom(a):
        raise ValueError("deep inside\nnumpy")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["score"].set_defaults(func=boom)
    assert cli.main(["score", "a", "b"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["asr score: error: unexpected ValueError: deep inside numpy (run with -v for the traceback)"]


@pytest.mark.parametrize("args,needle", [
    (["decode", "m", "a.wav", "--beam", "0"], "--beam: must be a finite number > 0"),
    (["decode", "m", "a.wav", "--beam", "nan"], "--beam: must be a finite number > 0"),
    (["decode", "m", "a.wav", "--nbest", "0"], "--nbest: must be an integer >= 1"),
    (["decode", "m", "a.wav", "--nj", "-1"], "--nj: must be an integer >= 1"),
    (["decode", "m", "a.wav", "--word-penalty", "inf"], "--word-penalty: must be a finite number"),
    (["decode", "m", "a.wav", "--device", "tpu"], "expected cpu or cuda"),
])
def test_bad_option_values_are_refused(args: list[str], needle: str) -> None:
    _one_line_error(_asr(*args), needle)


def test_cuda_without_a_gpu_is_refused() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _one_line_error(_asr("decode", "m", "a.wav", "--device", "cuda"), "torch sees no GPU")


def test_empty_model_specs_and_references(tmp_path: Path) -> None:
    for spec in ("", ","):
        _one_line_error(_asr("decode", spec, "a.wav"), "no model dir given")
    (tmp_path / "ref").write_text("u1\n")
    (tmp_path / "hyp").write_text("u1\n")
    _one_line_error(_asr("score", tmp_path / "ref", tmp_path / "hyp"), "no words")
    (tmp_path / "ref").write_text("")
    _one_line_error(_asr("score", tmp_path / "ref", tmp_path / "hyp"))


def test_decoder_options_from_files_are_checked_too() -> None:
    from asr.decode.config import DecoderConfig

    for bad in ({"beam": 0}, {"beam": float("nan")}, {"max_active": 0}, {"acoustic_scale": "x"},
                {"word_penalty": float("inf")}):
        with pytest.raises(AsrError):
            DecoderConfig.from_dict(bad)


# ---------------------------------------------------------------- with trained models


@pytest.mark.slow
def test_damaged_model_files_are_one_line_each(yesno_run: Path, tmp_path: Path) -> None:
    wav = yesno_run / "data" / "yesno" / "local" / "waves_yesno" / "1_0_1_1_1_0_1_0.wav"
    for system, name in [("dnn", "nnet.pt"), ("dnn", "model.json"), ("mono", "model.npz"), ("mono", "model.json"),
                         ("mono", "graph.npz"), ("ctc", "nnet.pt")]:
        model = tmp_path / f"{system}_{name}"
        shutil.copytree(yesno_run / "exp" / "yesno" / system, model, ignore=shutil.ignore_patterns("decode*", "ali*"))
        data = (model / name).read_bytes()
        for damaged in (data[: len(data) // 2], b"\x00garbage", b""):
            (model / name).write_bytes(damaged)
            run = _asr("decode", model, wav)
            _one_line_error(run, str(model))


@pytest.mark.slow
def test_a_graph_left_from_another_model_is_refused(yesno_run: Path, tmp_path: Path) -> None:
    wav = yesno_run / "data" / "yesno" / "local" / "waves_yesno" / "1_0_1_1_1_0_1_0.wav"
    model = tmp_path / "tri1"
    shutil.copytree(yesno_run / "exp" / "yesno" / "tri1", model, ignore=shutil.ignore_patterns("decode*", "ali*"))
    shutil.copy(yesno_run / "exp" / "yesno" / "mono" / "graph.npz", model / "graph.npz")
    _one_line_error(_asr("decode", model, wav), "was not compiled for the model", "asr mkgraph")
    # Recompiling makes it decode again.
    subprocess.run([str(ASR), "mkgraph", model, "--lang", yesno_run / "data" / "yesno" / "lang"], check=True,
                   capture_output=True)
    assert _asr("decode", model, wav, check=True).stdout.split()[:2] == ["YES", "NO"]


@pytest.mark.slow
def test_cli_edge_cases_with_a_model(yesno_run: Path, tmp_path: Path) -> None:
    mono = yesno_run / "exp" / "yesno" / "mono"
    wav = yesno_run / "data" / "yesno" / "local" / "waves_yesno" / "1_0_1_1_1_0_1_0.wav"
    marker = tmp_path / "y"
    _one_line_error(_asr("decode", mono, f"x; touch {marker} |"), "audio file not found")
    assert not marker.exists()
    _one_line_error(_asr("align", mono, wav, ""), "transcript is empty")
    (tmp_path / "outdir").mkdir()
    _one_line_error(_asr("decode", mono, wav, "--out", tmp_path / "outdir"), "is a directory")
    (tmp_path / "afile").write_text("x")
    test = yesno_run / "data" / "yesno" / "test"
    _one_line_error(_asr("decode", mono, "--data", test, "--dir", tmp_path / "afile"), "in the way")
    nan = tmp_path / "nan.wav"
    x = np.zeros(16000, dtype=np.float32)
    x[0] = np.nan
    sf.write(nan, x, 16000, subtype="FLOAT")
    for model, extra in [(mono, []), (yesno_run / "exp" / "yesno" / "ctc", ["--search", "greedy"]),
                         (yesno_run / "exp" / "yesno" / "ctc", ["--search", "prefix"])]:
        _one_line_error(_asr("decode", model, nan, *extra), "nan.wav", "NaN or infinite")


# ---------------------------------------------------------------- long recordings


def test_long_files_are_read_in_chunks_cut_in_pauses_with_bounded_memory(tmp_path: Path) -> None:
    import tracemalloc

    from asr.audio import read_audio_chunks

    rate, rng = 16000, np.random.default_rng(0)
    # 10 minutes of "speech" (noise bursts) with a 0.2 s pause every 7 s.
    x = (0.1 * rng.standard_normal(600 * rate)).astype(np.float32)
    for k in range(0, 600, 7):
        x[(k + 6) * rate:(k + 6) * rate + rate // 5] = 0.0
    path = tmp_path / "long.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    tracemalloc.start()
    chunks = []
    for start, samples in read_audio_chunks(path, chunk_seconds=30.0, search_seconds=5.0):
        chunks.append((start, len(samples), samples[-80:].copy(), samples[:5].copy()))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Whole, the file is 38 MB of float32; a chunk is 1.9 MB.
    assert peak < 12e6, peak
    assert sum(n for _, n, _, _ in chunks) == len(x)
    assert all(n <= 30 * rate for _, n, _, _ in chunks) and len(chunks) >= 20
    for (start, n, tail, _), (nxt, _, _, _) in zip(chunks, chunks[1:]):
        assert nxt == pytest.approx(start + n / rate)
        assert np.abs(tail).max() == 0.0  # every cut but the last falls in a pause


@pytest.mark.slow
def test_a_long_recording_decodes_chunk_by_chunk(yesno_run: Path, tmp_path: Path) -> None:
    from asr.audio import LONG_FILE_SECONDS

    waves = sorted((yesno_run / "data" / "yesno" / "local" / "waves_yesno").glob("*.wav"))[:14]
    parts = [sf.read(w, dtype="float32")[0] for w in waves]
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate(parts), 8000)
    assert sum(len(p) for p in parts) / 8000 > LONG_FILE_SECONDS
    mono = yesno_run / "exp" / "yesno" / "mono"
    want = sum((Path(w).stem.replace("1", "YES").replace("0", "NO").split("_") for w in waves), [])
    got = json.loads(_asr("decode", mono, long, "--format", "json", check=True).stdout)
    from asr.score import score_texts

    # Each chunk has its own CMVN (not the per-file one of a short decode), so allow a
    # stray word or two of the 112; a lost or doubled chunk would cost 8 or more.
    errors = score_texts({"u": want}, {"u": [w["word"] for w in got["words"]]})[0]
    assert errors.errors <= 2, errors.kaldi_line()
    starts = [w["start"] for w in got["words"]]
    assert starts == sorted(starts) and starts[-1] > LONG_FILE_SECONDS


@pytest.mark.slow
@pytest.mark.parametrize("system", ["mono", "tri3"])
def test_a_long_recording_aligns_in_a_streaming_pass(yesno_run: Path, tmp_path: Path, system: str) -> None:
    """`asr align` of a recording over LONG_FILE_SECONDS takes the chunked, beam-pruned
    path (tri3: speaker-independent pass, fMLLR to the file, adapted pass) and puts each
    word where aligning its own file puts it."""
    from asr.audio import LONG_FILE_SECONDS

    waves = sorted((yesno_run / "data" / "yesno" / "local" / "waves_yesno").glob("*.wav"))[:14]
    parts = [sf.read(w, dtype="float32")[0] for w in waves]
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate(parts), 8000)
    assert sum(len(p) for p in parts) / 8000 > LONG_FILE_SECONDS
    model = yesno_run / "exp" / "yesno" / system
    words = [Path(w).stem.replace("1", "YES").replace("0", "NO").split("_") for w in waves]
    run = _asr("align", model, long, " ".join(sum(words, [])), "--format", "json", check=True)
    assert "streaming pass" in run.stderr
    got = json.loads(run.stdout)["words"]
    assert [w["label"] for w in got] == sum(words, [])
    # the same words aligned utterance by utterance (the train dir holds these 14 files)
    ali = tmp_path / "ali"
    _asr("align", model, "--data", yesno_run / "data" / "yesno" / "train", "--out", ali, check=True)
    starts: dict[str, list[float]] = {}
    for line in (ali / "words.ctm").read_text().splitlines():
        utt, _, start, *_ = line.split()
        starts.setdefault(utt, []).append(float(start))
    want, offset = [], 0.0
    for w, part in zip(waves, parts):
        want += [x + offset for x in starts[f"global_{w.stem}"]]
        offset += len(part) / 8000
    # CMVN is per 30 s chunk here and per speaker there: starts agree to a few frames
    diff = np.abs(np.array([w["start"] for w in got]) - np.array(want))
    assert np.median(diff) <= 0.02 and diff.max() <= 0.15, diff.max()


def test_alignments_record_their_tree_and_a_mismatch_is_refused(tmp_path: Path) -> None:
    from asr.hmm.alignments import check_alignment_tree, write_alignments

    ali = {"u": np.zeros(3, dtype=np.int32)}
    write_alignments(tmp_path / "ali", ali, ali, tree="aaaa")
    check_alignment_tree(tmp_path / "ali", "aaaa", "exp/tri1")
    with pytest.raises(AsrError, match="made with another tree than exp/tri1's"):
        check_alignment_tree(tmp_path / "ali", "bbbb", "exp/tri1")
    write_alignments(tmp_path / "old", ali, ali)  # no record (older dirs): accepted
    check_alignment_tree(tmp_path / "old", "bbbb", "exp/tri1")


@pytest.mark.slow
def test_a_dnn_is_not_trained_on_another_trees_alignment(yesno_run: Path, tmp_path: Path) -> None:
    exp = yesno_run / "exp" / "yesno"
    run = _asr("train-dnn", "--data", yesno_run / "data" / "yesno" / "train_fbank", "--ali", exp / "mono" / "ali",
               "--gmm", exp / "tri1", "--out", tmp_path / "dnn")
    _one_line_error(run, "made with another tree")


def test_tuning_on_a_dir_decoded_with_another_model_is_an_error(tmp_path: Path) -> None:
    """Decode dirs record the model's fingerprint; --tune-on refuses a dev dir decoded with
    another model (a retrained one, say), and takes one of this model (or of an older asr)."""
    from asr.decode.config import DecoderConfig
    from asr.decode.run import _configs

    (tmp_path / "best_config.json").write_text(json.dumps(DecoderConfig(acoustic_scale=0.08).to_dict()))
    (tmp_path / "decode_info.json").write_text(json.dumps({"model_fingerprint": "aaaa"}))
    with pytest.raises(AsrError, match="decoded with another model"):
        _configs(None, tmp_path, DecoderConfig(), "bbbb")
    assert _configs(None, tmp_path, DecoderConfig(), "aaaa")[0].acoustic_scale == 0.08
    (tmp_path / "decode_info.json").write_text("{}")
    assert _configs(None, tmp_path, DecoderConfig(), "bbbb")[0].acoustic_scale == 0.08
