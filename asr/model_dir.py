"""What every model dir shares: the HMM side (lexicon, topology, tree, features, decoder).

A GMM-HMM and a hybrid DNN-HMM differ only in their acoustic scorer; the tables, the
transition model, the context dependency, the feature pipeline and the decoder defaults
are written and read here once for both.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from asr.decode.config import DecoderConfig
from asr.features import FeatureConfig, FeaturePipeline
from asr.hmm.context import load_context
from asr.hmm.topology import Topology, TransitionModel
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.utils import AsrError, ensure_dir, one_line, read_json, write_text_atomic


# The files that make a model what it is. Their hash is the model's fingerprint: a graph
# (or anything else derived from the model) records it, and a mismatch means the model was
# retrained or replaced after the derived file was made.
MODEL_FILES = ("model.json", "model.npz", "nnet.pt", "phones.txt", "words.txt", "lexicon.txt", "tokens.txt")


def fingerprint(model_dir: str | Path) -> str:
    """SHA-256 (hex, first 16 digits) over the MODEL_FILES present in ``model_dir``."""
    model_dir = Path(model_dir)
    h = hashlib.sha256()
    for name in MODEL_FILES:
        path = model_dir / name
        if path.is_file():
            h.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


def write_hmm_side(model_dir: Path, model, extra: dict) -> None:
    """phones.txt, words.txt, lexicon.txt and model.json (shared fields + ``extra``)."""
    model.phones.write(model_dir / "phones.txt")
    model.words.write(model_dir / "words.txt")
    model.lexicon.write(model_dir / "lexicon.txt")
    meta = {"type": model.kind, "feature": model.feature.to_dict(), "pipeline": model.pipeline.to_dict(),
            "topology": model.trans.topo.to_dict(), "context": model.ctx.to_dict(),
            "silence_phone": model.silence_phone, "decoder": model.decoder.to_dict(), "info": model.info, **extra}
    write_text_atomic(model_dir / "model.json", json.dumps(meta, indent=1) + "\n")


def write_network(model_dir: Path, net, **arrays: np.ndarray) -> None:
    """nnet.pt (the network's weights, on CPU) and model.npz (``arrays``) of a network model dir."""
    import torch

    from asr.utils import atomic_path

    ensure_dir(model_dir)
    with atomic_path(model_dir / "nnet.pt") as tmp:
        torch.save({k: v.cpu() for k, v in net.state_dict().items()}, tmp)
    with atomic_path(model_dir / "model.npz") as tmp:
        np.savez(tmp, **arrays)


def read_network(model_dir: Path, net, device: str = "cpu"):
    """Load nnet.pt into ``net`` (built from model.json), move it to ``device``, eval mode; returns it."""
    import torch

    path = model_dir / "nnet.pt"
    if not path.is_file():
        raise AsrError(f"{model_dir}: missing nnet.pt (the network's weights)")
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # truncated file, foreign pickle, other architecture
        raise AsrError(f"{path}: cannot load the network weights ({one_line(e)})") from None
    return net.to(device).eval()


def read_meta(model_dir: Path, kind: str | None = None) -> dict:
    """model.json of a model dir (that must hold a ``kind`` model, when given)."""
    if not (model_dir / "model.json").exists():
        raise AsrError(f"{model_dir} is not a model dir (no model.json)")
    meta = read_json(model_dir / "model.json")
    if kind is not None and meta.get("type") != kind:
        raise AsrError(f"{model_dir} holds a {meta.get('type')!r} model, not a {kind!r} one")
    return meta


def read_hmm_side(model_dir: Path, meta: dict, trans_log_probs: np.ndarray) -> dict:
    """The shared constructor arguments of a model class, read back."""
    topo = Topology.from_dict(meta["topology"])
    return {"phones": SymbolTable.read(model_dir / "phones.txt"), "words": SymbolTable.read(model_dir / "words.txt"),
            "lexicon": Lexicon.read(model_dir / "lexicon.txt"), "trans": TransitionModel(topo, trans_log_probs),
            "ctx": load_context(meta["context"], topo), "feature": FeatureConfig.from_dict(meta["feature"]),
            "pipeline": FeaturePipeline.from_dict(meta["pipeline"]), "silence_phone": meta.get("silence_phone", "SIL"),
            "decoder": DecoderConfig.from_dict(meta.get("decoder", {})), "info": meta.get("info", {})}
