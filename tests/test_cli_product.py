"""The product surface through the CLI (subprocess): decode and align formats, results, plots,
and Kaldi interoperability (pipes in wav.scp, segments, ark/scp)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from asr.datadir import DataDir
from asr.features import FeatureConfig, compute_features, make_features
from asr.hmm.align_output import read_textgrid
from asr.utils import AsrError
from conftest import ASR

WORDS = ["YES", "NO", "YES", "YES", "YES", "NO", "YES", "NO"]


def _asr(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(ASR), *map(str, args)], capture_output=True, text=True, check=check)


def _wav(run: Path) -> Path:
    return run / "data" / "yesno" / "local" / "waves_yesno" / "1_0_1_1_1_0_1_0.wav"


@pytest.mark.slow
def test_decode_formats(yesno_run: Path, tmp_path: Path) -> None:
    dnn, wav = yesno_run / "exp" / "yesno" / "dnn", _wav(yesno_run)
    assert _asr("decode", dnn, wav).stdout.split() == WORDS
    obj = json.loads(_asr("decode", dnn, wav, "--format", "json").stdout)
    assert obj["text"] == " ".join(WORDS) and [w["word"] for w in obj["words"]] == WORDS
    starts = [w["start"] for w in obj["words"]]
    assert starts == sorted(starts) and all(w["end"] > w["start"] for w in obj["words"])
    assert all(0.0 <= w["confidence"] <= 1.0 for w in obj["words"])
    ctm = [l.split() for l in _asr("decode", dnn, wav, "--format", "ctm").stdout.splitlines()]
    assert [c[4] for c in ctm] == WORDS and all(c[0] == str(wav) and c[1] == "1" for c in ctm)
    assert [float(c[2]) for c in ctm] == pytest.approx(starts, abs=0.011)
    # A Kaldi wav.scp whose entry is a command writing the wav to stdout.
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt1 cat {wav} |\nutt2 {wav}\n")
    out = _asr("decode", dnn, "--scp", scp, "--format", "text").stdout.splitlines()
    assert out == [f"utt1 {' '.join(WORDS)}", f"utt2 {' '.join(WORDS)}"]
    # n-best lists from the lattice: the first is the one-best, costs never improve down the list
    nb = [l.split() for l in _asr("decode", dnn, wav, "--nbest", "3").stdout.splitlines()]
    assert 1 <= len(nb) <= 3 and nb[0][0] == f"{wav}-1" and nb[0][2:] == WORDS
    assert [float(l[1]) for l in nb] == sorted((float(l[1]) for l in nb), reverse=True)
    bad = _asr("decode", dnn, wav, "--nbest", "3", "--format", "ctm", check=False)
    assert bad.returncode == 1 and "--nbest" in bad.stderr and "Traceback" not in bad.stderr
    ctc = yesno_run / "exp" / "yesno" / "ctc"
    nbest = json.loads(_asr("decode", ctc, wav, "--search", "prefix", "--nbest", "2", "--format", "json").stdout)
    assert len(nbest["nbest"]) == 2 and nbest["nbest"][0]["log_prob"] >= nbest["nbest"][1]["log_prob"]


@pytest.mark.slow
@pytest.mark.parametrize("system", ["tri1", "dnn", "ctc"])
def test_align_formats(yesno_run: Path, tmp_path: Path, system: str) -> None:
    model, wav = yesno_run / "exp" / "yesno" / system, _wav(yesno_run)
    transcript = " ".join(WORDS)
    ctm = [l.split() for l in _asr("align", model, wav, transcript).stdout.splitlines()]
    assert [c[4] for c in ctm if c[4] in ("YES", "NO")][:8] == WORDS
    obj = json.loads(_asr("align", model, wav, transcript, "--format", "json").stdout)
    assert [w["label"] for w in obj["words"]] == WORDS
    tg = tmp_path / "a.TextGrid"
    _asr("align", model, wav, transcript, "--format", "textgrid", "--out", tg)
    tiers = read_textgrid(tg)
    assert list(tiers) == ["words", "phones" if system != "ctc" else "tokens"]
    for tier in tiers.values():
        assert tier[0][1] == 0.0 and tier[-1][2] == pytest.approx(obj["duration"], abs=1e-3)
        assert all(a[2] == pytest.approx(b[1]) for a, b in zip(tier, tier[1:]))  # intervals tile the file
    assert [lab for lab, _, _ in tiers["words"] if lab] == WORDS
    oov = _asr("align", model, wav, "YES MAYBE NOPE", check=False)
    assert oov.returncode == 1 and "MAYBE, NOPE" in oov.stderr and "Traceback" not in oov.stderr


@pytest.mark.slow
def test_align_data_dir_writes_textgrids(yesno_run: Path, tmp_path: Path) -> None:
    data = yesno_run / "data" / "yesno" / "test"
    _asr("align", yesno_run / "exp" / "yesno" / "tri1", "--data-dir", data, "--out", tmp_path / "ali",
         "--format", "textgrid")
    grids = sorted((tmp_path / "ali" / "textgrid").glob("*.TextGrid"))
    assert len(grids) == 29 and (tmp_path / "ali" / "words.ctm").exists()
    assert [lab for lab, _, _ in read_textgrid(grids[0])["words"] if lab] == \
        DataDir.load(data).text[grids[0].stem]


@pytest.mark.slow
def test_results_and_plots(yesno_run: Path, tmp_path: Path) -> None:
    import matplotlib.image

    exp = yesno_run / "exp" / "yesno"
    table = _asr("results", exp, "--out", tmp_path / "RESULTS.md").stdout
    for system in ("mono", "tri1", "dnn", "ctc"):
        assert f"| {system} | test |" in table
    wav = _wav(yesno_run)
    pngs = {"align": ["align", exp / "tri1", wav, " ".join(WORDS)], "posteriors": ["posteriors", exp / "ctc", wav],
            "training": ["training", exp / "dnn"], "ctc_training": ["training", exp / "ctc"],
            "em_training": ["training", exp / "mono"], "wer": ["wer", exp]}
    for name, args in pngs.items():
        out = tmp_path / f"{name}.png"
        _asr("plot", *args, "--out", out)
        img = matplotlib.image.imread(out)
        assert img.shape[:2] == (600, 1000) and img.std() > 0, name
    bad = _asr("plot", "training", tmp_path, "--out", tmp_path / "x.png", check=False)
    assert bad.returncode == 1 and "train_log.json" in bad.stderr


def test_segments_cut_recordings(tmp_path: Path) -> None:
    """A Kaldi data dir with `segments`: features of each segment = features of the cut audio."""
    rate = 8000
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(2 * rate)).astype(np.float32)
    sf.write(tmp_path / "rec1.wav", audio, rate)
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text(f"rec1 {tmp_path / 'rec1.wav'}\n")
    (d / "segments").write_text("spk1-a rec1 0.0 1.0\nspk1-b rec1 1.0 2.0\n")
    (d / "utt2spk").write_text("spk1-a spk1\nspk1-b spk1\n")
    (d / "text").write_text("spk1-a YES\nspk1-b NO\n")
    cfg = FeatureConfig(kind="fbank", sample_rate=rate, num_mel_bins=23, dither=0.0)
    make_features(d, cfg)
    feats = {k: np.asarray(v) for k, v in kaldiio.load_scp(str(d / "feats.scp")).items()}
    np.testing.assert_allclose(feats["spk1-b"], compute_features(audio[rate:], cfg), rtol=1e-4, atol=2e-3)
    sub = DataDir.load(d).subset(["spk1-b"])
    assert sub.wav == {"rec1": str(tmp_path / "rec1.wav")} and sub.segments["spk1-b"] == ("rec1", 1.0, 2.0)
    (d / "segments").write_text("spk1-a rec9 0.0 1.0\nspk1-b rec1 1.0 2.0\n")
    with pytest.raises(AsrError, match="rec9"):
        DataDir.load(d)


def test_features_and_alignments_are_kaldi_ark_scp(tmp_path: Path) -> None:
    """Our ark/scp files are read by kaldiio (Kaldi's format), and Kaldi-written ones by us."""
    from asr.hmm.alignments import read_alignments, write_alignments

    tids = {"u1": np.array([1, 1, 2, 3]), "u2": np.array([4, 5])}
    write_alignments(tmp_path, tids, {u: t * 10 for u, t in tids.items()})
    back = kaldiio.load_scp(str(tmp_path / "ali.pdf.scp"))
    assert {u: list(v) for u, v in back.items()} == {"u1": [10, 10, 20, 30], "u2": [40, 50]}
    # A Kaldi user's alignments (written by kaldiio, as Kaldi's copy-int-vector would) read back.
    kaldi_dir = tmp_path / "kaldi"
    kaldi_dir.mkdir()
    kaldiio.save_ark(str(kaldi_dir / "ali.pdf.ark"), {"u3": np.array([7, 7, 8], dtype=np.int32)},
                     scp=str(kaldi_dir / "ali.pdf.scp"))
    assert {u: list(v) for u, v in read_alignments(kaldi_dir, "pdf").items()} == {"u3": [7, 7, 8]}


@pytest.mark.slow
def test_lattices_rescored_with_the_same_lm_score_the_same(yesno_run: Path, tmp_path: Path) -> None:
    """The recipe's decode dir holds lattices; asr lmrescore with the graph's own LM as the new
    one gives the decode's WER and words back (a bigger LM would change them)."""
    tri1, data = yesno_run / "exp" / "yesno" / "tri1", yesno_run / "data" / "yesno"
    lm = data / "lang" / "G.arpa"
    _asr("lmrescore", tri1, "--old-lm", lm, "--new-lm", lm, "--data", data / "test",
         "--lattices", tri1 / "decode_test", "--dir", tmp_path / "re")
    assert (tmp_path / "re" / "wer.txt").read_text().splitlines()[0] == \
        (tri1 / "decode_test" / "wer.txt").read_text().splitlines()[0]
    assert (tmp_path / "re" / "hyp.txt").read_text() == (tri1 / "decode_test" / "hyp.txt").read_text()
    bad = _asr("lmrescore", tri1, "--old-lm", lm, "--new-lm", lm, "--data", data / "test",
               "--lattices", tmp_path, "--dir", tmp_path / "re2", check=False)
    assert bad.returncode == 1 and "no lat.npz" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_decode_with_a_word_list_or_another_lm(yesno_run: Path, tmp_path: Path) -> None:
    tri1, wav = yesno_run / "exp" / "yesno" / "tri1", _wav(yesno_run)
    only_yes = tmp_path / "words.txt"
    only_yes.write_text("YES\n")
    for model in (tri1, yesno_run / "exp" / "yesno" / "ctc"):
        out = _asr("decode", model, wav, "--words", only_yes).stdout.split()
        assert out and set(out) == {"YES"}  # never a word outside the list
    # cached: the second run compiles nothing
    cached = sorted((tri1 / "graphs").iterdir())
    again = _asr("decode", tri1, wav, "--words", only_yes)
    assert "compiling" not in again.stderr and sorted((tri1 / "graphs").iterdir()) == cached
    # An LM with no back-off (-99) that only allows NO after YES and YES after NO: "YES NO YES NO ...
    lm = tmp_path / "alternate.arpa"
    lm.write_text("\\data\\\nngram 1=4\nngram 2=4\n\n\\1-grams:\n-99\t<s>\t-99\n-0.3\tYES\t-99\n-0.3\tNO\t-99\n-0.3\t</s>\n\n"
                  "\\2-grams:\n0\t<s> YES\n0\tYES NO\n-0.3\tNO YES\n-0.3\tNO </s>\n\n\\end\\\n")
    words = _asr("decode", tri1, wav, "--lm", lm).stdout.split()
    assert words and words == ["YES", "NO"] * (len(words) // 2)
    for bad, why in ((["--words", tmp_path / "nope.txt"], "nope.txt"), (["--words", only_yes, "--lm", lm], "--lm")):
        run = _asr("decode", tri1, wav, *bad, check=False)
        assert run.returncode == 1 and why in run.stderr and "Traceback" not in run.stderr
    oov = tmp_path / "oov.txt"
    oov.write_text("YES MAYBE\n")
    run = _asr("decode", tri1, wav, "--words", oov, check=False)
    assert run.returncode == 1 and "MAYBE" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow
def test_decode_with_vad_ignores_the_silence_around_speech(yesno_run: Path, tmp_path: Path) -> None:
    tri1, wav = yesno_run / "exp" / "yesno" / "tri1", _wav(yesno_run)
    x, rate = sf.read(wav, dtype="float32")
    rng = np.random.default_rng(0)
    pad = np.zeros(3 * rate, np.float32)
    padded = np.concatenate([pad, x, pad]) + 1e-4 * rng.standard_normal(len(x) + 6 * rate).astype(np.float32)
    sf.write(tmp_path / "padded.wav", padded, rate)
    plain = [l.split() for l in _asr("decode", tri1, wav, "--format", "ctm").stdout.splitlines()]
    # (yesno's models never heard digital silence: even 0.2 s of it at the edges can cost a
    # word, so the speech is cut without padding here)
    conf = tmp_path / "vad.toml"
    conf.write_text("[vad]\npadding = 0.0\n")
    dnn = yesno_run / "exp" / "yesno" / "dnn"
    assert _asr("decode", dnn, tmp_path / "padded.wav", "--vad", "segment", "--config", conf).stdout.split() == WORDS
    for mode in ("trim", "segment"):
        ctm = [l.split() for l in _asr("decode", tri1, tmp_path / "padded.wav", "--vad", mode, "--config", conf,
                                       "--format", "ctm").stdout.splitlines()]
        assert [c[4] for c in ctm] == WORDS
        # times are on the padded file's clock: 3 s later than in the original
        assert [float(c[2]) for c in ctm] == pytest.approx([float(c[2]) + 3.0 for c in plain], abs=0.06)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(2 * rate, np.float32), rate)
    assert _asr("decode", tri1, silent, "--vad", "trim").stdout.strip() == ""
    run = _asr("decode", tri1, "--data", yesno_run / "data" / "yesno" / "test", "--dir", tmp_path / "d", "--vad", "trim",
               check=False)
    assert run.returncode == 1 and "--vad" in run.stderr
