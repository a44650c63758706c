"""tri2: triphones on LDA+MLLT features (Kaldi's steps/train_lda_mllt.sh).

1. CMVN'd MFCCs spliced +-``splice_context`` frames, projected by LDA to ``lda_dim``
   dimensions; the classes are the pdfs of the previous system's alignment, silence left
   out (Kaldi's ``weight-silence-post 0``).
2. A new tree and model on the projected features, trained by Viterbi EM as tri1 is.
3. On ``mllt_iters`` an MLLT matrix is estimated from full-covariance statistics of the
   current Gaussians (silence left out), the features and the model are moved into its
   space, and the model's projection becomes MLLT x LDA (Kaldi's ``compose-transforms``).
The projection is part of the model's feature pipeline, so aligning and decoding apply it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asr.features import FeaturePipeline, load_features
from asr.gmm.lda_mllt import accumulate_full_cov, estimate_lda, estimate_mllt, transform_gmm
from asr.gmm.model import GmmHmm
from asr.gmm.train_tri import TriConfig, train_tied
from asr.hmm.alignments import read_alignments
from asr.hmm.topology import TransitionModel
from asr.lang.prepare import Lang
from asr.tree.questions import phone_groups
from asr.utils import AsrError


@dataclass
class LdaMlltConfig(TriConfig):
    """Options of LDA+MLLT training (Kaldi train_lda_mllt.sh defaults; leaves/Gaussians per recipe)."""

    num_leaves: int = 2500
    total_gauss: int = 15000
    splice_context: int = 4  # frames each side spliced before LDA
    lda_dim: int = 40
    mllt_iters: list[int] = field(default_factory=lambda: [2, 4, 6, 12])
    mllt_update_iters: int = 10  # passes over the rows per MLLT estimate


def silence_ids(lang: Lang) -> set[int]:
    """Phone ids (all position variants) of the lang's silence phones."""
    groups = phone_groups(lang.phones)
    return {i for p in lang.silence_phones for i in groups.get(p, [])}


def silence_pdfs(model: GmmHmm, sil_phones: set[int]) -> set[int]:
    """Pdfs of the silence phones' states (silence is never split by context)."""
    return {int(model.ctx.pdf_of(p, p, p, s)) for p in sil_phones for s in range(model.trans.phone_num_states[p])}


class MlltUpdater:
    """Re-estimates MLLT on the configured iterations (an :class:`~asr.gmm.em.FeatureUpdater`)."""

    def __init__(self, feats: dict[str, np.ndarray], lda: np.ndarray, pipeline: FeaturePipeline, cfg: LdaMlltConfig,
                 sil_phones: set[int]):
        self.feats, self.lda, self.base, self.cfg, self.sil_phones = feats, lda, pipeline, cfg, sil_phones
        # The LDA-projected frames; the training features are always these times the current
        # MLLT product, so a resumed run computes exactly the frames of an uninterrupted one.
        self.lda_feats = dict(feats)
        self.mllt = np.eye(lda.shape[0])

    def _apply(self, model: GmmHmm) -> None:
        m = self.mllt.T.astype(np.float32)
        for u, f in self.lda_feats.items():
            self.feats[u] = f @ m
        model.pipeline = dataclasses.replace(self.base, projection=(self.mllt @ self.lda).tolist())

    def update(self, it: int, model: GmmHmm, frame_pdfs: dict[str, np.ndarray]) -> bool:
        if it not in self.cfg.mllt_iters:
            return False
        utts = sorted(frame_pdfs)
        x = np.concatenate([self.feats[u] for u in utts])
        ids = np.concatenate([frame_pdfs[u] for u in utts])
        ids = np.where(np.isin(ids, sorted(silence_pdfs(model, self.sil_phones))), -1, ids)
        stats = accumulate_full_cov(model.gmm, x, ids)
        A = estimate_mllt(stats, self.cfg.mllt_update_iters)
        transform_gmm(model.gmm, A, stats)
        self.mllt = A @ self.mllt
        self._apply(model)
        return True

    def state(self) -> dict[str, np.ndarray]:
        return {"mllt": self.mllt}

    def restore(self, state: dict[str, np.ndarray], model: GmmHmm) -> None:
        self.mllt = np.asarray(state["mllt"], dtype=np.float64)
        self._apply(model)


def train_lda_mllt(data_dir: str | Path, lang_dir: str | Path, ali_dir: str | Path, out_dir: str | Path,
                   cfg: LdaMlltConfig | None = None) -> GmmHmm:
    """Train tri2 from a previous system's alignment; writes the model dir (its pipeline holds
    the LDA+MLLT projection), training log, tree and alignments."""
    cfg = cfg or LdaMlltConfig()
    if cfg.chunk_frames > 0:
        raise AsrError("chunk_frames: the features of this system change during EM and are held in memory; "
                       "streaming from the archive is for mono and tri1 (delta features)")
    lang = Lang.load(lang_dir)
    trans = TransitionModel(lang.topo)
    spliced = FeaturePipeline(cmvn=True, norm_vars=cfg.norm_vars, cmvn_window=cfg.cmvn_window,
                              delta_order=0, splice=cfg.splice_context)
    feats = load_features(data_dir, spliced)
    pdfs, tids = read_alignments(ali_dir, "pdf"), read_alignments(ali_dir, "tid")
    utts = sorted(u for u in pdfs if u in feats)
    if not utts:
        raise AsrError(f"{ali_dir} has no alignment of an utterance in {data_dir}")
    sil = np.array(sorted(silence_ids(lang)), dtype=np.int64)
    classes = []
    for u in utts:
        if len(pdfs[u]) != len(feats[u]):
            raise AsrError(f"{ali_dir}: utterance {u} has {len(pdfs[u])} aligned frames, {len(feats[u])} feature frames")
        phones = trans.tstate_phone[trans.tid_tstate[tids[u]]]
        classes.append(np.where(np.isin(phones, sil), -1, pdfs[u]))
    lda = estimate_lda(np.concatenate([feats[u] for u in utts]), np.concatenate(classes), cfg.lda_dim)
    lda32 = lda.T.astype(np.float32)
    for u in feats:
        feats[u] = feats[u] @ lda32
    pipeline = dataclasses.replace(spliced, projection=lda.tolist())
    return train_tied(data_dir, lang_dir, ali_dir, out_dir, cfg, feats, pipeline, name="tri2",
                      updater=MlltUpdater(feats, lda, pipeline, cfg, set(sil.tolist())),
                      info={"lda_dim": cfg.lda_dim, "splice_context": cfg.splice_context})
