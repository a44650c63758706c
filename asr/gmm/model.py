"""A GMM-HMM acoustic model and its self-contained model directory.

Model dir layout (what ``asr decode`` loads, nothing else needed):
    model.json     type, feature config + pipeline, topology, context, decoder defaults
    model.npz      GMM parameters and transition log-probabilities (a SAT system also holds
                   its speaker-independent first-pass model, ``si_*`` arrays)
    phones.txt, words.txt, lexicon.txt
    graph.npz      the compiled decoding graph (``asr mkgraph``)
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
    # SAT: the model of the speaker-independent first pass (Kaldi's final.alimdl); with it,
    # ``gmm`` expects per-speaker fMLLR-adapted features (see :meth:`adapt`).
    si_gmm: DiagGmmSet | None = None

    kind = "gmm"

    @property
    def speaker_adaptive(self) -> bool:
        return self.si_gmm is not None

    def first_pass(self) -> "GmmHmm":
        """The speaker-independent model that decodes or aligns before adaptation."""
        if self.si_gmm is None:
            return self
        return dataclasses.replace(self, gmm=self.si_gmm, si_gmm=None)

    def adapt(self, feats: dict[str, np.ndarray], frame_pdfs: dict[str, np.ndarray],
              utt2spk: dict[str, str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per-speaker fMLLR (Kaldi's decode_fmllr.sh second pass).

        Args:
            feats: utt -> (T, D) speaker-independent features.
            frame_pdfs: utt -> (T,) pdfs of a first-pass alignment or best path.
            utt2spk: utt -> speaker (one file decoded alone is its own speaker).
        Returns:
            utt -> (T, D) adapted features, and speaker -> (D, D+1) transform.
        """
        from asr.gmm.fmllr import adapt_speakers

        opts = self.info.get("fmllr", {})
        return adapt_speakers(self.gmm, feats, frame_pdfs, utt2spk, set(opts.get("silence_pdfs", [])),
                              opts.get("silence_weight", 0.0), opts.get("num_iters", 10), opts.get("min_count", 50.0))

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """(T, num_pdfs) log-likelihoods of (T, D) pipeline-transformed features."""
        return self.gmm.log_likelihoods(feats)

    def pdf_scores(self, feats: np.ndarray, pdfs: np.ndarray, device=None) -> np.ndarray:
        """(T, len(pdfs)) float32 log-likelihoods of some pdfs only (alignment needs few of them);
        with a torch ``device`` (a GPU) computed there by :class:`~asr.gmm.torch_gmm.TorchGmm`."""
        if device is not None:
            import torch

            ll = self.gmm.on_device(device).log_likelihoods(feats)[:, torch.as_tensor(pdfs, device=device)]
            return ll.cpu().numpy()
        return self.gmm.log_likelihoods(feats, pdfs)

    def save(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        ensure_dir(model_dir)
        si = {} if self.si_gmm is None else {f"si_{k}": v for k, v in self.si_gmm.to_arrays().items()}
        with atomic_path(model_dir / "model.npz") as tmp:
            np.savez(tmp, trans_log_probs=self.trans.log_probs, **self.gmm.to_arrays(), **si)
        write_hmm_side(model_dir, self, {})

    @classmethod
    def load(cls, model_dir: str | Path) -> "GmmHmm":
        model_dir = Path(model_dir)
        meta = read_meta(model_dir, cls.kind)
        with np.load(model_dir / "model.npz") as z:
            arrays = {k: z[k] for k in z.files}
        si = {k[3:]: v for k, v in arrays.items() if k.startswith("si_")}
        return cls(gmm=DiagGmmSet.from_arrays(arrays), si_gmm=DiagGmmSet.from_arrays(si) if si else None,
                   **read_hmm_side(model_dir, meta, arrays["trans_log_probs"]))


def copy_lang_files(lang_dir: Path, model_dir: Path) -> None:
    for name in ("phones.txt", "words.txt", "lexicon.txt"):
        shutil.copyfile(lang_dir / name, model_dir / name)
