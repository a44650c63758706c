"""Audio input: wav/flac via soundfile, headerless big-endian ``.raw`` (AN4), Kaldi pipes."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from asr import backend
from asr.utils import AsrError


def _finish(samples: np.ndarray, rate: int, target_rate: int | None) -> tuple[np.ndarray, int]:
    """Mix ``samples`` (N,) or (N, C) down to mono float32 and resample to ``target_rate``."""
    if samples.ndim == 2:
        # Average channels rather than pick one: keeps energy from both sides.
        samples = samples.mean(axis=1)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if target_rate is not None and target_rate != rate:
        samples = backend.resample(samples, rate, target_rate)
        rate = target_rate
    return samples, rate


def read_audio(
    path: str | Path, target_rate: int | None = None, *, raw_rate: int = 16000
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 mono samples in [-1, 1].

    ``.raw`` files are headerless 16-bit signed big-endian PCM at ``raw_rate`` Hz (AN4);
    anything else goes through soundfile. Returns ``(samples, rate)`` with samples of
    shape (N,); with ``target_rate`` the audio is resampled to that rate.
    """
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"audio file not found: {path}")
    try:
        if path.suffix.lower() == ".raw":
            data = path.read_bytes()
            if len(data) % 2:
                raise AsrError(f"raw audio file has an odd number of bytes (not 16-bit PCM): {path}")
            # ">i2": big-endian int16; scale to [-1, 1) like soundfile does for PCM_16.
            samples = np.frombuffer(data, dtype=">i2").astype(np.float32) / 32768.0
            rate = raw_rate
        else:
            samples, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except AsrError:
        raise
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError variants
        raise AsrError(f"cannot read audio file {path}: {e}") from e
    return _finish(samples, int(rate), target_rate)


def read_wav_scp_entry(entry: str, target_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read the audio named by a wav.scp value: a file path or a shell command ending in ``|``.

    A pipe command must write a wav (or other soundfile-readable) stream to stdout.
    Returns ``(samples (N,), rate)`` as :func:`read_audio`.
    """
    entry = entry.strip()
    if not entry:
        raise AsrError("empty wav.scp entry")
    if not entry.endswith("|"):
        return read_audio(entry, target_rate)
    cmd = entry[:-1].strip()
    try:
        proc = subprocess.run(cmd, shell=True, capture_output=True, check=False)
    except OSError as e:
        raise AsrError(f"cannot run wav.scp command '{cmd}': {e}") from e
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AsrError(
            f"wav.scp command '{cmd}' failed with status {proc.returncode}"
            + (f": {err[-1]}" if err else "")
        )
    try:
        samples, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=False)
    except Exception as e:
        raise AsrError(f"cannot decode audio from wav.scp command '{cmd}': {e}") from e
    return _finish(samples, int(rate), target_rate)
