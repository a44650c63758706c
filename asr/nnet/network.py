"""Acoustic networks of the hybrid system: feed-forward DNN, TDNN and CNN over spliced windows
(the recurrent hybrid, over whole utterances, is :mod:`asr.nnet.recurrent`).

Each maps a window of 2k+1 feature frames, flattened to (B, (2k+1)D), to (B, num_pdfs)
logits. The DNN (Kaldi nnet1 style) is ``num_layers`` hidden affine layers. The TDNN
(Kaldi nnet3's workhorse) is ``num_layers`` 1-D convolutions over time, each seeing
frames ``dilation`` apart, that shrink the window to the one output frame; evaluated on
windows it computes exactly what a TDNN over the whole utterance computes at that frame.
The CNN (the CNN-HMM hybrid of Abdel-Hamid et al. 2014 / Sainath et al. 2013) sees the
window as a (time x frequency) map: 2-D convolutions (``cnn_time_kernel`` x
``cnn_freq_kernels``, no padding) with max-pooling over frequency (``cnn_pool``), then
``num_layers`` affine layers. Every hidden layer: affine / conv -> [batch norm] ->
activation -> [dropout].

Activations: sigmoid, tanh, relu, and maxout (Goodfellow et al. 2013: each unit is the max
of ``maxout_pieces`` affine pieces). ``dropout`` is the *drop* probability p (the books'
"keep probability" is 1 - p); it is inverted dropout: kept units are scaled by 1 / (1 - p)
while training, so nothing changes at test time.

Initialisations (weights; biases start at 0):
- ``lecun``: N(0, 1/n_in);
- ``xavier``: Glorot & Bengio's uniform U(-a, a), a = sqrt(6 / (n_in + n_out)), the books' form;
- ``xavier_normal``: N(0, 2 / (n_in + n_out)), the same variance as a normal;
- ``he``: N(0, 2/n_in) (ReLU nets; the output layer gets xavier_normal);
- ``default``: torch's own (uniform, scaled by 1/sqrt(n_in)).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from asr.nnet.net_config import INITS, KINDS, NetConfig  # noqa: F401 (re-exported)
from asr.utils import AsrError

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "maxout": None}


def _init_linear(weight: torch.Tensor, bias: torch.Tensor | None, scheme: str, fan_in: int, fan_out: int) -> None:
    if scheme == "default":
        return
    with torch.no_grad():
        if scheme == "xavier":
            a = math.sqrt(6.0 / (fan_in + fan_out))
            weight.uniform_(-a, a)
        else:
            std = {"lecun": math.sqrt(1.0 / fan_in), "xavier_normal": math.sqrt(2.0 / (fan_in + fan_out)),
                   "he": math.sqrt(2.0 / fan_in)}[scheme]
            weight.normal_(0.0, std)
        if bias is not None:
            bias.zero_()


class Maxout(nn.Module):
    """(B, units * pieces, ...) -> (B, units, ...): the max over each unit's pieces."""

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C = x.shape[:2]
        return x.view(B, C // self.pieces, self.pieces, *x.shape[2:]).amax(dim=2)


def layer_width(cfg: NetConfig) -> int:
    """Outputs of a hidden affine layer: hidden_dim, times the pieces for maxout."""
    return cfg.hidden_dim * (cfg.maxout_pieces if cfg.activation == "maxout" else 1)


def activation(cfg: NetConfig) -> nn.Module:
    return Maxout(cfg.maxout_pieces) if cfg.activation == "maxout" else ACTIVATIONS[cfg.activation]()


class HiddenBlock(nn.Module):
    """affine (or conv) -> [batch norm] -> activation -> [dropout]; ``dim`` = the layer's outputs."""

    def __init__(self, layer: nn.Module, dim: int, cfg: NetConfig, act: nn.Module | None = None, norm_2d: bool = False):
        super().__init__()
        self.layer = layer
        norm = nn.BatchNorm2d if norm_2d else nn.BatchNorm1d
        self.norm = norm(dim) if cfg.batch_norm else nn.Identity()
        self.act = act if act is not None else activation(cfg)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.act(self.norm(self.layer(x))))


