"""Energy VAD (Kaldi's compute-vad) and the speech segments decoding uses."""

from __future__ import annotations

import numpy as np
import pytest

from asr.utils import AsrError
from asr.vad import VadConfig, detect_speech, frame_log_energy, speech_segments, voiced_frames

RATE = 16000


def _tone(seconds: float, amp: float = 0.3, hz: float = 300.0) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(int(seconds * RATE)) / RATE)).astype(np.float32)


@pytest.mark.parametrize("floor", [0.0, 1e-4])
@pytest.mark.parametrize("amp", [0.02, 0.3])
def test_vad_finds_the_tone_between_silences(floor, amp):
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros(int(1.3 * RATE)), _tone(0.8, amp), np.zeros(int(2.0 * RATE))]).astype(np.float32)
    x += floor * rng.standard_normal(len(x)).astype(np.float32)  # digital silence or a faint hiss
    cfg = VadConfig(padding=0.0)
    segs = detect_speech(x, RATE, cfg)
    assert len(segs) == 1
    b, e = segs[0]
    # within the voting context (+-2 frames) and a window (25 ms) of the true edges
    assert abs(b / RATE - 1.3) <= 0.05 and abs(e / RATE - 2.1) <= 0.05
    # padding widens it by exactly that much (within the file)
    (pb, pe), = detect_speech(x, RATE, VadConfig(padding=0.2))
    assert pb == pytest.approx(b - 0.2 * RATE, abs=2) and pe == pytest.approx(e + 0.2 * RATE, abs=2)


def test_vad_splits_at_long_pauses_only_and_drops_clicks():
    gap_short, gap_long = np.zeros(int(0.15 * RATE)), np.zeros(int(0.8 * RATE))
    click = _tone(0.03)
    x = np.concatenate([np.zeros(RATE // 2), _tone(0.5), gap_short, _tone(0.4), gap_long, _tone(0.6),
                        gap_long, click, gap_long]).astype(np.float32)
    segs = [(b / RATE, e / RATE) for b, e in detect_speech(x, RATE, VadConfig(padding=0.0))]
    assert len(segs) == 2  # the short pause joins, the long one splits, the click is dropped
    assert segs[0][0] == pytest.approx(0.5, abs=0.05) and segs[0][1] == pytest.approx(1.55, abs=0.05)
    assert segs[1][0] == pytest.approx(2.35, abs=0.05) and segs[1][1] == pytest.approx(2.95, abs=0.05)


def test_vad_on_silence_or_nothing_finds_no_speech():
    assert detect_speech(np.zeros(RATE, np.float32), RATE) == []
    assert detect_speech(np.zeros(100, np.float32), RATE) == []
    assert voiced_frames(np.zeros(0)).shape == (0,)
    assert speech_segments(np.zeros(0, bool)) == []


def test_voiced_frames_is_kaldis_rule():
    # threshold = 5.5 + 0.5 * mean; each frame votes with its +-2 neighbours at 0.12 share
    energy = np.array([0, 0, 0, 30, 0, 0, 0, 0, 0, 0], dtype=np.float64)
    cfg = VadConfig()
    threshold = 5.5 + 0.5 * energy.mean()
    for t in range(len(energy)):
        window = energy[max(t - 2, 0):t + 3]
        assert voiced_frames(energy, cfg)[t] == ((window > threshold).sum() >= 0.12 * len(window))
    assert frame_log_energy(np.zeros(RATE, np.float32), RATE).max() == 0.0  # floored, never -inf
    with pytest.raises(AsrError):
        VadConfig(proportion_threshold=2.0)
