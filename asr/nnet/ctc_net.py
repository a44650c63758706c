"""The CTC acoustic network: frame stacking, a recurrent stack, a softmax over tokens + blank.

    (N, T, D) fbank --stack `subsample` frames--> (N, T/s, s*D) --RNN x L--> (N, T/s, H or 2H)
        --[dropout]--> linear --> (N, T/s, V) log-probabilities (V = tokens incl. blank 0)

The recurrent layers (:mod:`asr.nnet.recurrent`) are LSTM by default, or Elman, IRNN or GRU
(``cell``), with per-step or variational (per-sequence) dropout masks.

Stacking s neighbouring frames (EESEN / Deep Speech 2) shortens the sequences the LSTM
runs over by s, which is most of the speed on a CPU, and CTC is happy with 30 ms frames.
The LSTM forget-gate bias starts at 1 (Jozefowicz et al. 2015) so early gradients flow.
"""

from __future__ import annotations

from dataclasses import dataclass

import re

import torch
from torch import nn

from asr.nnet.recurrent import CELLS, RecurrentStack
from asr.utils import AsrError, Config

# Model dirs written before the layers were split: one multi-layer nn.LSTM named "lstm".
_OLD_LSTM_KEY = re.compile(r"^lstm\.(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


@dataclass
class CtcNetConfig(Config):
    """Network shape (recipe ``[ctc]`` section)."""

    num_layers: int = 3
    hidden_dim: int = 256
    bidirectional: bool = True
    subsample: int = 3  # frames stacked into one LSTM step
    projection: int = 0  # LSTM projection size (LSTMP); 0 = none
    dropout: float = 0.2  # drop probability between recurrent layers and before the output layer
    cell: str = "lstm"  # elman | irnn | gru | lstm
    variational_dropout: bool = False  # one dropout mask per sequence, shared over time

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise AsrError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.projection and self.cell != "lstm":
            raise AsrError("projection is only defined for LSTM cells")
        if self.num_layers < 1 or self.hidden_dim < 1 or self.subsample < 1:
            raise AsrError("num_layers, hidden_dim and subsample must be >= 1")
        if not 0 <= self.projection < self.hidden_dim:
            raise AsrError("projection must be 0 (none) or smaller than hidden_dim")
        if not 0 <= self.dropout < 1:
            raise AsrError("dropout must be in [0, 1)")


def stack_frames(x: torch.Tensor, lengths: torch.Tensor, s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T, D) -> (N, ceil(T/s), s*D): every s consecutive frames concatenated (zero-padded tail).

    Returns the stacked batch and the new lengths ceil(lengths / s).
    """
    if s == 1:
        return x, lengths
    N, T, D = x.shape
    pad = (-T) % s
    if pad:
        x = torch.cat([x, x.new_zeros(N, pad, D)], dim=1)
    return x.reshape(N, (T + pad) // s, s * D), (lengths + s - 1) // s


class CtcNet(nn.Module):
    def __init__(self, cfg: CtcNetConfig, input_dim: int, num_tokens: int):
        super().__init__()
        self.cfg, self.input_dim, self.num_tokens = cfg, input_dim, num_tokens
        self.rnn = RecurrentStack(input_dim * cfg.subsample, cfg.hidden_dim, cfg.num_layers, cfg.cell,
                                  cfg.bidirectional, cfg.dropout, cfg.variational_dropout, cfg.projection)
        self.output = nn.Linear(self.rnn.out_dim, num_tokens)
        self._register_load_state_dict_pre_hook(self._rename_old_keys)

    @staticmethod
    def _rename_old_keys(state_dict, prefix, *args) -> None:
        for key in list(state_dict):
            m = _OLD_LSTM_KEY.match(key[len(prefix):])
            if key.startswith(prefix) and m:
                name, layer, rev = m.groups()
                state_dict[f"{prefix}rnn.layers.{layer}.{name}_l0{rev or ''}"] = state_dict.pop(key)

    def forget_gate_bias(self) -> list[torch.Tensor]:
        """Effective forget-gate bias (b_ih + b_hh) of every layer and direction."""
        return self.rnn.forget_gate_bias()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of a padded batch.

        Args:
            x: (N, T, D) features; lengths: (N,) valid frames of each (CPU int64).
        Returns:
            (N, T', V) log-softmax outputs and (N,) output lengths, T' = ceil(T / subsample).
        """
        if x.shape[-1] != self.input_dim:
            raise AsrError(f"features have dimension {x.shape[-1]}, the network expects {self.input_dim}")
        x, lengths = stack_frames(x, lengths, self.cfg.subsample)
        h = self.rnn(x, lengths)
        logits = self.output(self.rnn.drop(h))
        if logits.dtype in (torch.bfloat16, torch.float16):  # autocast: the softmax in float32
            logits = logits.float()
        return torch.log_softmax(logits, dim=-1), lengths
