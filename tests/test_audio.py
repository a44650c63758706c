from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from asr.audio import read_audio, read_wav_scp_entry
from asr.utils import AsrError


def test_raw_big_endian_round_trip(tmp_path):
    ints = np.array([0, 1, -1, 32767, -32768, 1000, -1000], dtype=np.int16)
    p = tmp_path / "x.raw"
    p.write_bytes(ints.astype(">i2").tobytes())
    x, rate = read_audio(p)
    assert rate == 16000
    assert x.dtype == np.float32 and x.shape == (7,)
    np.testing.assert_allclose(x * 32768.0, ints.astype(np.float32))
    assert np.abs(x).max() <= 1.0


def test_raw_rate_keyword(tmp_path):
    p = tmp_path / "x.raw"
    p.write_bytes(np.zeros(80, dtype=">i2").tobytes())
    assert read_audio(p, raw_rate=8000)[1] == 8000


def test_stereo_mixdown(tmp_path):
    left = np.full(100, 0.5, dtype=np.float32)
    right = np.full(100, -0.25, dtype=np.float32)
    p = tmp_path / "s.wav"
    sf.write(p, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    x, rate = read_audio(p)
    assert rate == 8000 and x.shape == (100,)
    np.testing.assert_allclose(x, 0.125, atol=1e-6)


def test_resample_changes_length(tmp_path):
    p = tmp_path / "a.wav"
    sig = 0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000).astype(np.float32)
    sf.write(p, sig, 8000)
    x, rate = read_audio(p, target_rate=16000)
    assert rate == 16000 and x.dtype == np.float32
    assert abs(len(x) - 16000) <= 1
    y, rate = read_audio(p, target_rate=8000)  # same rate: untouched
    assert len(y) == 8000


def test_missing_file(tmp_path):
    with pytest.raises(AsrError, match="nope.wav"):
        read_audio(tmp_path / "nope.wav")


def test_unreadable_file(tmp_path):
    p = tmp_path / "bad.wav"
    p.write_bytes(b"not audio at all")
    with pytest.raises(AsrError, match="bad.wav"):
        read_audio(p)


def test_wav_scp_pipe(tmp_path):
    p = tmp_path / "x.wav"
    sig = (0.1 * np.random.default_rng(0).standard_normal(400)).astype(np.float32)
    sf.write(p, sig, 8000, subtype="PCM_16")
    x, rate = read_wav_scp_entry(f"cat {p} |")
    ref, _ = read_wav_scp_entry(str(p))
    assert rate == 8000
    np.testing.assert_array_equal(x, ref)
    x16, rate16 = read_wav_scp_entry(f"cat {p} |", target_rate=16000)
    assert rate16 == 16000 and abs(len(x16) - 800) <= 1


def test_wav_scp_pipe_failure(tmp_path):
    with pytest.raises(AsrError, match="failed"):
        read_wav_scp_entry(f"cat {tmp_path / 'missing.wav'} |")
