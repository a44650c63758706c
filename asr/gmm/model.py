"""A GMM-HMM acoustic model and its self-contained model directory.

Model dir layout (what ``asr decode`` loads, nothing else needed):
    model.json     type, feature config + pipeline, topology, context, decoder defaults
    model.npz      GMM parameters and transition log-probabilities
    phones.txt, words.txt, lexicon.txt
    graph.npz      the compiled decoding graph (``asr mkgraph``)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from asr.decode.config import DecoderConfig
from asr.features import FeatureConfig, FeaturePipeline
from asr.gmm.diag_gmm import DiagGmmSet
from asr.hmm.topology import TransitionModel
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.model_dir import read_hmm_side, read_meta, write_hmm_side
from asr.utils import atomic_path, ensure_dir


@dataclass
class GmmHmm:
    """Everything a GMM-HMM system needs to align and decode."""

    phones: SymbolTable
    words: SymbolTable
    lexicon: Lexicon
    trans: TransitionModel
    ctx: object
    gmm: DiagGmmSet
    feature: FeatureConfig
    pipeline: FeaturePipeline
    silence_phone: str = "SIL"
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    info: dict = field(default_factory=dict)

    kind = "gmm"

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """(T, num_pdfs) log-likelihoods of (T, D) pipeline-transformed features."""
        with torch.no_grad():
            return self.gmm.log_likelihoods(feats).numpy()

    def pdf_scores(self, feats: np.ndarray, pdfs: np.ndarray) -> torch.Tensor:
        """(T, len(pdfs)) log-likelihoods of some pdfs only (alignment needs few of them)."""
        return self.gmm.log_likelihoods(feats, pdfs)

    def save(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        ensure_dir(model_dir)
        with atomic_path(model_dir / "model.npz") as tmp:
            np.savez(tmp, trans_log_probs=self.trans.log_probs, **self.gmm.to_arrays())
        write_hmm_side(model_dir, self, {})

    @classmethod
    def load(cls, model_dir: str | Path) -> "GmmHmm":
        model_dir = Path(model_dir)
        meta = read_meta(model_dir, cls.kind)
        with np.load(model_dir / "model.npz") as z:
            arrays = {k: z[k] for k in z.files}
        return cls(gmm=DiagGmmSet.from_arrays(arrays), **read_hmm_side(model_dir, meta, arrays["trans_log_probs"]))


def copy_lang_files(lang_dir: Path, model_dir: Path) -> None:
    for name in ("phones.txt", "words.txt", "lexicon.txt"):
        shutil.copyfile(lang_dir / name, model_dir / name)
