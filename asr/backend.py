"""The one module that touches torchaudio: Kaldi-compatible MFCC/fbank and resampling.

torchaudio ships a compiled extension that must match the installed torch exactly (a
torchaudio patch release built against a newer torch fails to load with an "undefined
symbol" OSError). Everything else in asr calls the functions here, so a broken pair is
reported once, on one line, with what to install, and a later change of backend (our own
filterbank, another resampler) touches this file only.
"""

from __future__ import annotations

import importlib.metadata
import platform
from fractions import Fraction
from functools import lru_cache
from types import ModuleType

import numpy as np

from asr.utils import AsrError, one_line


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _install_hint() -> str:
    torch_version = _dist_version("torch")
    base = torch_version.split("+")[0]
    return (f"install the torchaudio release built for torch {torch_version} "
            f"(pip install 'torchaudio=={base}'), or run `make setup`, which installs the tested pair "
            "from requirements.lock")


@lru_cache(maxsize=1)
def torchaudio() -> ModuleType:
    """The torchaudio module, or an AsrError saying what to install if it does not load."""
    try:
        import torchaudio as ta
        import torchaudio.compliance.kaldi  # noqa: F401  (loads the submodules we use now)
        import torchaudio.functional  # noqa: F401
    except ImportError as e:
        if _dist_version("torchaudio") == "not installed":
            raise AsrError(f"torchaudio is not installed: {_install_hint()}") from e
        raise AsrError(f"torchaudio {_dist_version('torchaudio')} does not import ({one_line(e)}): "
                       f"{_install_hint()}") from e
    except OSError as e:  # the compiled extension does not match torch
        raise AsrError(f"torchaudio {_dist_version('torchaudio')}'s compiled extension does not load with "
                       f"torch {_dist_version('torch')} ({one_line(e)}): {_install_hint()}") from e
    return ta


def check() -> None:
    """Raise AsrError unless torch and torchaudio load together."""
    torchaudio()


def versions() -> dict[str, str]:
    """Versions of everything asr's numbers depend on (``asr --version``)."""
    import soundfile

    from asr import __version__

    return {
        "asr": __version__,
        "python": platform.python_version(),
        "torch": _dist_version("torch"),
        "torchaudio": _dist_version("torchaudio"),
        "numpy": np.__version__,
        "audio backend": f"soundfile {soundfile.__version__} (libsndfile {soundfile.__libsndfile_version__})",
    }


# The polyphase kernel holds (new / g) x (orig / g + filter taps) weights, g = gcd of the
# rates; coprime rates (16001 -> 16000 Hz) would make it 16000 x 16000 (1 GB). Ratios are
# approximated by fractions with terms up to this bound, a rate error under 1e-4 for
# near-coprime rates and none for every common rate pair (44100 -> 16000 is 160/441).
MAX_RESAMPLE_PHASES = 1000


def resample_ratio(orig_rate: int, new_rate: int) -> tuple[int, int]:
    """(up, down): ``new_rate / orig_rate`` as a fraction with both terms <= MAX_RESAMPLE_PHASES
    (where the exact ratio needs more, the nearest such fraction)."""
    exact = Fraction(int(new_rate), int(orig_rate))
    if max(exact.numerator, exact.denominator) <= MAX_RESAMPLE_PHASES:
        return exact.numerator, exact.denominator
    best = None
    for den in range(1, MAX_RESAMPLE_PHASES + 1):
        num = max(1, round(exact * den))
        if num > MAX_RESAMPLE_PHASES:
            break
        err = abs(Fraction(num, den) - exact)
        if best is None or err < best[0]:
            best = (err, num, den)
    if best is None:
        raise AsrError(f"cannot resample {orig_rate} Hz to {new_rate} Hz: ratio beyond {MAX_RESAMPLE_PHASES}")
    return best[1], best[2]


def resample(samples: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """(N,) float32 samples at ``orig_rate`` -> (about N * new_rate / orig_rate,) at ``new_rate``.

    A windowed-sinc polyphase resampler (torchaudio's, Kaldi's default filter width) with
    its kernel bounded by ``MAX_RESAMPLE_PHASES`` (see :func:`resample_ratio`).
    """
    import torch

    if orig_rate == new_rate or len(samples) == 0:
        return np.asarray(samples, dtype=np.float32)
    up, down = resample_ratio(orig_rate, new_rate)
    wave = torch.as_tensor(np.ascontiguousarray(samples, dtype=np.float32))
    return torchaudio().functional.resample(wave, down, up).numpy().astype(np.float32)


def kaldi_mfcc_fbank(scaled: np.ndarray, kind: str, **options) -> np.ndarray:
    """Kaldi's compute-mfcc-feats / compute-fbank-feats on one utterance.

    Args:
        scaled: (N,) float32 samples in 16-bit units (Kaldi's convention, |x| <= 32768).
        kind: ``"mfcc"`` or ``"fbank"``.
        options: torchaudio.compliance.kaldi keyword options (sample_frequency,
            frame_length, frame_shift, num_mel_bins, num_ceps, ...).
    Returns:
        (T, D) float32.
    """
    import torch

    kaldi = torchaudio().compliance.kaldi
    wave = torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32)).unsqueeze(0)
    feats = kaldi.mfcc(wave, **options) if kind == "mfcc" else kaldi.fbank(wave, **options)
    return feats.numpy().astype(np.float32)
