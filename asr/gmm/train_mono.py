"""Monophone GMM-HMM training from a flat start (Kaldi's steps/train_mono.sh).

iteration 0: global mean/variance in every pdf, equally spaced alignment, ML update;
iterations 1..N-1: Viterbi realignment on ``realign_iters``, statistics, ML update of
GMMs and transitions, mixing up by ``inc_gauss`` until ``total_gauss``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asr.datadir import DataDir
from asr.decode.viterbi import DecoderConfig
from asr.features import FeaturePipeline, load_features, read_feature_config
from asr.gmm.diag_gmm import DiagGmmSet
from asr.gmm.model import GmmHmm
from asr.hmm.align import equal_alignment
from asr.hmm.align_data import GmmAligner, save_alignment_outputs
from asr.hmm.align_graph import AlignGraph, build_align_graph
from asr.hmm.context import MonophoneContext
from asr.hmm.topology import Topology, TransitionModel
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.utils import AsrError, Config, atomic_path, write_text_atomic

log = logging.getLogger(__name__)

KALDI_REALIGN_ITERS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 23, 26, 29, 32, 35, 38]


@dataclass
class MonoConfig(Config):
    """Options of monophone training (Kaldi train_mono.sh defaults)."""

    num_iters: int = 40
    max_iter_inc: int = 30
    total_gauss: int = 1000
    realign_iters: list[int] = field(default_factory=lambda: list(KALDI_REALIGN_ITERS))
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


def _frame_pdfs(graphs: dict[str, AlignGraph], paths: dict[str, np.ndarray], utts: list[str]) -> np.ndarray:
    return np.concatenate([graphs[u].pdf[paths[u]] for u in utts])


def train_mono(data_dir: str | Path, lang_dir: str | Path, out_dir: str | Path, cfg: MonoConfig | None = None) -> GmmHmm:
    """Train a monophone system; writes the model dir, training log and final alignments."""
    cfg = cfg or MonoConfig()
    data_dir, lang_dir, out_dir = Path(data_dir), Path(lang_dir), Path(out_dir)
    t_start = time.time()
    data = DataDir.load(data_dir)
    phones = SymbolTable.read(lang_dir / "phones.txt")
    words = SymbolTable.read(lang_dir / "words.txt")
    lexicon = Lexicon.read(lang_dir / "lexicon.txt")
    topo = Topology.from_dict(json.loads((lang_dir / "topo.json").read_text()))
    sil_phone = (lang_dir / "silence_phones.txt").read_text().split()[0]
    trans = TransitionModel(topo)
    ctx = MonophoneContext(topo)
    pipeline = FeaturePipeline(cmvn=True, norm_vars=cfg.norm_vars, delta_order=cfg.delta_order)
    feats = load_features(data_dir, pipeline)
    graphs = {}
    for utt in data.utts():
        graphs[utt] = build_align_graph(data.text[utt], lexicon, phones, trans, ctx, sil_phone, cfg.sil_prob, utt)

    all_frames = np.concatenate([feats[u] for u in data.utts()]).astype(np.float64)
    mean, var = all_frames.mean(0), all_frames.var(0)
    var_floor = cfg.var_floor * var
    gmm = DiagGmmSet.flat_start(ctx.num_pdfs, mean, var)
    model = GmmHmm(phones, words, lexicon, trans, ctx, gmm, read_feature_config(data_dir), pipeline, sil_phone,
                   DecoderConfig(acoustic_scale=cfg.acoustic_scale, transition_scale=cfg.transition_scale))
    actx = GmmAligner(model, feats, graphs, cfg.acoustic_scale, cfg.transition_scale, cfg.boost_silence)

    paths: dict[str, np.ndarray] = {}
    for utt in data.utts():
        p = equal_alignment(graphs[utt], len(feats[utt]))
        if p is None:
            log.warning("utterance %s: %d frames are too few for its transcript; skipped", utt, len(feats[utt]))
        else:
            paths[utt] = p
    num_gauss = ctx.num_pdfs
    inc_gauss = max((cfg.total_gauss - num_gauss) // max(cfg.max_iter_inc, 1), 0)
    history: list[dict] = []
    first_iter = 0
    ckpt = out_dir / "checkpoint.npz"
    fingerprint = json.dumps({"config": dataclasses.asdict(cfg), "data": str(data_dir.resolve()),
                              "frames": int(all_frames.shape[0])}, sort_keys=True)
    if ckpt.exists():
        state = _load_checkpoint(ckpt, fingerprint)
        if state is not None:
            first_iter, num_gauss, history, paths = state["next_iter"], state["num_gauss"], state["history"], state["paths"]
            gmm = model.gmm = DiagGmmSet.from_arrays(state)
            trans.log_probs = state["trans_log_probs"]
            log.info("resuming monophone training at iteration %d from %s", first_iter, ckpt)
    x, x_utts = all_frames, data.utts()
    progress = tqdm(range(first_iter, cfg.num_iters), desc="train mono", unit="iter", leave=False, disable=None)
    for it in progress:
        align_obj = None
        if it > 0 and it in cfg.realign_iters:
            alis = actx.align()
            paths = {u: a.states for u, a in alis.items()}
            align_obj = sum(a.score for a in alis.values()) / sum(len(a.states) for a in alis.values())
            tids = np.concatenate([a.tids for a in alis.values()])
            trans.update(np.bincount(tids[tids >= 0], minlength=trans.num_tids).astype(np.float64))
        utts = sorted(paths)
        if utts != x_utts:  # the training frames change only when an utterance drops out
            x, x_utts = np.concatenate([feats[u] for u in utts]), utts
        pdf_ids = _frame_pdfs(graphs, paths, utts)
        stats = gmm.accumulate(x, pdf_ids)
        gmm.update(stats, var_floor, cfg.min_gauss_occ)
        if it > 0:
            gmm.mix_up(num_gauss, stats.occ.sum(1), cfg.power, perturb=cfg.mixup_perturb)
            if it <= cfg.max_iter_inc:
                num_gauss += inc_gauss
        row = {"iter": it, "loglik_per_frame": stats.loglik / stats.frames, "gaussians": gmm.total_gaussians(),
               "frames": stats.frames, "utts": len(utts)}
        if align_obj is not None:
            row["align_score_per_frame"] = align_obj
        history.append(row)
        log.info("mono iter %2d: log-likelihood/frame %.4f over %d frames, %d Gaussians%s", it,
                 row["loglik_per_frame"], stats.frames, row["gaussians"],
                 f", realigned (score/frame {align_obj:.4f})" if align_obj is not None else "")
        _save_checkpoint(ckpt, fingerprint, it + 1, num_gauss, history, paths, gmm, trans)
    # Final alignment with the final model: the input of the next stage.
    alis = actx.align()
    model.info = {"train_data": str(data_dir), "train_seconds": round(time.time() - t_start, 1),
                  "num_pdfs": ctx.num_pdfs, "gaussians": gmm.total_gaussians(), "config": dataclasses.asdict(cfg)}
    model.save(out_dir)
    write_text_atomic(out_dir / "train_log.json", json.dumps(history, indent=1) + "\n")
    save_alignment_outputs(out_dir / "ali", model, graphs, alis, data.text)
    ckpt.unlink(missing_ok=True)
    log.info("mono: %d pdfs, %d Gaussians, trained in %.1f s; model in %s", ctx.num_pdfs,
             gmm.total_gaussians(), time.time() - t_start, out_dir)
    return model


def _save_checkpoint(path: Path, fingerprint: str, next_iter: int, num_gauss: int, history: list[dict],
                     paths: dict[str, np.ndarray], gmm: DiagGmmSet, trans: TransitionModel) -> None:
    """Everything needed to continue after iteration ``next_iter - 1`` (Kaldi keeps N.mdl)."""
    utts = sorted(paths)
    with atomic_path(path) as tmp:
        np.savez(tmp, fingerprint=fingerprint, next_iter=next_iter, num_gauss=num_gauss,
                 history=json.dumps(history), utts=np.array(utts), lengths=np.array([len(paths[u]) for u in utts]),
                 paths=np.concatenate([paths[u] for u in utts]), trans_log_probs=trans.log_probs, **gmm.to_arrays())


def _load_checkpoint(path: Path, fingerprint: str) -> dict | None:
    with np.load(path) as z:
        if str(z["fingerprint"]) != fingerprint:
            log.warning("%s was written with other options or data; starting from scratch", path)
            return None
        state = {k: z[k] for k in z.files}
    bounds = np.cumsum(np.concatenate([[0], state["lengths"]]))
    state["paths"] = {str(u): state["paths"][bounds[i]:bounds[i + 1]] for i, u in enumerate(state["utts"])}
    state["next_iter"], state["num_gauss"] = int(state["next_iter"]), int(state["num_gauss"])
    state["history"] = json.loads(str(state["history"]))
    return state
