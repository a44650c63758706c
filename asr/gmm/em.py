"""Viterbi EM for GMM-HMMs, shared by monophone and triphone training.

One iteration (Kaldi's gmm-acc-stats-ali + gmm-est): on ``realign_iters`` realign the
training data with the current model and re-estimate transitions from the transition
ids used; accumulate GMM statistics over the frames' pdfs; ML update; split Gaussians
towards ``total_gauss`` (reached after ``max_iter_inc`` iterations). Every iteration is
checkpointed, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol

import numpy as np
from tqdm import tqdm

from asr.features import aligned_features, chunk_utterances
from asr.gmm.diag_gmm import DiagGmmSet, GmmStats, StatsPool
from asr.gmm.model import GmmHmm
from asr.hmm.align_data import Aligner, save_alignment_outputs
from asr.parallel import prefetched
from asr.utils import AsrError, Config, atomic_path, write_text_atomic

log = logging.getLogger(__name__)


@dataclass
class GmmTrainConfig(Config):
    """Options shared by all GMM-HMM training (Kaldi train_mono.sh / train_deltas.sh names)."""

    num_iters: int = 40
    max_iter_inc: int = 30
    total_gauss: int = 1000
    realign_iters: list[int] = field(default_factory=list)
    boost_silence: float = 1.0
    power: float = 0.25
    mixup_perturb: float = 0.2  # split means move +-this many standard deviations
    min_gauss_occ: float = 3.0
    var_floor: float = 0.01  # relative to the global variance
    acoustic_scale: float = 0.1
    transition_scale: float = 0.1
    sil_prob: float = 0.5
    delta_order: int = 2
    norm_vars: bool = False
    cmvn_window: int = 0  # > 0: sliding CMVN over this many frames (Kaldi apply-cmvn-sliding), not per speaker
    nj: int = 1  # processes for alignment and statistics (Kaldi's --nj); the model is the same for any nj
    blas_threads: int = 1  # BLAS threads per process (0: the library's default); small matmuls run best on one
    device: str = "cpu"  # cuda: statistics and alignment in torch on the GPU ("torch": that code on the CPU)
    # > 0: features are read from the archive chunk by chunk (about this many frames each) on
    # every pass instead of held in memory, so a corpus larger than RAM trains (LDA+MLLT and
    # SAT, whose features change during EM, keep theirs in memory).
    chunk_frames: int = 0


class FeatureUpdater(Protocol):
    """Training features that change during EM (MLLT, per-speaker fMLLR).

    ``update`` is called at the start of every iteration (after any realignment) and may
    replace entries of the shared feature dict, moving the model into the new space; its
    ``state`` is checkpointed and ``restore`` re-applies it to freshly loaded features.
    """

    def update(self, it: int, model: GmmHmm, frame_pdfs: dict[str, np.ndarray]) -> bool:
        """Return True when the features changed."""
        ...

    def state(self) -> dict[str, np.ndarray]:
        ...

    def restore(self, state: dict[str, np.ndarray], model: GmmHmm) -> None:
        ...


def global_stats(feats: Mapping[str, np.ndarray], utts: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean (D,), variance (D,) and number of all training frames (flat start, variance floor);
    one pass over the utterances (an archive is read once)."""
    n, s1, s2 = 0, 0.0, 0.0
    for u in utts:
        x = feats[u]
        n += len(x)
        s1 = s1 + x.sum(0, dtype=np.float64)
        s2 = s2 + np.square(x, dtype=np.float64).sum(0)
    mean = s1 / n
    return mean, np.maximum(s2 / n - mean**2, 0.0), n


