"""tri3: speaker-adaptive training with per-speaker fMLLR (Kaldi's steps/train_sat.sh).

1. The previous system (tri2, LDA+MLLT) and its alignment give each training speaker a
   first fMLLR transform of the LDA+MLLT features (silence weighted ``silence_weight``).
2. A new tree and model on the adapted features, trained by Viterbi EM; on ``fmllr_iters``
   every speaker's transform is re-estimated with the current model and alignment.
3. The speaker-independent model for the first decoding pass (Kaldi's final.alimdl): the
   final model's frame posteriors on the adapted features, statistics gathered on the
   unadapted ones.
The training speakers' transforms are saved in ``fmllr_train.npz``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asr.datadir import DataDir
from asr.features import load_features
from asr.gmm.em import global_stats
from asr.gmm.fmllr import adapt_speakers, apply_fmllr
from asr.hmm.alignments import save_transforms
from asr.gmm.model import GmmHmm
from asr.gmm.train_lda_mllt import silence_ids, silence_pdfs
from asr.gmm.train_tri import TriConfig, train_tied
from asr.hmm.alignments import read_alignments
from asr.lang.prepare import Lang
from asr.utils import AsrError

log = logging.getLogger(__name__)


@dataclass
class SatConfig(TriConfig):
    """Options of SAT training (Kaldi train_sat.sh defaults; leaves/Gaussians per recipe)."""

    num_leaves: int = 2500
    total_gauss: int = 15000
    fmllr_iters: list[int] = field(default_factory=lambda: [2, 4, 6, 12])
    fmllr_update_iters: int = 10  # passes over the rows per estimate
    fmllr_min_count: float = 50.0  # a speaker with fewer (weighted) frames keeps the identity
    silence_weight: float = 0.0


class FmllrUpdater:
    """Re-estimates every speaker's fMLLR on the configured iterations (a FeatureUpdater)."""

    def __init__(self, si_feats: dict[str, np.ndarray], feats: dict[str, np.ndarray], utt2spk: dict[str, str],
                 transforms: dict[str, np.ndarray], cfg: SatConfig, sil_phones: set[int]):
        self.si_feats, self.feats, self.utt2spk, self.transforms, self.cfg = si_feats, feats, utt2spk, transforms, cfg
        self.sil_phones = sil_phones

    def update(self, it: int, model: GmmHmm, frame_pdfs: dict[str, np.ndarray]) -> bool:
        if it not in self.cfg.fmllr_iters:
            return False
        adapted, self.transforms = adapt_speakers(
            model.gmm, self.si_feats, frame_pdfs, self.utt2spk, silence_pdfs(model, self.sil_phones),
            self.cfg.silence_weight,
            self.cfg.fmllr_update_iters, self.cfg.fmllr_min_count, init=self.transforms)
        self.feats.update(adapted)
        return True

    def state(self) -> dict[str, np.ndarray]:
        spks = sorted(self.transforms)
        return {"speakers": np.array(spks), "transforms": np.stack([self.transforms[s] for s in spks])}

    def restore(self, state: dict[str, np.ndarray], model: GmmHmm) -> None:
        self.transforms = {str(s): state["transforms"][i] for i, s in enumerate(state["speakers"])}
        for u in self.feats:
            self.feats[u] = apply_fmllr(self.si_feats[u], self.transforms[self.utt2spk[u]])


def train_sat(data_dir: str | Path, lang_dir: str | Path, ali_dir: str | Path, prev_dir: str | Path,
              out_dir: str | Path, cfg: SatConfig | None = None) -> GmmHmm:
    """Train tri3 from a previous system (``prev_dir``, e.g. tri2) and its alignment of the
    training data; writes the model dir (SAT and first-pass models), log, tree, alignments
    and the training speakers' transforms."""
    cfg = cfg or SatConfig()
    if cfg.chunk_frames > 0:
        raise AsrError("chunk_frames: the features of this system change during EM and are held in memory; "
                       "streaming from the archive is for mono and tri1 (delta features)")
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    prev = GmmHmm.load(prev_dir)
    if prev.speaker_adaptive:
        raise AsrError(f"{prev_dir} is already a SAT system; train SAT from a speaker-independent one (tri2)")
    data = DataDir.load(data_dir)
    lang = Lang.load(lang_dir)
    sil_phones = silence_ids(lang)
    si_feats = load_features(data_dir, prev.pipeline)
    pdfs = {u: p for u, p in read_alignments(ali_dir, "pdf").items() if u in si_feats}
    if not pdfs:
        raise AsrError(f"{ali_dir} has no alignment of an utterance in {data_dir}")
    for u, p in pdfs.items():
        if len(p) != len(si_feats[u]) or p.max() >= prev.gmm.num_pdfs:
            raise AsrError(f"{ali_dir}: the alignment of {u} does not fit {prev_dir} and {data_dir}")
    feats, transforms = adapt_speakers(prev.gmm, si_feats, pdfs, data.utt2spk, silence_pdfs(prev, sil_phones),
                                       cfg.silence_weight, cfg.fmllr_update_iters, cfg.fmllr_min_count)
    log.info("tri3: first fMLLR transforms of %d speakers from %s", len(transforms), prev_dir)
    updater = FmllrUpdater(si_feats, feats, data.utt2spk, transforms, cfg, sil_phones)

    def add_first_pass_model(model: GmmHmm, final: dict[str, np.ndarray]) -> None:
        """The first-pass model: the SAT model's posteriors on adapted features under the final
        alignment, statistics of the unadapted ones (one ML update of a copy, as Kaldi's
        gmm-acc-stats-twofeats + gmm-est)."""
        utts = sorted(final)
        si_gmm = copy.deepcopy(model.gmm)
        stats = model.gmm.accumulate(np.concatenate([feats[u] for u in utts]), np.concatenate([final[u] for u in utts]),
                                     stats_feats=np.concatenate([si_feats[u] for u in utts]), nj=cfg.nj)
        si_gmm.update(stats, cfg.var_floor * global_stats(si_feats, utts)[1], cfg.min_gauss_occ)
        model.si_gmm = si_gmm
        model.info["fmllr"] = {"silence_pdfs": sorted(silence_pdfs(model, sil_phones)),
                               "silence_weight": cfg.silence_weight, "num_iters": cfg.fmllr_update_iters,
                               "min_count": cfg.fmllr_min_count}
        save_transforms(out_dir / "fmllr_train.npz", updater.transforms)

    return train_tied(data_dir, lang_dir, ali_dir, out_dir, cfg, feats, prev.pipeline, name="tri3",
                      updater=updater, before_save=add_first_pass_model)
