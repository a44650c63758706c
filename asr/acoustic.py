"""The one interface decoding and alignment see, and the registry that loads any model dir.

Every acoustic model (GMM-HMM, DNN-HMM, an ensemble of DNNs, CTC) is used through
:class:`AcousticModel`: per-frame scores for its pdfs, the transition model and context
dependency the graphs are built from, its lexicon and symbol tables, its feature
pipeline and its decoding defaults. :func:`load_model` reads ``model.json``'s ``type``
and imports the class that type names (:data:`MODEL_TYPES`), so the decoder and the
aligner never import ``asr.gmm`` or ``asr.nnet``.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from asr.audio import read_audio, read_wav_scp_entry
from asr.features import compute_features, transform
from asr.utils import AsrError, one_line, read_json

# model.json "type" -> the class that loads it (module:Class), imported on first use.
MODEL_TYPES = {
    "gmm": "asr.gmm.model:GmmHmm",
    "dnn": "asr.nnet.model:DnnHmm",
    "ctc": "asr.nnet.ctc_model:CtcModel",
}
ENSEMBLE = "asr.nnet.model:Ensemble"  # DIR1,DIR2,...: DNN (or CTC) dirs whose posteriors are averaged


class AcousticModel(Protocol):
    """What decoding and alignment use of a model.

    Attributes:
        trans: the transition model (``asr.hmm.topology.TransitionModel``).
        ctx: context dependency: ``pdf_of(left, phone, right, hmm_state)``, ``context_width``.
        lexicon, words, phones, silence_phone: the lang the model was trained with.
        feature, pipeline: feature extraction and the transforms applied to it.
        decoder: default ``asr.decode.config.DecoderConfig``.
    """

    trans: Any
    ctx: Any
    lexicon: Any
    words: Any
    phones: Any
    silence_phone: str
    feature: Any
    pipeline: Any
    decoder: Any

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """(T, num_pdfs) log-scores of (T, D) features: log-likelihoods (GMM), scaled
        log-likelihoods (DNN) or log-posteriors (CTC), on the model's frame rate."""
        ...


def _import(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def model_dirs(spec: str | Path) -> list[Path]:
    """``DIR`` or ``DIR1,DIR2,...`` (an ensemble of hybrid models) as paths."""
    dirs = [Path(p) for p in str(spec).split(",") if p.strip()]
    if not dirs:
        raise AsrError(f"no model dir given (got {str(spec)!r}); give DIR or DIR1,DIR2,... for an ensemble")
    return dirs


def load_model(model_dir: str | Path, device: str = "cpu"):
    """Load any model dir by its declared type; ``A,B,...`` loads an ensemble of DNN dirs.

    A damaged or incomplete model dir (truncated arrays, a model.json with missing or
    mistyped fields) is an AsrError naming it.
    """
    try:
        return _load_model(model_dir, device)
    except AsrError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, OSError, EOFError, zipfile.BadZipFile) as e:
        what = f"missing entry {e}" if isinstance(e, KeyError) else one_line(e)
        raise AsrError(f"{model_dir}: damaged or incomplete model dir ({type(e).__name__}: {what})") from None


def _load_model(model_dir: str | Path, device: str):
    dirs = model_dirs(model_dir)
    if len(dirs) > 1:
        members = []
        for d in dirs:
            if not (d / "model.json").exists():
                raise AsrError(f"{d} is not a model dir (no model.json)")
            kind = read_json(d / "model.json", "model.json").get("type")
            if kind not in ("dnn", "ctc"):
                raise AsrError(f"{d}: an ensemble takes DNN or CTC model dirs, not type {kind!r}")
            members.append(_import(MODEL_TYPES[kind]).load(d, device))
        return _import(ENSEMBLE)(members)
    meta_path = dirs[0] / "model.json"
    if not meta_path.exists():
        raise AsrError(f"{model_dir} is not a model dir (no model.json)")
    meta = read_json(meta_path, "model.json")
    kind = meta.get("type") if isinstance(meta, dict) else None
    if kind not in MODEL_TYPES:
        raise AsrError(f"{model_dir}: unknown model type {kind!r} (known: {', '.join(sorted(MODEL_TYPES))})")
    cls = _import(MODEL_TYPES[kind])
    return cls.load(model_dir) if kind == "gmm" else cls.load(model_dir, device)


