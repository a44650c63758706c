"""Acoustic features the Kaldi way: MFCC / fbank, per-speaker CMVN, deltas, splicing.

Raw features are computed once per data dir and stored as Kaldi ark/scp
(``feats.ark``/``feats.scp``) next to per-speaker CMVN statistics (``cmvn.ark``/``cmvn.scp``)
in Kaldi's (2, D+1) layout, so Kaldi tools can read ours and the reverse. CMVN and deltas
are applied when features are loaded (Kaldi's ``apply-cmvn | add-deltas`` pipeline), which
keeps one stored copy serving every model type.
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import kaldiio
import numpy as np
from tqdm import tqdm

from asr import backend
from asr.arkio import write_ark_scp
from asr.datadir import FEATS_INPUTS, AudioReader, DataDir, feature_input_hashes, read_kv
from asr.parallel import fork_pool
from asr.utils import AsrError, Config, read_json, write_text_atomic

log = logging.getLogger(__name__)

FEATS_CONF = "feats_conf.json"


@dataclass
class FeatureConfig(Config):
    """How raw features are computed (defaults follow Kaldi's compute-mfcc-feats).

    Attributes:
        kind: ``"mfcc"`` or ``"fbank"``.
        sample_rate: audio is resampled to this rate before analysis.
        num_ceps: cepstra kept (MFCC only).
        num_mel_bins: mel filters (23 for MFCC, 40 for fbank in Kaldi's recipes).
        frame_length_ms / frame_shift_ms: analysis window and hop.
        dither: Gaussian noise (in 16-bit sample units) added before analysis, Kaldi's
            default 1.0. It keeps log filterbank energies of digitally silent stretches
            (exact zeros, common in AN4) from collapsing to log(epsilon) outliers. The
            noise is seeded from the samples themselves, so features stay reproducible.
        use_energy: replace C0 by log energy (MFCC); Kaldi's recipes use false.
        low_freq / high_freq: mel filterbank edges in Hz (high <= 0 is an offset from Nyquist).
    """

    kind: str = "mfcc"
    sample_rate: int = 16000
    num_ceps: int = 13
    num_mel_bins: int = 23
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 1.0
    use_energy: bool = False
    low_freq: float = 20.0
    high_freq: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("mfcc", "fbank"):
            raise AsrError(f"feature kind must be 'mfcc' or 'fbank', got {self.kind!r}")

    @property
    def dim(self) -> int:
        return self.num_ceps if self.kind == "mfcc" else self.num_mel_bins


@dataclass
class FeaturePipeline(Config):
    """What a model applies on top of stored raw features: CMVN, deltas, splicing.

    Attributes:
        cmvn: apply per-speaker (or per-utterance) mean normalisation.
        norm_vars: also normalise variances (Kaldi's ``--norm-vars``).
        cmvn_window: 0 for statistics of the whole speaker (data dirs) or file (a single
            recording); N > 0 for Kaldi's apply-cmvn-sliding over a centred window of N frames,
            which needs no speaker and adapts to a channel that changes within a file.
        delta_order: 0 none, 2 = deltas + delta-deltas (Kaldi's add-deltas).
        splice: +-k context frames stacked (DNN input, LDA); 0 for none.
        projection: optional (D_out, D_in) matrix applied last (Kaldi's ``transform-feats
            final.mat``: LDA+MLLT); rows of floats so that model.json stays plain JSON.
    """

    cmvn: bool = True
    norm_vars: bool = False
    cmvn_window: int = 0
    delta_order: int = 2
    splice: int = 0
    projection: list[list[float]] | None = None

    def output_dim(self, raw_dim: int) -> int:
        if self.projection is not None:
            return len(self.projection)
        return raw_dim * (self.delta_order + 1) * (2 * self.splice + 1)

    def projection_matrix(self) -> np.ndarray | None:
        """(D_out, D_in) float32 projection, or None."""
        return None if self.projection is None else np.asarray(self.projection, dtype=np.float32)


def compute_features(samples: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Raw features of one utterance.

    Args:
        samples: (N,) float32 mono audio in [-1, 1] at ``cfg.sample_rate``.
    Returns:
        (T, D) float32, T = 1 + (N - window) // hop (Kaldi's snip-edges), D = ``cfg.dim``.
    """
    # Kaldi's feature code expects int16-scaled waveforms, as Kaldi does.
    scaled = np.ascontiguousarray(samples, dtype=np.float32) * 32768.0
    if cfg.dither > 0:
        rng = np.random.default_rng(zlib.crc32(scaled.tobytes()))
        scaled = scaled + cfg.dither * rng.standard_normal(len(scaled), dtype=np.float32)
    window = int(cfg.sample_rate * cfg.frame_length_ms / 1000)
    if len(scaled) < window:
        return np.zeros((0, cfg.dim), dtype=np.float32)
    common = dict(
        sample_frequency=float(cfg.sample_rate),
        frame_length=cfg.frame_length_ms,
        frame_shift=cfg.frame_shift_ms,
        dither=0.0,  # applied above, reproducibly
        num_mel_bins=cfg.num_mel_bins,
        low_freq=cfg.low_freq,
        high_freq=cfg.high_freq,
        use_energy=cfg.use_energy,
    )
    if cfg.kind == "mfcc":
        common["num_ceps"] = cfg.num_ceps
    return backend.kaldi_mfcc_fbank(scaled, cfg.kind, **common)


def add_deltas(feats: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Kaldi's add-deltas: append delta and higher-order features.

    Each order's filter is the previous one convolved with the delta filter
    ``[-w..w] / (2 * sum n^2)``, applied to the *original* features with edge frames
    replicated, exactly as Kaldi's DeltaFeatures does.

    Args:
        feats: (T, D).
    Returns:
        (T, D * (order + 1)).
    """
    if order == 0:
        return feats
    T, D = feats.shape
    base = np.arange(-window, window + 1, dtype=np.float64)
    base /= np.sum(base**2)
    filters = [np.array([1.0])]
    for _ in range(order):
        filters.append(np.convolve(filters[-1], base))
    if T == 0:
        return np.zeros((0, D * (order + 1)), dtype=np.float32)
    half = (len(filters[-1]) - 1) // 2
    padded = np.pad(feats.astype(np.float64), ((half, half), (0, 0)), mode="edge")  # edge frames replicated
    out = np.empty((T, D * (order + 1)), dtype=np.float32)
    out[:, :D] = feats
    for i, filt in enumerate(filters[1:], start=1):
        h = (len(filt) - 1) // 2
        acc = np.zeros((T, D))
        for k, w in enumerate(filt):  # shifted slices: no (T, taps, D) gather
            if w != 0.0:
                acc += w * padded[half - h + k:half - h + k + T]
        out[:, i * D:(i + 1) * D] = acc
    return out


def splice_frames(feats: np.ndarray, context: int) -> np.ndarray:
    """Stack +-``context`` neighbouring frames (edges replicated).

    Args:
        feats: (T, D).
    Returns:
        (T, D * (2 * context + 1)), frame t holds frames t-context .. t+context.
    """
    if context == 0:
        return feats
    T = feats.shape[0]
    idx = np.clip(np.arange(T)[:, None] + np.arange(-context, context + 1)[None, :], 0, T - 1)
    return feats[idx].reshape(T, feats.shape[1] * (2 * context + 1))


def cmvn_stats(feats_list: Iterable[np.ndarray]) -> np.ndarray:
    """Kaldi CMVN statistics of some utterances.

    Returns:
        (2, D + 1) float64: row 0 = [sum x, count], row 1 = [sum x^2, 0].
    """
    stats = None
    for f in feats_list:
        f64 = f.astype(np.float64)
        if stats is None:
            stats = np.zeros((2, f.shape[1] + 1))
        stats[0, :-1] += f64.sum(0)
        stats[0, -1] += f.shape[0]
        stats[1, :-1] += (f64**2).sum(0)
    if stats is None:
        raise AsrError("no features to compute CMVN statistics from")
    return stats


def apply_cmvn(feats: np.ndarray, stats: np.ndarray, norm_vars: bool = False) -> np.ndarray:
    """Normalise (T, D) features with (2, D+1) CMVN statistics; returns (T, D) float32."""
    count = stats[0, -1]
    if count <= 0:
        return feats
    mean = stats[0, :-1] / count
    out = feats - mean
    if norm_vars:
        var = np.maximum(stats[1, :-1] / count - mean**2, 1e-10)
        out = out / np.sqrt(var)
    return out.astype(np.float32)


def sliding_cmvn(feats: np.ndarray, window: int = 600, norm_vars: bool = False) -> np.ndarray:
    """(T, D) features normalised by the mean (and variance) of a centred ``window`` of frames
    (Kaldi's apply-cmvn-sliding --center=true): frames t - window/2 .. t + window/2 - 1,
    moved to lie inside the utterance, or the whole utterance when it is shorter."""
    if window < 1:
        raise AsrError(f"sliding CMVN window must be >= 1 frame, got {window}")
    T = feats.shape[0]
    if T == 0:
        return feats.astype(np.float32)
    t = np.arange(T)
    start = t - window // 2
    end = start + window
    shift = np.minimum(start, 0)  # too early: slide right
    start, end = start - shift, end - shift
    over = np.maximum(end - T, 0)  # too late: slide left (not before frame 0)
    start, end = np.maximum(start - over, 0), end - over
    f64 = feats.astype(np.float64)
    zero = np.zeros((1, feats.shape[1]))
    csum = np.concatenate([zero, np.cumsum(f64, axis=0)])
    count = (end - start)[:, None]
    mean = (csum[end] - csum[start]) / count
    out = f64 - mean
    if norm_vars:
        csq = np.concatenate([zero, np.cumsum(f64 ** 2, axis=0)])
        var = np.maximum((csq[end] - csq[start]) / count - mean ** 2, 1e-10)
        out /= np.sqrt(var)
    return out.astype(np.float32)


def speaker_cmvn_stats(feats: dict[str, np.ndarray], utt2spk: dict[str, str]) -> dict[str, np.ndarray]:
    """Per-speaker CMVN statistics of the utterances in ``feats`` (each speaker's utterances
    accumulated in sorted order): speaker -> (2, D + 1)."""
    by_spk: dict[str, list[str]] = {}
    for u in sorted(feats):
        by_spk.setdefault(utt2spk[u], []).append(u)
    return {spk: cmvn_stats(feats[u] for u in utts) for spk, utts in sorted(by_spk.items())}


def make_features(data_dir: str | Path, cfg: FeatureConfig, nj: int = 1) -> None:
    """Compute and store raw features + per-speaker CMVN stats for a data dir.

    Writes ``feats.{ark,scp}``, ``cmvn.{ark,scp}``, ``utt2num_frames``, ``feats_conf.json`` and
    ``feats_inputs.json`` (hashes of wav.scp, segments, utt2spk and the audio files' sizes and
    times) into the data dir, atomically. Skips the work only if both match. ``nj`` processes
    share the recordings (Kaldi's --nj); every utterance's features are the same for any nj.
    """
    data_dir = Path(data_dir)
    data = DataDir.load(data_dir, require_text=False)
    conf_path, inputs_path = data_dir / FEATS_CONF, data_dir / FEATS_INPUTS
    inputs = feature_input_hashes(data_dir)
    if conf_path.exists() and (data_dir / "cmvn.scp").exists():
        same_conf = read_json(conf_path) == cfg.to_dict()
        old_inputs = read_json(inputs_path) if inputs_path.exists() else {}
        if same_conf and old_inputs == inputs:
            log.info("%s: features already computed, skipping", data_dir)
            return
        changed = [k for k in sorted(set(inputs) | set(old_inputs)) if inputs.get(k) != old_inputs.get(k)]
        log.info("%s: %s changed since the features were computed; recomputing", data_dir,
                 ", ".join((["feature options"] if not same_conf else []) + changed))
    utts = data.utts_by_recording()
    if nj > 1 and len(utts) > 1:
        # contiguous shares keep each recording's segments together (one read per recording)
        bounds = np.linspace(0, len(utts), nj + 1).astype(int)
        _FEATS.update(data=data, cfg=cfg, data_dir=data_dir)
        try:
            with fork_pool(nj) as pool:
                parts = pool.map(_feature_share, [utts[a:b] for a, b in zip(bounds, bounds[1:]) if b > a])
        finally:
            _FEATS.clear()
        computed = {u: f for part in parts for u, f in part.items()}
        feats = {u: computed[u] for u in utts}
    else:
        feats = _compute_utterances(data, cfg, data_dir, utts, show=True)
    _write_ark(data_dir / "feats", feats)
    spk_stats = speaker_cmvn_stats(feats, data.utt2spk)
    _write_ark(data_dir / "cmvn", spk_stats)
    write_text_atomic(data_dir / "utt2num_frames", "".join(f"{u} {f.shape[0]}\n" for u, f in feats.items()))
    write_text_atomic(conf_path, json.dumps(cfg.to_dict(), indent=1) + "\n")
    write_text_atomic(inputs_path, json.dumps(inputs, indent=1) + "\n")
    n_frames = sum(f.shape[0] for f in feats.values())
    log.info("%s: %d utterances, %d frames (%.1f h), dim %d, %d speakers", data_dir, len(feats),
             n_frames, n_frames * cfg.frame_shift_ms / 3.6e6, cfg.dim, len(spk_stats))


def _compute_utterances(data: DataDir, cfg: FeatureConfig, data_dir: Path, utts: list[str],
                        show: bool = False) -> dict[str, np.ndarray]:
    feats: dict[str, np.ndarray] = {}
    audio = AudioReader(data, cfg.sample_rate)
    for utt in tqdm(utts, desc=f"features {data_dir.name}", unit="utt", leave=False, disable=None if show else True):
        samples, _ = audio(utt)
        f = compute_features(samples, cfg)
        if f.shape[0] == 0:
            raise AsrError(f"{data_dir}: utterance {utt} is shorter than one analysis window")
        feats[utt] = f
    return feats


# Worker state of parallel feature extraction (inherited through fork).
_FEATS: dict = {}


def _feature_share(utts: list[str]) -> dict[str, np.ndarray]:
    return _compute_utterances(_FEATS["data"], _FEATS["cfg"], _FEATS["data_dir"], utts)


def _write_ark(stem: Path, mats: dict[str, np.ndarray]) -> None:
    write_ark_scp(stem.with_suffix(".ark"), stem.with_suffix(".scp"), mats)


def read_feature_config(data_dir: str | Path) -> FeatureConfig:
    path = Path(data_dir) / FEATS_CONF
    if not path.exists():
        raise AsrError(f"{data_dir}: no features (missing {FEATS_CONF}); run the features stage first")
    return FeatureConfig.from_dict(read_json(path))


class FeatureArchive(Mapping[str, np.ndarray]):
    """A data dir's stored features as a read-only mapping utt -> (T, D') float32, read from
    ``feats.scp`` (and ``cmvn.scp``) each time an utterance is asked for, with the pipeline
    applied: nothing is kept, so a corpus larger than memory can be walked chunk by chunk
    (:func:`chunk_utterances`). ``post(utt, feats)`` may transform each utterance after the
    pipeline (a speaker's fMLLR transform).
    """

    def __init__(self, data_dir: str | Path, pipeline: FeaturePipeline, utts: list[str] | None = None,
                 post: Callable[[str, np.ndarray], np.ndarray] | None = None):
        self.data_dir = Path(data_dir)
        scp = self.data_dir / "feats.scp"
        if not scp.exists():
            raise AsrError(f"{self.data_dir}: missing feats.scp; run the features stage first")
        data = DataDir.load(self.data_dir, require_text=False)
        self.utt2spk = data.utt2spk
        self.pipeline, self.post = pipeline, post
        self._raw = kaldiio.load_scp(str(scp))
        self._cmvn = (kaldiio.load_scp(str(self.data_dir / "cmvn.scp"))
                      if pipeline.cmvn and not pipeline.cmvn_window else None)
        self._utts = list(utts) if utts is not None else data.utts()
        missing = [u for u in self._utts if u not in self._raw]
        if missing:
            raise AsrError(f"{self.data_dir}: utterance {missing[0]} has no features")
        self._set = set(self._utts)
        self._spk_stats: dict[str, np.ndarray] = {}
        counts = self.data_dir / "utt2num_frames"
        self._frames = ({u: int(n) for u, n in read_kv(counts).items()} if counts.exists() else {})

    def num_frames(self, utt: str) -> int:
        """Frames of ``utt`` (from ``utt2num_frames``, without reading the features)."""
        n = self._frames.get(utt)
        return len(self[utt]) if n is None else n

    def __getitem__(self, utt: str) -> np.ndarray:
        if utt not in self._set:
            raise KeyError(utt)
        try:
            f = np.asarray(self._raw[utt], dtype=np.float32)
        except (OSError, ValueError) as e:
            raise AsrError(f"{self.data_dir}: cannot read the features of {utt} ({e})") from None
        if self._cmvn is not None:
            spk = self.utt2spk[utt]
            if spk not in self._spk_stats:  # (2, D+1) per speaker: small, read once
                self._spk_stats[spk] = np.asarray(self._cmvn[spk])
            f = apply_cmvn(f, self._spk_stats[spk], self.pipeline.norm_vars)
        f = transform(f, self.pipeline, cmvn_done=self._cmvn is not None)
        return f if self.post is None else self.post(utt, f)

    def __iter__(self) -> Iterator[str]:
        return iter(self._utts)

    def __len__(self) -> int:
        return len(self._utts)

    def __contains__(self, utt: object) -> bool:
        return utt in self._set


def frame_count(feats: Mapping[str, np.ndarray], utt: str) -> int:
    """Frames of one utterance of in-memory features or of a :class:`FeatureArchive` (not read)."""
    return feats.num_frames(utt) if isinstance(feats, FeatureArchive) else len(feats[utt])


def aligned_features(feats: Mapping[str, np.ndarray], utt: str, frames: int) -> np.ndarray:
    """``feats[utt]``, checked to have the ``frames`` frames its alignment has (one clear error
    naming the utterance otherwise)."""
    x = feats[utt]
    if len(x) != frames:
        raise AsrError(f"utterance {utt}: {len(x)} feature frames but {frames} aligned frames")
    return x


def chunk_utterances(utts: list[str], lengths: Mapping[str, int], chunk_frames: int) -> list[list[str]]:
    """Consecutive groups of ``utts`` of about ``chunk_frames`` frames each (a group closes
    once it reaches it; ``chunk_frames`` <= 0: one group of everything)."""
    if chunk_frames <= 0:
        return [list(utts)] if utts else []
    chunks, cur, n = [], [], 0
    for u in utts:
        cur.append(u)
        n += int(lengths[u])
        if n >= chunk_frames:
            chunks.append(cur)
            cur, n = [], 0
    if cur:
        chunks.append(cur)
    return chunks


def training_features(data_dir: str | Path, pipeline: FeaturePipeline, chunk_frames: int = 0
                      ) -> Mapping[str, np.ndarray]:
    """A trainer's features: all in memory, or (``chunk_frames`` > 0: the trainer walks them in
    chunks) a :class:`FeatureArchive` that reads each utterance when it is needed."""
    if chunk_frames > 0:
        return FeatureArchive(data_dir, pipeline)
    return load_features(data_dir, pipeline)


def load_features(data_dir: str | Path, pipeline: FeaturePipeline,
                  utts: list[str] | None = None) -> dict[str, np.ndarray]:
    """Load a data dir's stored features with CMVN, deltas and splicing applied, all in memory
    (:class:`FeatureArchive` reads them on demand instead).

    Returns:
        utt -> (T, D') float32 with D' = ``pipeline.output_dim(raw_dim)``.
    """
    archive = FeatureArchive(data_dir, pipeline, utts)
    return {utt: archive[utt] for utt in archive}


def transform(feats: np.ndarray, pipeline: FeaturePipeline, cmvn_done: bool = False) -> np.ndarray:
    """Apply a pipeline to (T, D) raw features; without prior CMVN, per-utterance (or sliding) CMVN is used."""
    if pipeline.cmvn and not cmvn_done:
        feats = (sliding_cmvn(feats, pipeline.cmvn_window, pipeline.norm_vars) if pipeline.cmvn_window
                 else apply_cmvn(feats, cmvn_stats([feats]), pipeline.norm_vars))
    feats = splice_frames(add_deltas(feats, pipeline.delta_order), pipeline.splice)
    proj = pipeline.projection_matrix()
    if proj is not None:
        if proj.shape[1] != feats.shape[1]:
            raise AsrError(f"the feature projection expects dimension {proj.shape[1]}, the spliced features "
                           f"have {feats.shape[1]}")
        feats = feats @ proj.T
    return feats
