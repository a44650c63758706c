"""Monophone GMM-HMM training from a flat start (Kaldi's steps/train_mono.sh).

iteration 0: global mean/variance in every pdf, equally spaced alignment, ML update;
iterations 1..N-1: Viterbi realignment on ``realign_iters``, statistics, ML update of
GMMs and transitions, mixing up by ``inc_gauss`` until ``total_gauss`` (see ``em.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asr.datadir import DataDir
from asr.decode.config import DecoderConfig
from asr.features import FeaturePipeline, frame_count, read_feature_config, training_features
from asr.gmm.diag_gmm import DiagGmmSet
from asr.gmm.em import GmmTrainConfig, finish_training, global_stats, run_em
from asr.gmm.model import GmmHmm
from asr.hmm.align import equal_alignment
from asr.hmm.align_data import Aligner
from asr.hmm.align_graph import build_align_graphs
from asr.hmm.context import MonophoneContext
from asr.hmm.topology import TransitionModel
from asr.lang.prepare import Lang

log = logging.getLogger(__name__)

KALDI_REALIGN_ITERS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 23, 26, 29, 32, 35, 38]


@dataclass
class MonoConfig(GmmTrainConfig):
    """Options of monophone training (Kaldi train_mono.sh defaults)."""

    num_iters: int = 40
    max_iter_inc: int = 30
    total_gauss: int = 1000
    realign_iters: list[int] = field(default_factory=lambda: list(KALDI_REALIGN_ITERS))


def train_mono(data_dir: str | Path, lang_dir: str | Path, out_dir: str | Path, cfg: MonoConfig | None = None) -> GmmHmm:
    """Train a monophone system; writes the model dir, training log and final alignments."""
    cfg = cfg or MonoConfig()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    t_start = time.time()
    data = DataDir.load(data_dir)
    lang = Lang.load(lang_dir)
    sil_phone = lang.silence_phones[0]
    trans = TransitionModel(lang.topo)
    ctx = MonophoneContext(lang.topo)
    pipeline = FeaturePipeline(cmvn=True, norm_vars=cfg.norm_vars, cmvn_window=cfg.cmvn_window,
                               delta_order=cfg.delta_order)
    feats = training_features(data_dir, pipeline, cfg.chunk_frames)
    graphs = build_align_graphs({u: data.text[u] for u in data.utts()}, lang.lexicon, lang.phones, trans, ctx,
                                sil_phone, cfg.sil_prob, cfg.nj)
    mean, var, num_frames = global_stats(feats, data.utts())
    gmm = DiagGmmSet.flat_start(ctx.num_pdfs, mean, var)
    model = GmmHmm(lang.phones, lang.words, lang.lexicon, trans, ctx, gmm, read_feature_config(data_dir), pipeline,
                   sil_phone, DecoderConfig(acoustic_scale=cfg.acoustic_scale, transition_scale=cfg.transition_scale))
    aligner = Aligner(model, feats, graphs, cfg.acoustic_scale, cfg.transition_scale, cfg.boost_silence, cfg.nj,
                      cfg.device)
    frame_pdfs: dict[str, np.ndarray] = {}
    for utt in data.utts():
        frames = frame_count(feats, utt)
        path = equal_alignment(graphs[utt], frames)
        if path is None:
            log.warning("utterance %s: %d frames are too few for its transcript; skipped", utt, frames)
        else:
            frame_pdfs[utt] = graphs[utt].pdf[path]
    fingerprint = {"data": str(data_dir.resolve()), "frames": num_frames}
    history = run_em(model, aligner, feats, frame_pdfs, cfg, cfg.var_floor * var, out_dir, fingerprint, "mono")
    finish_training(model, aligner, data.text, out_dir, history, {
        "train_data": str(data_dir), "train_seconds": round(time.time() - t_start, 1), "num_pdfs": ctx.num_pdfs,
        "gaussians": model.gmm.total_gaussians(), "config": dataclasses.asdict(cfg)})
    log.info("mono: %d pdfs, %d Gaussians, trained in %.1f s; model in %s", ctx.num_pdfs,
             model.gmm.total_gaussians(), time.time() - t_start, out_dir)
    return model