def run_em(model: GmmHmm, aligner: Aligner, feats: Mapping[str, np.ndarray], frame_pdfs: dict[str, np.ndarray],
           cfg: GmmTrainConfig, var_floor: np.ndarray, out_dir: Path, fingerprint: dict, name: str,
           updater: FeatureUpdater | None = None) -> list[dict]:
    """Train ``model`` in place from initial per-frame pdfs; returns the per-iteration log.

    Args:
        feats: utt -> (T, D) training features, shared with ``aligner`` (``updater`` may
            replace its entries).
        frame_pdfs: utt -> (T,) pdf of each frame (the starting alignment).
        var_floor: (D,) absolute variance floor (recomputed when the features change).
        fingerprint: what the run depends on; a checkpoint written under another is ignored.
    """
    gmm, trans = model.gmm, model.trans
    num_gauss = gmm.total_gaussians()
    inc_gauss = max((cfg.total_gauss - num_gauss) // max(cfg.max_iter_inc, 1), 0)
    history: list[dict] = []
    first_iter = 0
    ckpt = out_dir / "checkpoint.npz"
    # Any nj gives the same model (a device only other rounding): a run may resume with another.
    fp = json.dumps({**fingerprint, "config": {k: v for k, v in dataclasses.asdict(cfg).items()
                                               if k not in ("nj", "device", "blas_threads")}},
                    sort_keys=True)
    if ckpt.exists():
        state = _load_checkpoint(ckpt, fp)
        if state is not None:
            first_iter, num_gauss, history, frame_pdfs = (state["next_iter"], state["num_gauss"], state["history"],
                                                          state["frame_pdfs"])
            gmm = model.gmm = DiagGmmSet.from_ragged(state)  # the aligner shares this model
            trans.log_probs = state["trans_log_probs"]
            if updater is not None:
                updater.restore({k[len("upd_"):]: v for k, v in state.items() if k.startswith("upd_")}, model)
                var_floor = _var_floor(feats, cfg)
            log.info("resuming %s training at iteration %d from %s", name, first_iter, ckpt)
    x, x_utts = None, None
    workers = None  # --nj statistics workers, forked with the current training frames
    progress = tqdm(range(first_iter, cfg.num_iters), desc=f"train {name}", unit="iter", leave=False, disable=None)
    try:
        for it in progress:
            t0 = time.time()
            align_obj = None
            if it > 0 and it in cfg.realign_iters:
                alis = aligner.align()
                frame_pdfs = {u: aligner.graphs[u].pdf[a.states] for u, a in alis.items()}
                align_obj = sum(a.score for a in alis.values()) / sum(len(a.states) for a in alis.values())
                tids = np.concatenate([a.tids for a in alis.values()])
                trans.update(np.bincount(tids[tids >= 0], minlength=trans.num_tids).astype(np.float64))
            if updater is not None and updater.update(it, model, frame_pdfs):
                x_utts, var_floor = None, _var_floor(feats, cfg)
                gmm = model.gmm
            utts = sorted(frame_pdfs)
            if cfg.chunk_frames > 0:
                stats = accumulate_streamed(gmm, feats, frame_pdfs, utts, cfg)
            else:
                if utts != x_utts:  # the training frames change only when an utterance drops out
                    x, x_utts = np.concatenate([feats[u] for u in utts]), utts
                    if workers is not None:
                        workers.close()
                    workers = StatsPool(cfg.nj, x) if cfg.nj > 1 and cfg.device == "cpu" else None
                pdf_ids = np.concatenate([frame_pdfs[u] for u in utts])
                stats = workers.accumulate(gmm, pdf_ids) if workers is not None else _accumulate(gmm, x, pdf_ids, cfg)
            gmm.update(stats, var_floor, cfg.min_gauss_occ)
            if it > 0:
                gmm.mix_up(num_gauss, stats.occ.sum(1), cfg.power, perturb=cfg.mixup_perturb)
                if it <= cfg.max_iter_inc:
                    num_gauss += inc_gauss
            row = {"iter": it, "loglik_per_frame": stats.loglik / stats.frames, "gaussians": gmm.total_gaussians(),
                   "frames": stats.frames, "utts": len(utts), "seconds": round(time.time() - t0, 2)}
            if align_obj is not None:
                row["align_score_per_frame"] = align_obj
            history.append(row)
            log.info("%s iter %2d: log-likelihood/frame %.4f over %d frames, %d Gaussians%s", name, it,
                     row["loglik_per_frame"], stats.frames, row["gaussians"],
                     f", realigned (score/frame {align_obj:.4f})" if align_obj is not None else "")
            _save_checkpoint(ckpt, fp, it + 1, num_gauss, history, frame_pdfs, gmm, trans.log_probs,
                             {} if updater is None else updater.state())
    finally:
        if workers is not None:
            workers.close()
    return history


def _accumulate(gmm: DiagGmmSet, x: np.ndarray, pdf_ids: np.ndarray, cfg: GmmTrainConfig) -> GmmStats:
    """Statistics of frames held in memory, on the CPU (``cfg.nj`` processes) or a torch device."""
    if cfg.device == "cpu":
        return gmm.accumulate(x, pdf_ids, nj=cfg.nj)
    from asr.hmm.align_torch import torch_device

    return gmm.on_device(torch_device(cfg.device)).accumulate(x, pdf_ids)


def accumulate_streamed(gmm: DiagGmmSet, feats: Mapping[str, np.ndarray], frame_pdfs: Mapping[str, np.ndarray],
                        utts: list[str], cfg: GmmTrainConfig) -> GmmStats:
    """EM statistics over ``utts``, reading ``feats`` (a :class:`~asr.features.FeatureArchive`)
    ``cfg.chunk_frames`` frames at a time: memory holds one chunk, whatever the corpus size.
    Chunks are summed in order, so any ``nj`` gives the same statistics."""
    lengths = {u: len(frame_pdfs[u]) for u in utts}
    chunks = chunk_utterances(utts, lengths, cfg.chunk_frames)
    read = lambda chunk: np.concatenate([aligned_features(feats, u, lengths[u]) for u in chunk])  # noqa: E731
    stats = None
    for chunk, x in tqdm(prefetched(read, chunks), total=len(chunks), desc="statistics", unit="chunk", leave=False,
                         disable=None):
        part = _accumulate(gmm, x, np.concatenate([frame_pdfs[u] for u in chunk]), cfg)
        stats = part if stats is None else stats + part
    if stats is None:
        raise AsrError("no aligned utterance to accumulate statistics over")
    return stats


def _var_floor(feats: Mapping[str, np.ndarray], cfg: GmmTrainConfig) -> np.ndarray:
    return cfg.var_floor * global_stats(feats, sorted(feats))[1]


def finish_training(model: GmmHmm, aligner: Aligner, text: dict[str, list[str]], out_dir: Path,
                    history: list[dict], info: dict,
                    before_save: Callable[[GmmHmm, dict[str, np.ndarray]], None] | None = None) -> None:
    """Final alignment with the final model (the next stage's input); write the model dir.
    ``before_save(model, frame_pdfs)`` may complete the model from that alignment (SAT's
    speaker-independent model) before anything is written."""
    t0 = time.time()
    alis = aligner.align()
    # Kaldi's train_*.sh keep the alignment of their last realignment; this one is extra work
    model.info = {**info, "final_align_seconds": round(time.time() - t0, 2)}
    if before_save is not None:
        before_save(model, {u: aligner.graphs[u].pdf[a.states] for u, a in alis.items()})
    model.save(out_dir)
    write_text_atomic(out_dir / "train_log.json", json.dumps(history, indent=1) + "\n")
    save_alignment_outputs(out_dir / "ali", model, aligner.graphs, alis, text)
    (out_dir / "checkpoint.npz").unlink(missing_ok=True)


def _save_checkpoint(path: Path, fingerprint: str, next_iter: int, num_gauss: int, history: list[dict],
                     frame_pdfs: dict[str, np.ndarray], gmm: DiagGmmSet, trans_log_probs: np.ndarray,
                     updater_state: dict[str, np.ndarray]) -> None:
    """Everything needed to continue after iteration ``next_iter - 1`` (Kaldi keeps N.mdl)."""
    utts = sorted(frame_pdfs)
    with atomic_path(path) as tmp:
        np.savez(tmp, fingerprint=fingerprint, next_iter=next_iter, num_gauss=num_gauss,
                 history=json.dumps(history), utts=np.array(utts), lengths=np.array([len(frame_pdfs[u]) for u in utts]),
                 frame_pdfs=np.concatenate([frame_pdfs[u] for u in utts]), trans_log_probs=trans_log_probs,
                 **gmm.to_ragged(), **{f"upd_{k}": v for k, v in updater_state.items()})


def _load_checkpoint(path: Path, fingerprint: str) -> dict | None:
    try:
        with np.load(path) as z:
            if "ragged_counts" not in z.files or str(z["fingerprint"]) != fingerprint:
                log.warning("%s was written with other options or data; starting from scratch", path)
                return None
            state = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise AsrError(f"unreadable checkpoint {path} ({e}); delete it to start over") from None
    bounds = np.cumsum(np.concatenate([[0], state["lengths"]]))
    state["frame_pdfs"] = {str(u): state["frame_pdfs"][bounds[i]:bounds[i + 1]] for i, u in enumerate(state["utts"])}
    state["next_iter"], state["num_gauss"] = int(state["next_iter"]), int(state["num_gauss"])
    state["history"] = json.loads(str(state["history"]))
    return state
