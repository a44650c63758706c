"""Triphone GMM-HMM training with decision-tree state tying (Kaldi's steps/train_deltas.sh).

1. Tree statistics: one Gaussian per (left, phone, right, HMM state) seen in the
   previous model's alignment (features with deltas, as the new model uses them).
2. Questions by clustering the phones on those statistics, then a tree grown greedily
   to ``num_leaves`` tied states (roots: base phone x HMM state; silence not split).
3. One Gaussian per leaf from its statistics; transitions from the alignment's counts.
4. Viterbi EM (``em.py``): the old alignment, mapped through the tree, serves until the
   first of ``realign_iters``; then the training data is realigned with context-dependent
   graphs; Gaussians grow towards ``total_gauss``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from asr.datadir import DataDir
from asr.decode.config import DecoderConfig
from asr.features import FeaturePipeline, read_feature_config, training_features
from asr.gmm.diag_gmm import DiagGmmSet
from asr.gmm.em import FeatureUpdater, GmmTrainConfig, finish_training, global_stats, run_em
from asr.gmm.model import GmmHmm
from asr.hmm.align_data import Aligner
from asr.hmm.align_graph import build_align_graphs
from asr.hmm.alignments import read_alignments
from asr.hmm.topology import TransitionModel
from asr.lang.prepare import Lang
from asr.tree.build import Root, build_tree, leaf_statistics
from asr.tree.questions import make_questions, phone_groups
from asr.tree.stats import accumulate_tree_stats, frame_keys
from asr.tree.tree import DecisionTree
from asr.utils import AsrError, write_text_atomic

log = logging.getLogger(__name__)


@dataclass
class TriConfig(GmmTrainConfig):
    """Options of triphone training (Kaldi train_deltas.sh defaults; leaves/Gaussians per recipe)."""

    num_leaves: int = 2000
    total_gauss: int = 10000
    num_iters: int = 35
    max_iter_inc: int = 25
    realign_iters: list[int] = field(default_factory=lambda: [10, 20, 30])
    min_leaf_occ: float = 100.0  # frames a tied state must keep after a split
    min_gain: float = 0.0  # stop splitting below this log-likelihood gain
    tree_var_floor: float = 0.01  # absolute variance floor of the clustering Gaussians


def grow_tree(stats, lang: Lang, trans: TransitionModel, cfg: TriConfig) -> DecisionTree:
    """Questions from the data, then the tree over roots (base phone x HMM state)."""
    questions = make_questions(stats, lang.phones, lang.silence_phones, trans.phone_num_states, cfg.tree_var_floor)
    silence = {lang.phones.id(p) for p in lang.silence_phones if p in lang.phones}
    roots = [Root(ids, s, split=not (set(ids) & silence))
             for ids in phone_groups(lang.phones).values() for s in range(lang.topo.num_states(ids[0]))]
    return build_tree(stats, questions, roots, cfg.num_leaves, cfg.min_leaf_occ, cfg.min_gain, cfg.tree_var_floor)


def train_tri(data_dir: str | Path, lang_dir: str | Path, ali_dir: str | Path, out_dir: str | Path,
              cfg: TriConfig | None = None) -> GmmHmm:
    """Train a triphone system from an alignment; writes the model dir, training log, tree and alignments."""
    cfg = cfg or TriConfig()
    pipeline = FeaturePipeline(cmvn=True, norm_vars=cfg.norm_vars, cmvn_window=cfg.cmvn_window,
                               delta_order=cfg.delta_order)
    return train_tied(data_dir, lang_dir, ali_dir, out_dir, cfg,
                      training_features(data_dir, pipeline, cfg.chunk_frames), pipeline)


def train_tied(data_dir: str | Path, lang_dir: str | Path, ali_dir: str | Path, out_dir: str | Path, cfg: TriConfig,
               feats: dict[str, np.ndarray], pipeline: FeaturePipeline, name: str = "tri",
               updater: FeatureUpdater | None = None, info: dict | None = None,
               before_save: Callable[[GmmHmm, dict[str, np.ndarray]], None] | None = None) -> GmmHmm:
    """Tree, initial model and EM of a tied-state system on given features (deltas for tri1,
    LDA+MLLT for tri2, fMLLR for SAT).

    Args:
        feats: utt -> (T, D) features in ``pipeline``'s space (changed in place by an updater).
        updater: a :class:`~asr.gmm.em.FeatureUpdater` (MLLT, fMLLR), or None.
        info: extra fields for model.json's info.
        before_save: see :func:`~asr.gmm.em.finish_training`.
    """
    data_dir, ali_dir, out_dir = Path(data_dir), Path(ali_dir), Path(out_dir)
    t_start = time.time()
    data = DataDir.load(data_dir)
    lang = Lang.load(lang_dir)
    sil_phone = lang.silence_phones[0]
    trans = TransitionModel(lang.topo)
    tids = {u: t for u, t in read_alignments(ali_dir, "tid").items() if u in data.text}
    if not tids:
        raise AsrError(f"{ali_dir} has no alignment of an utterance in {data_dir}")
    stats = accumulate_tree_stats(feats, tids, trans, cfg.chunk_frames)
    tree = grow_tree(stats, lang, trans, cfg)

    # One Gaussian per leaf; a leaf no frame reached (an unseen phone) gets the global Gaussian.
    mean, var, num_frames = global_stats(feats, data.utts())
    var_floor = cfg.var_floor * var
    leaf = leaf_statistics(tree, stats)
    D = stats.sum.shape[1]
    n = np.maximum(leaf[:, :1], 1e-10)
    means = np.where(leaf[:, :1] > 0, leaf[:, 1:1 + D] / n, mean)
    variances = np.where(leaf[:, :1] > 0, np.maximum(leaf[:, 1 + D:] / n - means**2, var_floor), var)
    gmm = DiagGmmSet(means[:, None, :], variances[:, None, :], np.zeros((tree.num_pdfs, 1)))
    all_tids = np.concatenate(list(tids.values()))
    trans.update(np.bincount(all_tids, minlength=trans.num_tids).astype(np.float64))
    # The old alignment mapped through the tree (Kaldi's convert-ali) until the first realignment.
    frame_pdfs = {}
    for u, t in tids.items():
        uniq, inverse = np.unique(frame_keys(t, trans), axis=0, return_inverse=True)
        frame_pdfs[u] = np.array([tree.pdf_of(*map(int, k)) for k in uniq], dtype=np.int64)[inverse.reshape(-1)]

    model = GmmHmm(lang.phones, lang.words, lang.lexicon, trans, tree, gmm, read_feature_config(data_dir), pipeline,
                   sil_phone, DecoderConfig(acoustic_scale=cfg.acoustic_scale, transition_scale=cfg.transition_scale))
    graphs = build_align_graphs({u: data.text[u] for u in data.utts()}, lang.lexicon, lang.phones, trans, tree,
                                sil_phone, cfg.sil_prob, cfg.nj)
    aligner = Aligner(model, feats, graphs, cfg.acoustic_scale, cfg.transition_scale, cfg.boost_silence, cfg.nj,
                      cfg.device)
    fingerprint = {"data": str(data_dir.resolve()), "ali": str(ali_dir.resolve()), "frames": num_frames,
                   "tree": json.dumps(tree.to_dict()), "pipeline": json.dumps(pipeline.to_dict())}
    history = run_em(model, aligner, feats, frame_pdfs, cfg, var_floor, out_dir, fingerprint, name, updater)
    finish_training(model, aligner, data.text, out_dir, history, {
        "train_data": str(data_dir), "ali": str(ali_dir), "train_seconds": round(time.time() - t_start, 1),
        "num_pdfs": tree.num_pdfs, "num_leaves_requested": cfg.num_leaves, "gaussians": model.gmm.total_gaussians(),
        "contexts_seen": int(len(stats.keys)), "config": dataclasses.asdict(cfg), **(info or {})}, before_save)
    write_text_atomic(out_dir / "tree_info.json", json.dumps({
        "leaves": tree.num_pdfs, "questions": len(tree.questions),
        "initial_leaf_frames": {"min": int(leaf[:, 0].min()), "median": float(np.median(leaf[:, 0])),
                                "max": int(leaf[:, 0].max())}}, indent=1) + "\n")
    log.info("%s: %d leaves (asked %d), %d Gaussians, trained in %.1f s; model in %s", name, tree.num_pdfs, cfg.num_leaves,
             model.gmm.total_gaussians(), time.time() - t_start, out_dir)
    return model