class AcousticNet(nn.Module):
    """Spliced window (B, (2k+1)D) -> (B, num_pdfs) logits."""

    def __init__(self, cfg: NetConfig, input_dim: int, num_pdfs: int):
        super().__init__()
        self.cfg, self.input_dim, self.num_pdfs = cfg, input_dim, num_pdfs
        self.window = 2 * cfg.context + 1
        if cfg.kind not in ("dnn", "tdnn", "cnn"):
            raise AsrError(f"AcousticNet takes windows (dnn, tdnn, cnn), not kind {cfg.kind!r}")
        blocks, width = [], layer_width(cfg)
        self.conv = nn.ModuleList()
        if cfg.kind == "tdnn":
            channels = input_dim
            for d in cfg.dilations():
                k = 3 if d > 0 else 1
                conv = nn.Conv1d(channels, width, kernel_size=k, dilation=max(d, 1))
                _init_linear(conv.weight, conv.bias, cfg.init, channels * k, cfg.hidden_dim * k)
                blocks.append(HiddenBlock(conv, width, cfg))
                channels = cfg.hidden_dim
        else:
            fan_in = input_dim * self.window
            if cfg.kind == "cnn":
                fan_in = self._build_convolutions(cfg, input_dim)
            for _ in range(cfg.num_layers):
                lin = nn.Linear(fan_in, width)
                _init_linear(lin.weight, lin.bias, cfg.init, fan_in, cfg.hidden_dim)
                blocks.append(HiddenBlock(lin, width, cfg))
                fan_in = cfg.hidden_dim
        self.hidden = nn.ModuleList(blocks)
        self.output = nn.Linear(cfg.hidden_dim, num_pdfs)
        _init_linear(self.output.weight, self.output.bias, cfg.init if cfg.init != "he" else "xavier_normal",
                     cfg.hidden_dim, num_pdfs)

    def _build_convolutions(self, cfg: NetConfig, input_dim: int) -> int:
        """The CNN's convolution blocks; returns the flattened size of their output map."""
        act = nn.ReLU if cfg.activation == "maxout" else ACTIVATIONS[cfg.activation]
        channels, T, F = 1, self.window, input_dim
        for c, kf, pool in zip(cfg.cnn_channels, cfg.cnn_freq_kernels, cfg.cnn_pool):
            kf = min(kf, F)
            conv = nn.Conv2d(channels, c, kernel_size=(cfg.cnn_time_kernel, kf))
            _init_linear(conv.weight, conv.bias, cfg.init, channels * cfg.cnn_time_kernel * kf,
                         c * cfg.cnn_time_kernel * kf)
            block = HiddenBlock(conv, c, cfg, act=act(), norm_2d=True)
            block.pool = nn.MaxPool2d((1, pool)) if pool > 1 and (F - kf + 1) >= pool else nn.Identity()
            self.conv.append(block)
            T, F = T - cfg.cnn_time_kernel + 1, F - kf + 1
            F = F // pool if isinstance(block.pool, nn.MaxPool2d) else F
            channels = c
        return channels * T * F

    @property
    def num_hidden_layers(self) -> int:
        return len(self.hidden)

    sequence = False  # takes windows, not whole utterances

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.kind == "cnn":
            x = x.view(x.shape[0], 1, self.window, self.input_dim)  # (B, 1, time, freq)
            for block in self.conv:
                x = block.pool(block(x))
            x = x.flatten(1)
            for block in self.hidden:
                x = block(x)
        elif self.cfg.kind == "tdnn":
            x = x.view(x.shape[0], self.window, self.input_dim).transpose(1, 2)  # (B, D, window)
            for block in self.hidden:
                x = block(x)
            x = x[:, :, 0]  # the window has shrunk to the centre frame
        else:
            for block in self.hidden:
                x = block(x)
        return self.output(x)
