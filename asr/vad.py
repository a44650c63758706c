"""Energy voice activity detection (Kaldi's compute-vad) and the speech segments it gives.

A frame is voiced when enough frames around it have a log energy above a threshold that
rises with the file's mean log energy, so a loud file and a quiet one are judged alike.
Voiced runs closer than ``min_silence`` are merged, each padded by ``padding`` and those
shorter than ``min_speech`` dropped. Decoding uses the segments to trim the silence around
a recording or to cut it into utterances (``asr decode --vad trim|segment``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asr.utils import AsrError, Config


@dataclass
class VadConfig(Config):
    """Kaldi's sre conf/vad.conf thresholds, plus how frames become segments (the ``[vad]`` section)."""

    energy_threshold: float = 5.5  # natural-log energy of a 25 ms frame of 16-bit samples
    energy_mean_scale: float = 0.5  # the threshold also rises by this times the mean log energy
    frames_context: int = 2  # frames either side that vote
    proportion_threshold: float = 0.12  # voiced when this share of the votes is above threshold
    min_silence: float = 0.3  # s: shorter pauses do not split a segment
    padding: float = 0.2  # s kept before and after each segment
    min_speech: float = 0.1  # s: shorter voiced runs are noise

    def __post_init__(self) -> None:
        if self.frames_context < 0 or not 0 <= self.proportion_threshold <= 1:
            raise AsrError(f"vad: frames_context must be >= 0 and proportion_threshold in [0, 1], got "
                           f"{self.frames_context} and {self.proportion_threshold}")


def frame_log_energy(samples: np.ndarray, rate: int, frame_ms: float = 25.0, shift_ms: float = 10.0) -> np.ndarray:
    """(T,) natural-log energy of each frame (Kaldi's framing, snip-edges), on the
    16-bit scale Kaldi's thresholds assume, floored at 0 (energy 1: dither level)."""
    size, hop = int(rate * frame_ms / 1000), int(rate * shift_ms / 1000)
    if len(samples) < size:
        return np.zeros(0)
    x = samples.astype(np.float64) * 32768.0
    s1, s2 = (np.concatenate([[0.0], np.cumsum(v)]) for v in (x, x * x))
    start = np.arange(0, len(x) - size + 1, hop)
    total, square = s1[start + size] - s1[start], s2[start + size] - s2[start]
    # sum (x - mean)^2 = sum x^2 - (sum x)^2 / n: Kaldi removes each frame's DC offset
    return np.log(np.maximum(square - total * total / size, 1.0))


def voiced_frames(log_energy: np.ndarray, cfg: VadConfig | None = None) -> np.ndarray:
    """(T,) bool: Kaldi compute-vad's decision for each frame of (T,) log energies."""
    cfg = cfg or VadConfig()
    T = len(log_energy)
    if T == 0:
        return np.zeros(0, dtype=bool)
    threshold = cfg.energy_threshold + cfg.energy_mean_scale * float(log_energy.mean())
    above = np.concatenate([[0], np.cumsum(log_energy > threshold)])
    t = np.arange(T)
    lo, hi = np.maximum(t - cfg.frames_context, 0), np.minimum(t + cfg.frames_context + 1, T)
    return (above[hi] - above[lo]) >= cfg.proportion_threshold * (hi - lo)


def speech_segments(voiced: np.ndarray, cfg: VadConfig | None = None, shift: float = 0.01) -> list[tuple[float, float]]:
    """[(start s, end s)] of the speech in (T,) voiced flags (frames ``shift`` s apart)."""
    cfg = cfg or VadConfig()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    runs = [[int(b), int(e)] for b, e in zip(edges[::2], edges[1::2])]  # frames [b, e)
    merged: list[list[int]] = []
    for b, e in runs:
        if merged and (b - merged[-1][1]) * shift < cfg.min_silence:
            merged[-1][1] = e
        else:
            merged.append([b, e])
    total = len(voiced) * shift
    out: list[tuple[float, float]] = []
    for b, e in merged:
        if (e - b) * shift < cfg.min_speech:
            continue
        start, end = max(b * shift - cfg.padding, 0.0), min(e * shift + cfg.padding, total)
        if out and start <= out[-1][1]:  # padding made them touch
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def detect_speech(samples: np.ndarray, rate: int, cfg: VadConfig | None = None) -> list[tuple[int, int]]:
    """[(first sample, end sample)] of the speech in (N,) samples at ``rate``."""
    segs = speech_segments(voiced_frames(frame_log_energy(samples, rate), cfg), cfg)
    # the last frame's window reaches 15 ms past its 10 ms step: give the end its full window
    return [(int(round(b * rate)), min(int(round(e * rate)) + int(0.015 * rate), len(samples))) for b, e in segs]
