"""Torch-free inference of the feed-forward hybrid DNN: decoding a DNN without importing torch.

Importing torch takes about 2 s on a laptop CPU, longer than decoding AN4's test set with
the network. A feed-forward network (``NetConfig.kind == "dnn"``: affine -> [batch norm]
-> activation -> [dropout] per hidden layer, then the output affine) in inference mode is
a few matmuls, so :class:`NumpyDnn` computes it in numpy from the model dir's own
``nnet.pt``, read by :func:`read_state_dict` without torch. Batch norm (running
statistics) is folded into the affine layer before it; dropout is the identity. TDNN,
CNN and recurrent networks, GPU devices and Monte-Carlo dropout keep the torch network.

``nnet.pt`` is torch's zip format: ``data.pkl``, a pickle of the state dict whose tensors
point at raw little-endian storages ``data/<key>`` in the same zip. The unpickler below
builds only dicts and numpy arrays: any other class in the pickle is an error, so reading
it runs no code from the file.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

from asr.utils import AsrError, one_line

# torch storage classes a state dict of ours holds -> numpy dtype
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "LongStorage": np.int64, "IntStorage": np.int32, "BoolStorage": np.bool_}
_EPS = 1e-5  # torch BatchNorm1d's default eps (the networks are built with it)


class _StorageType:
    """What the pickle's ``torch.FloatStorage`` (etc.) stands for: the storage's dtype."""

    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_ignored) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2, as a contiguous numpy copy of the storage's elements."""
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * storage.dtype.itemsize for s in stride))
    return np.array(view, dtype=storage.dtype.newbyteorder("="), order="C")  # (0-d stays 0-d)


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a state dict into numpy arrays; refuses every other class."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a plain tensor state dict")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        raw = self.archive.read(f"{self.prefix}/data/{key}")
        return np.frombuffer(raw, dtype=storage_type.dtype, count=int(numel))


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a torch.save'd state dict (``nnet.pt``) as numpy arrays, without torch."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl")]
            if len(pkl) != 1:
                raise ValueError("no data.pkl: not torch's zip format")
            prefix = pkl[0][: -len("/data.pkl")]
            with z.open(pkl[0]) as f:
                state = _StateDictUnpickler(f, z, prefix).load()
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise AsrError(f"{path}: cannot read the network weights ({one_line(e)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise AsrError(f"{path}: not a state dict of tensors")
    return dict(state)


class NumpyDnn:
    """Inference-mode forward of a feed-forward :class:`~asr.nnet.network.AcousticNet` (kind
    "dnn") in float32 numpy: (B, (2k+1)D) windows -> (B, num_pdfs) logits."""

    sequence = False  # takes windows, not whole utterances

    def __init__(self, cfg, input_dim: int, num_pdfs: int, state: dict[str, np.ndarray]):
        if cfg.kind != "dnn":
            raise AsrError(f"the numpy forward computes feed-forward networks (kind dnn), not {cfg.kind!r}")
        self.cfg, self.input_dim, self.num_pdfs, self.state = cfg, input_dim, num_pdfs, state
        self.pieces = cfg.maxout_pieces if cfg.activation == "maxout" else 1
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []  # (in, out) weights, (out,) bias
        try:
            for i in range(cfg.num_layers):
                W = state[f"hidden.{i}.layer.weight"].astype(np.float64)
                b = state[f"hidden.{i}.layer.bias"].astype(np.float64)
                if cfg.batch_norm:  # y = (Wx + b - mean) * gamma / sqrt(var + eps) + beta
                    n = f"hidden.{i}.norm."
                    scale = state[n + "weight"] / np.sqrt(state[n + "running_var"].astype(np.float64) + _EPS)
                    W, b = W * scale[:, None], (b - state[n + "running_mean"]) * scale + state[n + "bias"]
                self.layers.append((np.ascontiguousarray(W.T, dtype=np.float32), b.astype(np.float32)))
            self.out_w = np.ascontiguousarray(state["output.weight"].T, dtype=np.float32)
            self.out_b = state["output.bias"].astype(np.float32)
        except KeyError as e:
            raise AsrError(f"the network weights lack {e} (not a {cfg.num_layers}-layer DNN)") from None
        if self.layers[0][0].shape[0] != input_dim * (2 * cfg.context + 1) or self.out_w.shape[1] != num_pdfs:
            raise AsrError("the network weights do not fit its model.json (input dimension or pdfs)")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        act = self.cfg.activation
        for W, b in self.layers:
            x = x @ W
            x += b
            if act == "relu":
                np.maximum(x, 0, out=x)
            elif act == "sigmoid":
                x = 1.0 / (1.0 + np.exp(-x))
            elif act == "tanh":
                np.tanh(x, out=x)
            else:  # maxout: each unit is the max of its pieces (consecutive outputs)
                x = x.reshape(x.shape[0], -1, self.pieces).max(axis=2)
        out = x @ self.out_w
        out += self.out_b
        return out


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of (B, P) logits."""
    top = x.max(axis=1, keepdims=True)
    shifted = x - top
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
