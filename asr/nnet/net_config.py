"""The hybrid network's shape (recipe ``[dnn]`` section), without torch: decoding a
feed-forward DNN (``asr.nnet.numpy_dnn``) reads it without importing torch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from asr.utils import AsrError, Config

ACTIVATION_NAMES = ("sigmoid", "tanh", "relu", "maxout")
INITS = ("lecun", "xavier", "xavier_normal", "he", "default")
KINDS = ("dnn", "tdnn", "cnn", "rnn")
CELLS = ("elman", "irnn", "gru", "lstm")  # recurrent cells (asr.nnet.recurrent)


@dataclass
class NetConfig(Config):
    """Network shape (recipe ``[dnn]`` section / ``--set``)."""

    kind: str = "dnn"  # dnn | tdnn | cnn | rnn (recurrent hybrid over whole utterances)
    num_layers: int = 4  # hidden affine / TDNN / recurrent layers (a CNN's after its convolutions)
    hidden_dim: int = 512
    activation: str = "relu"  # sigmoid | tanh | relu | maxout
    maxout_pieces: int = 2
    init: str = "he"  # lecun | xavier (uniform) | xavier_normal | he | default (torch's)
    batch_norm: bool = True
    dropout: float = 0.0  # drop probability (inverted dropout)
    context: int = 5  # frames either side
    tdnn_dilations: list[int] = field(default_factory=list)  # per layer; empty = derived from context
    cnn_channels: list[int] = field(default_factory=lambda: [64, 64])
    cnn_freq_kernels: list[int] = field(default_factory=lambda: [8, 4])
    cnn_time_kernel: int = 3
    cnn_pool: list[int] = field(default_factory=lambda: [3, 1])  # max-pooling over frequency after each conv
    cell: str = "lstm"  # rnn kind: elman | irnn | gru | lstm
    bidirectional: bool = True
    variational_dropout: bool = False  # rnn kind: one dropout mask per sequence, shared over time

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AsrError(f"network kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.activation not in ACTIVATION_NAMES:
            raise AsrError(f"activation must be one of {', '.join(ACTIVATION_NAMES)}, got {self.activation!r}")
        if self.init not in INITS:
            raise AsrError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.num_layers < 1 or self.hidden_dim < 1 or self.context < 0 or self.maxout_pieces < 2:
            raise AsrError("num_layers and hidden_dim must be >= 1, context >= 0 and maxout_pieces >= 2")
        if not 0 <= self.dropout < 1:
            raise AsrError(f"dropout is the drop probability, in [0, 1); got {self.dropout}")
        if self.kind == "cnn" and not (len(self.cnn_channels) == len(self.cnn_freq_kernels) == len(self.cnn_pool) >= 1):
            raise AsrError("cnn_channels, cnn_freq_kernels and cnn_pool need one entry per convolution")
        if self.kind == "cnn" and (2 * self.context + 1 - len(self.cnn_channels) * (self.cnn_time_kernel - 1)) < 1:
            raise AsrError(f"a window of {2 * self.context + 1} frames is too short for "
                           f"{len(self.cnn_channels)} convolutions of {self.cnn_time_kernel} frames")
        if self.kind == "rnn":
            if self.cell not in CELLS:
                raise AsrError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")

    def dilations(self) -> list[int]:
        """TDNN layer dilations whose kernel-3 receptive fields add up to exactly +-context."""
        if self.tdnn_dilations:
            d = list(self.tdnn_dilations)
        else:
            # Spread the context over the layers: widest first, as nnet3 recipes do with
            # {-1,0,1} {-1,0,1} {-3,0,3} ...; layers beyond the context get dilation 0 (1x1).
            d, left = [], self.context
            for i in range(self.num_layers):
                step = math.ceil(left / (self.num_layers - i)) if left > 0 else 0
                d.append(step)
                left -= step
        if len(d) != self.num_layers or sum(d) != self.context or min(d) < 0:
            raise AsrError(f"tdnn_dilations {d} must have {self.num_layers} entries >= 0 summing to context "
                           f"{self.context}")
        return d
