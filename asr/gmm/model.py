"""A GMM-HMM acoustic model and its self-contained model directory.

Model dir layout (what ``asr decode`` loads, nothing else needed):
    model.json     type, feature config + pipeline, topology, context, decoder defaults
    model.npz      GMM parameters and transition log-probabilities
    phones.txt, words.txt, lexicon.txt
    graph.npz      the compiled decoding graph (``asr mkgraph``)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from asr.decode.viterbi import DecoderConfig
from asr.features import FeatureConfig, FeaturePipeline
from asr.gmm.diag_gmm import DiagGmmSet
from asr.hmm.context import load_context
from asr.hmm.topology import Topology, TransitionModel
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.utils import AsrError, atomic_path, write_text_atomic


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

    def save(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(model_dir / "model.npz") as tmp:
            np.savez(tmp, trans_log_probs=self.trans.log_probs, **self.gmm.to_arrays())
        self.phones.write(model_dir / "phones.txt")
        self.words.write(model_dir / "words.txt")
        self.lexicon.write(model_dir / "lexicon.txt")
        meta = {
            "type": self.kind, "feature": self.feature.to_dict(), "pipeline": self.pipeline.to_dict(),
            "topology": self.trans.topo.to_dict(), "context": self.ctx.to_dict(),
            "silence_phone": self.silence_phone, "decoder": self.decoder.to_dict(), "info": self.info,
        }
        write_text_atomic(model_dir / "model.json", json.dumps(meta, indent=1) + "\n")

    @classmethod
    def load(cls, model_dir: str | Path) -> "GmmHmm":
        model_dir = Path(model_dir)
        if not (model_dir / "model.json").exists():
            raise AsrError(f"{model_dir} is not a model dir (no model.json)")
        meta = json.loads((model_dir / "model.json").read_text())
        if meta.get("type") != cls.kind:
            raise AsrError(f"{model_dir} holds a {meta.get('type')!r} model, not a GMM")
        with np.load(model_dir / "model.npz") as z:
            arrays = {k: z[k] for k in z.files}
        topo = Topology.from_dict(meta["topology"])
        return cls(
            phones=SymbolTable.read(model_dir / "phones.txt"), words=SymbolTable.read(model_dir / "words.txt"),
            lexicon=Lexicon.read(model_dir / "lexicon.txt"),
            trans=TransitionModel(topo, arrays["trans_log_probs"]),
            ctx=load_context(meta["context"], topo), gmm=DiagGmmSet.from_arrays(arrays),
            feature=FeatureConfig.from_dict(meta["feature"]), pipeline=FeaturePipeline.from_dict(meta["pipeline"]),
            silence_phone=meta.get("silence_phone", "SIL"), decoder=DecoderConfig.from_dict(meta.get("decoder", {})),
            info=meta.get("info", {}))


def copy_lang_files(lang_dir: Path, model_dir: Path) -> None:
    for name in ("phones.txt", "words.txt", "lexicon.txt"):
        shutil.copyfile(lang_dir / name, model_dir / name)
