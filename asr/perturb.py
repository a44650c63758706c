"""Speed perturbation of a data dir (Kaldi's ``utils/data/perturb_data_dir_speed_3way.sh``).

Each factor f makes a copy of every utterance played f times faster: the audio is
resampled as if recorded at f x the sample rate, so duration scales by 1/f and pitch
moves with it (sox ``speed``). Copies are named ``sp<f>-<utt>`` with speakers
``sp<f>-<spk>``, so per-speaker CMVN treats each perturbed voice as a new speaker; the
factor 1 keeps the original ids and audio. A GMM aligns the copies like any data dir, and
the hybrid DNN trains on all of them (a 3-way copy is Kaldi nnet3's standard recipe).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from asr import backend
from asr.datadir import AudioReader, DataDir
from asr.utils import AsrError, atomic_open, ensure_dir

# Copies' id prefixes: speed (``sp0.9-``), augmentation (``aug1-``, asr.augment) and strings
# (``cat1-``, asr.concat), nested.
_PREFIX = re.compile(r"^(?:(?:sp[0-9.]+|aug[0-9]+|cat[0-9]+)-)+")


def perturbed_id(factor: float, key: str) -> str:
    """``sp0.9-key``; the factor 1 keeps ``key``."""
    return key if factor == 1 else f"sp{factor:g}-{key}"


def original_id(key: str) -> str:
    """The utterance or speaker a perturbed or augmented copy came from (``aug1-sp0.9-spk`` -> ``spk``)."""
    return _PREFIX.sub("", key)


def is_perturbed(key: str) -> bool:
    return bool(_PREFIX.match(key))


def change_speed(samples: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """(N,) samples played ``factor`` times faster at the same rate: (about N / factor,)."""
    if factor <= 0:
        raise AsrError(f"speed factor must be positive, got {factor}")
    if factor == 1:
        return samples
    return backend.resample(samples, round(rate * factor), rate)


def perturb_speed(src: str | Path, out: str | Path, factors: list[float]) -> DataDir:
    """Write data dir ``out``: the utterances of ``src`` at each speed in ``factors``.

    Perturbed audio is written as 16-bit wavs under ``out/wav`` (one per utterance,
    atomically; an existing one is kept, so an interrupted run resumes). Factor 1 reuses
    the original wav.scp entries (and segments).
    """
    if not factors or any(f <= 0 for f in factors):
        raise AsrError(f"speed factors must be positive numbers, got {factors}")
    if len(set(factors)) != len(factors):
        raise AsrError(f"speed factors repeat: {factors}")
    data = DataDir.load(src)
    out = Path(out)
    wav_dir = out / "wav"
    ensure_dir(wav_dir)
    result = DataDir()
    audio = AudioReader(data)
    for factor in factors:
        for utt in tqdm(data.utts_by_recording(), desc=f"speed {factor:g}", unit="utt", leave=False, disable=None):
            new = perturbed_id(factor, utt)
            if new in result.utt2spk:
                raise AsrError(f"{src}: perturbed id '{new}' clashes with an existing utterance")
            result.utt2spk[new] = perturbed_id(factor, data.utt2spk[utt])
            if utt in data.text:
                result.text[new] = list(data.text[utt])
            if factor == 1:
                rec = data.recording(utt)
                result.wav[rec] = data.wav[rec]
                if data.segments:
                    result.segments[new] = data.segments[utt]
                continue
            path = (wav_dir / f"{new}.wav").resolve()
            if not path.exists():
                samples, rate = audio(utt)
                fast = np.clip(change_speed(samples, rate, factor), -1.0, 32767 / 32768)
                with atomic_open(path, "wb") as f:
                    sf.write(f, fast, rate, subtype="PCM_16", format="WAV")
            result.wav[new] = str(path)
            if data.segments:
                # Originals are cut from recordings; a copy is a whole file (one segment).
                result.segments[new] = (new, 0.0, -1.0)
    result.write(out)
    return result
