"""Speed perturbation of data dirs, and how perturbed copies join the held-out split."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from asr.cli import main
from asr.datadir import DataDir
from asr.nnet.train import split_speakers
from asr.perturb import change_speed, original_id, perturb_speed, perturbed_id
from asr.utils import AsrError

RATE = 16000


def _dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


@pytest.fixture()
def tone_dir(tmp_path):
    """Two utterances of two speakers: 1 s of 440 Hz and 0.5 s of 1000 Hz."""
    t = np.arange(RATE) / RATE
    wavs = {"a-1": 0.5 * np.sin(2 * np.pi * 440 * t), "b-1": 0.5 * np.sin(2 * np.pi * 1000 * t[:RATE // 2])}
    for u, x in wavs.items():
        sf.write(tmp_path / f"{u}.wav", x, RATE, subtype="PCM_16")
    d = DataDir(wav={u: str(tmp_path / f"{u}.wav") for u in wavs}, text={"a-1": ["YES"], "b-1": ["NO", "YES"]},
                utt2spk={"a-1": "a", "b-1": "b"})
    d.write(tmp_path / "src")
    return tmp_path / "src"


def test_change_speed_scales_duration_and_pitch():
    t = np.arange(RATE) / RATE
    x = np.sin(2 * np.pi * 500 * t).astype(np.float32)
    for f in (0.9, 1.1):
        y = change_speed(x, RATE, f)
        assert abs(len(y) - RATE / f) <= 1
        assert _dominant_hz(y, RATE) == pytest.approx(500 * f, abs=3)
    assert change_speed(x, RATE, 1.0) is x
    with pytest.raises(AsrError):
        change_speed(x, RATE, 0)


def test_perturb_speed_data_dir(tone_dir, tmp_path):
    out = perturb_speed(tone_dir, tmp_path / "sp", [0.9, 1.0, 1.1])
    d = DataDir.load(tmp_path / "sp")
    assert d.utts() == sorted(["a-1", "b-1", "sp0.9-a-1", "sp0.9-b-1", "sp1.1-a-1", "sp1.1-b-1"])
    assert d.utt2spk["sp0.9-b-1"] == "sp0.9-b" and d.utt2spk["b-1"] == "b"
    assert d.text["sp1.1-b-1"] == ["NO", "YES"] and d.text == out.text
    # Factor 1 keeps the original audio; the copies are new files of 1/f the duration.
    assert d.wav[d.recording("a-1")] == str(tone_dir.parent / "a-1.wav")
    for f in (0.9, 1.1):
        x, rate = sf.read(d.wav[d.recording(perturbed_id(f, "a-1"))])
        assert rate == RATE and abs(len(x) - RATE / f) <= 1
        assert _dominant_hz(x, rate) == pytest.approx(440 * f, abs=3)
    assert original_id("sp0.9-b-1") == "b-1" and original_id("b-1") == "b-1"


def test_perturb_speed_resumes_and_rejects_bad_factors(tone_dir, tmp_path):
    perturb_speed(tone_dir, tmp_path / "sp", [1.1])
    wav = tmp_path / "sp" / "wav" / "sp1.1-a-1.wav"
    stamp = wav.stat().st_mtime_ns
    perturb_speed(tone_dir, tmp_path / "sp", [1.1])
    assert wav.stat().st_mtime_ns == stamp  # kept, not rewritten
    for bad in ([], [0.9, -1.0], [1.1, 1.1]):
        with pytest.raises(AsrError):
            perturb_speed(tone_dir, tmp_path / "bad", bad)
    assert main(["perturb-speed", str(tone_dir), str(tmp_path / "cli"), "--factors", "0.9,x"]) == 1


def test_held_out_split_keeps_perturbed_copies_with_their_speaker():
    utts = [f"s{k}-u{i}" for k in range(10) for i in range(3)]
    spk = {u: u.split("-")[0] for u in utts}
    plain = DataDir(wav={u: "x.wav" for u in utts}, text={u: ["A"] for u in utts}, utt2spk=spk)
    tr0, cv0 = split_speakers(plain, utts, 0.2, seed=0)
    sp_utts = sorted(perturbed_id(f, u) for f in (0.9, 1.0, 1.1) for u in utts)
    sp = DataDir(wav={u: "x.wav" for u in sp_utts}, text={u: ["A"] for u in sp_utts},
                 utt2spk={perturbed_id(f, u): perturbed_id(f, spk[u]) for f in (0.9, 1.0, 1.1) for u in utts})
    tr, cv = split_speakers(sp, sp_utts, 0.2, seed=0)
    # The same speakers are held out as without perturbation, measured on real audio only ...
    assert cv == cv0
    # ... and none of their copies is trained on; every other speaker's copies are.
    held = {spk[u] for u in cv0}
    assert not {spk[original_id(u)] for u in tr} & held
    assert sorted(tr) == sorted(perturbed_id(f, u) for f in (0.9, 1.0, 1.1) for u in tr0)
    # By utterance: the held-out utterance's copies leave training too.
    tr, cv = split_speakers(sp, sp_utts, 0.1, seed=0, by="utterance")
    assert cv and not {original_id(u) for u in tr} & set(cv)