def score_utterances(model, feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``model.scores`` of every utterance; a model with ``scores_batch`` (recurrent networks,
    whose time steps are sequential) scores length-sorted batches of them at once."""
    if hasattr(model, "scores_batch"):
        return model.scores_batch(feats)
    return {u: model.scores(f) for u, f in feats.items()}


def frame_shift_s(model) -> float:
    """Seconds per frame of the model's scores (a CTC model stacks ``subsample`` input frames)."""
    return model.feature.frame_shift_ms / 1000 * getattr(model, "subsample", 1)


def pdf_scores(model, feats: np.ndarray, pdfs: np.ndarray, device=None) -> np.ndarray:
    """(T, len(pdfs)) float32 scores of some pdfs only: a GMM evaluates just those
    (``model.pdf_scores``, on a torch ``device`` when given); other models compute all and pick."""
    if hasattr(model, "pdf_scores"):
        return model.pdf_scores(feats, pdfs, device) if device is not None else model.pdf_scores(feats, pdfs)
    return model.scores(feats)[:, np.asarray(pdfs)].astype(np.float32)


def features_for_files(model, paths: list[str], scp_entries: bool = False) -> dict[str, np.ndarray]:
    """Features of standalone audio files (each its own speaker: per-utterance CMVN).

    ``paths`` are file paths, or with ``scp_entries`` wav.scp values (which may be commands
    ending in ``|``); a path from the command line is never run by a shell.
    """
    return {p: features_of_samples(model, file_samples(model, p, scp_entries), p) for p in paths}


def file_samples(model, path: str, scp_entry: bool = False) -> np.ndarray:
    """(N,) samples of a file (or with ``scp_entry`` a wav.scp value) at the model's rate."""
    read = read_wav_scp_entry if scp_entry else read_audio
    return read(path, target_rate=model.feature.sample_rate)[0]


def features_of_samples(model, samples: np.ndarray, name: str) -> np.ndarray:
    """(T, D) model features of (N,) samples at the model's rate (``name`` for the error)."""
    raw = compute_features(samples, model.feature)
    if raw.shape[0] == 0:
        raise AsrError(f"{name}: too short to decode (less than one {model.feature.frame_length_ms:g} ms frame)")
    return transform(raw, model.pipeline)


def feature_chunks(model, path: str, chunk_seconds: float = 30.0) -> Iterator[tuple[float, np.ndarray]]:
    """``(start seconds, (T, D) features)`` of a long recording's consecutive chunks, cut in
    pauses (:func:`asr.audio.read_audio_chunks`), each with its own CMVN; only one chunk's
    audio is in memory. A sliver shorter than one frame at the very end is skipped."""
    from asr.audio import read_audio_chunks

    for start, samples in read_audio_chunks(path, model.feature.sample_rate, chunk_seconds):
        raw = compute_features(samples, model.feature)
        if raw.shape[0]:
            yield start, transform(raw, model.pipeline)


def features_for_long_file(model, path: str, chunk_seconds: float = 30.0) -> np.ndarray:
    """(T, D) features of a whole long recording from :func:`feature_chunks`.

    Each chunk's frames are placed at its start time on the file's clock (padded with its
    last frame, a pause, or trimmed by the frame or two that framing loses at a cut), so frame
    t is at t x frame shift seconds whatever the chunking.
    """
    shift = model.feature.frame_shift_ms / 1000
    chunks = [(int(round(start / shift)), feats) for start, feats in feature_chunks(model, path, chunk_seconds)]
    if not chunks:
        raise AsrError(f"{path}: too short to align (less than one {model.feature.frame_length_ms:g} ms frame)")
    parts = []
    for k, (first, feats) in enumerate(chunks):
        if k + 1 < len(chunks):
            n = chunks[k + 1][0] - first
            feats = feats[:n] if len(feats) >= n else np.concatenate([feats, np.repeat(feats[-1:], n - len(feats), 0)])
        parts.append(feats)
    return np.concatenate(parts)
