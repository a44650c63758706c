"""Recurrent layers for the CTC model and the recurrent (LSTM-HMM) hybrid.

Cells (``cell``):
- ``elman``: h_t = tanh(W x_t + U h_{t-1} + b), the simple recurrent network;
- ``irnn``: the same with ReLU and U initialised to the identity, biases 0, W ~ N(0, 0.001^2)
  (Le, Jaitly & Hinton 2015): gradients neither vanish nor explode at the start;
- ``gru`` (Cho et al. 2014); ``lstm`` (Hochreiter & Schmidhuber 1997; forget-gate bias 1,
  Jozefowicz et al. 2015), optionally with a projection (LSTMP, Sak et al. 2014).

A stack is ``num_layers`` single-layer modules (each bidirectional when asked) with dropout
between layers. Dropout masks are drawn per time step, or with ``variational`` once per
sequence and shared by all its time steps (Gal & Ghahramani 2016 on the non-recurrent
connections: a frame's neighbours lose the same units, so the recurrence cannot average
the noise away). torch's fused kernels are kept, so the recurrent connections themselves
are not dropped.

:class:`RecurrentAcousticNet` is the hybrid: (N, T, D) frames (optionally spliced +-context)
-> stack -> (N, T, num_pdfs) logits, trained with cross-entropy on the tied-state alignment
and decoded through the GMM's graph like any hybrid network.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.nnet.net_config import CELLS  # noqa: F401 (re-exported)
from asr.utils import AsrError


def recurrent_layer(cell: str, input_dim: int, hidden_dim: int, bidirectional: bool, projection: int = 0) -> nn.Module:
    """One torch recurrent layer of ``cell``, initialised as the cell's paper says."""
    if projection and cell != "lstm":
        raise AsrError("a projection is only defined for LSTM cells")
    kw = {"batch_first": True, "bidirectional": bidirectional}
    if cell == "lstm":
        layer = nn.LSTM(input_dim, hidden_dim, proj_size=projection, **kw)
        with torch.no_grad():
            for name, p in layer.named_parameters():  # gates (input, forget, cell, output)
                if name.startswith("bias_ih"):
                    p[hidden_dim:2 * hidden_dim].fill_(1.0)
                elif name.startswith("bias_hh"):
                    p[hidden_dim:2 * hidden_dim].zero_()
    elif cell == "gru":
        layer = nn.GRU(input_dim, hidden_dim, **kw)
    elif cell in ("elman", "irnn"):
        layer = nn.RNN(input_dim, hidden_dim, nonlinearity="tanh" if cell == "elman" else "relu", **kw)
        if cell == "irnn":
            with torch.no_grad():
                for name, p in layer.named_parameters():
                    if name.startswith("weight_hh"):
                        p.copy_(torch.eye(hidden_dim))
                    elif name.startswith("weight_ih"):
                        p.normal_(0.0, 0.001)
                    else:
                        p.zero_()
    else:
        raise AsrError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    return layer


class RecurrentStack(nn.Module):
    """(N, T, F) padded batch -> (N, T, out_dim), layer by layer with dropout in between."""

    def __init__(self, input_dim: int, hidden_dim: int, num_layers: int, cell: str = "lstm",
                 bidirectional: bool = True, dropout: float = 0.0, variational: bool = False, projection: int = 0):
        super().__init__()
        self.cell, self.hidden_dim, self.dropout, self.variational = cell, hidden_dim, dropout, variational
        per_direction = projection or hidden_dim
        self.out_dim = per_direction * (2 if bidirectional else 1)
        dims = [input_dim] + [self.out_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(recurrent_layer(cell, d, hidden_dim, bidirectional, projection) for d in dims)

    def drop(self, x: torch.Tensor) -> torch.Tensor:
        """Inverted dropout; ``variational``: one (N, 1, F) mask per sequence."""
        if not self.training or self.dropout <= 0:
            return x
        if not self.variational:
            return nn.functional.dropout(x, self.dropout, True)
        keep = torch.empty(x.shape[0], 1, x.shape[2], device=x.device, dtype=x.dtype).bernoulli_(1 - self.dropout)
        return x * keep / (1 - self.dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        for i, layer in enumerate(self.layers):
            if i:
                x = self.drop(x)
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            h, _ = layer(packed)
            x, _ = pad_packed_sequence(h, batch_first=True, total_length=T)
        return x

    def forget_gate_bias(self) -> list[torch.Tensor]:
        """Effective forget-gate bias (b_ih + b_hh) of every LSTM layer and direction."""
        H, out = self.hidden_dim, []
        for layer in self.layers:
            p = dict(layer.named_parameters())
            out += [p[n][H:2 * H] + p[n.replace("bias_ih", "bias_hh")][H:2 * H] for n in p if n.startswith("bias_ih")]
        return out


def padded_batches(feats: dict[str, np.ndarray], max_frames: int = 20000):
    """Utterances for inference in padded batches of similar length: yields ``(utts, x, lengths)``,
    x (N, T, D) float32 zero-padded and N * T <= ``max_frames`` (one longer utterance alone).
    A recurrent network's time steps run one after another, so a batch of N costs about what
    one utterance does."""
    order = sorted(feats, key=lambda u: -len(feats[u]))
    i = 0
    while i < len(order):
        T = len(feats[order[i]])
        n = max(1, min(len(order) - i, max_frames // max(T, 1)))
        utts = order[i:i + n]
        D = feats[utts[0]].shape[-1]
        x = np.zeros((n, T, D), dtype=np.float32)
        for k, u in enumerate(utts):
            if feats[u].ndim != 2 or feats[u].shape[1] != D:
                raise AsrError(f"{u}: features of shape {feats[u].shape}, the others have dimension {D}")
            x[k, :len(feats[u])] = feats[u]
        yield utts, torch.from_numpy(x), torch.tensor([len(feats[u]) for u in utts])
        i += n


def splice_batch(x: torch.Tensor, lengths: torch.Tensor, context: int) -> torch.Tensor:
    """(N, T, D) -> (N, T, (2k+1)D): each frame with its +-k neighbours, edge frames repeated
    within each utterance's own length (as :func:`asr.nnet.frames.splice`)."""
    if context == 0:
        return x
    N, T, D = x.shape
    t = torch.arange(T, device=x.device)
    offsets = torch.arange(-context, context + 1, device=x.device)
    last = (lengths.to(x.device) - 1).clamp(min=0)[:, None, None]
    idx = torch.minimum((t[None, :, None] + offsets[None, None, :]).clamp(min=0), last)  # (N, T, 2k+1)
    gathered = torch.gather(x, 1, idx.reshape(N, -1, 1).expand(N, idx.shape[1] * idx.shape[2], D))
    return gathered.reshape(N, T, -1)


class RecurrentAcousticNet(nn.Module):
    """The recurrent hybrid: (N, T, D) utterances -> (N, T, num_pdfs) logits."""

    sequence = True  # scores whole utterances

    def __init__(self, cfg, input_dim: int, num_pdfs: int):
        super().__init__()
        self.cfg, self.input_dim, self.num_pdfs = cfg, input_dim, num_pdfs
        self.rnn = RecurrentStack(input_dim * (2 * cfg.context + 1), cfg.hidden_dim, cfg.num_layers, cfg.cell,
                                  cfg.bidirectional, cfg.dropout, cfg.variational_dropout)
        self.output = nn.Linear(self.rnn.out_dim, num_pdfs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_dim:
            raise AsrError(f"features have dimension {x.shape[-1]}, the network expects {self.input_dim}")
        h = self.rnn(splice_batch(x, lengths, self.cfg.context), lengths)
        return self.output(self.rnn.drop(h))
