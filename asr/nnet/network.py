"""Acoustic networks of the hybrid system: a feed-forward DNN and a TDNN, over spliced windows.

Both map a window of 2k+1 feature frames, flattened to (B, (2k+1)D), to (B, num_pdfs)
logits. The DNN (Kaldi nnet1 style) is ``num_layers`` hidden affine layers. The TDNN
(Kaldi nnet3's workhorse) is ``num_layers`` 1-D convolutions over time, each seeing
frames ``dilation`` apart, that shrink the window to the one output frame; evaluated on
windows it computes exactly what a TDNN over the whole utterance computes at that frame.
Every hidden layer: affine / conv -> [batch norm] -> activation -> [dropout].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from asr.utils import AsrError, Config

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
INITS = ("lecun", "xavier", "he", "default")


@dataclass
class NetConfig(Config):
    """Network shape (recipe ``[dnn]`` section / ``--set``)."""

    kind: str = "dnn"  # "dnn" or "tdnn"
    num_layers: int = 4
    hidden_dim: int = 512
    activation: str = "relu"  # sigmoid | tanh | relu
    init: str = "he"  # lecun | xavier | he | default (torch's)
    batch_norm: bool = True
    dropout: float = 0.0
    context: int = 5  # frames either side
    tdnn_dilations: list[int] = field(default_factory=list)  # per layer; empty = derived from context

    def __post_init__(self) -> None:
        if self.kind not in ("dnn", "tdnn"):
            raise AsrError(f"network kind must be 'dnn' or 'tdnn', got {self.kind!r}")
        if self.activation not in ACTIVATIONS:
            raise AsrError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.init not in INITS:
            raise AsrError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.num_layers < 1 or self.hidden_dim < 1 or self.context < 0:
            raise AsrError("num_layers and hidden_dim must be >= 1 and context >= 0")

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


def _init_linear(weight: torch.Tensor, bias: torch.Tensor | None, scheme: str, fan_in: int, fan_out: int) -> None:
    if scheme == "default":
        return
    if scheme == "lecun":
        std = math.sqrt(1.0 / fan_in)
    elif scheme == "xavier":
        std = math.sqrt(2.0 / (fan_in + fan_out))
    else:  # he
        std = math.sqrt(2.0 / fan_in)
    with torch.no_grad():
        weight.normal_(0.0, std)
        if bias is not None:
            bias.zero_()


class HiddenBlock(nn.Module):
    """affine (or conv) -> [batch norm] -> activation -> [dropout]."""

    def __init__(self, layer: nn.Module, dim: int, cfg: NetConfig):
        super().__init__()
        self.layer = layer
        self.norm = nn.BatchNorm1d(dim) if cfg.batch_norm else nn.Identity()
        self.act = ACTIVATIONS[cfg.activation]()
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.act(self.norm(self.layer(x))))


class AcousticNet(nn.Module):
    """Spliced window (B, (2k+1)D) -> (B, num_pdfs) logits."""

    def __init__(self, cfg: NetConfig, input_dim: int, num_pdfs: int):
        super().__init__()
        self.cfg, self.input_dim, self.num_pdfs = cfg, input_dim, num_pdfs
        self.window = 2 * cfg.context + 1
        blocks = []
        if cfg.kind == "dnn":
            fan_in = input_dim * self.window
            for _ in range(cfg.num_layers):
                lin = nn.Linear(fan_in, cfg.hidden_dim)
                _init_linear(lin.weight, lin.bias, cfg.init, fan_in, cfg.hidden_dim)
                blocks.append(HiddenBlock(lin, cfg.hidden_dim, cfg))
                fan_in = cfg.hidden_dim
        else:
            channels = input_dim
            for d in cfg.dilations():
                k = 3 if d > 0 else 1
                conv = nn.Conv1d(channels, cfg.hidden_dim, kernel_size=k, dilation=max(d, 1))
                _init_linear(conv.weight, conv.bias, cfg.init, channels * k, cfg.hidden_dim * k)
                blocks.append(HiddenBlock(conv, cfg.hidden_dim, cfg))
                channels = cfg.hidden_dim
        self.hidden = nn.ModuleList(blocks)
        self.output = nn.Linear(cfg.hidden_dim, num_pdfs)
        _init_linear(self.output.weight, self.output.bias, cfg.init if cfg.init != "he" else "xavier",
                     cfg.hidden_dim, num_pdfs)

    @property
    def num_hidden_layers(self) -> int:
        return len(self.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.kind == "tdnn":
            x = x.view(x.shape[0], self.window, self.input_dim).transpose(1, 2)  # (B, D, window)
            for block in self.hidden:
                x = block(x)
            x = x[:, :, 0]  # the window has shrunk to the centre frame
        else:
            for block in self.hidden:
                x = block(x)
        return self.output(x)
