"""The CTC acoustic network: frame stacking, a (Bi)LSTM stack, a softmax over tokens + blank.

    (N, T, D) fbank --stack `subsample` frames--> (N, T/s, s*D) --LSTM x L--> (N, T/s, H or 2H)
        --[dropout]--> linear --> (N, T/s, V) log-probabilities (V = tokens incl. blank 0)

Stacking s neighbouring frames (EESEN / Deep Speech 2) shortens the sequences the LSTM
runs over by s, which is most of the speed on a CPU, and CTC is happy with 30 ms frames.
The LSTM forget-gate bias starts at 1 (Jozefowicz et al. 2015) so early gradients flow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.utils import AsrError, Config


@dataclass
class CtcNetConfig(Config):
    """Network shape (recipe ``[ctc]`` section)."""

    num_layers: int = 3
    hidden_dim: int = 256
    bidirectional: bool = True
    subsample: int = 3  # frames stacked into one LSTM step
    projection: int = 0  # LSTM projection size (LSTMP); 0 = none
    dropout: float = 0.2  # between LSTM layers and before the output layer

    def __post_init__(self) -> None:
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
        self.lstm = nn.LSTM(input_dim * cfg.subsample, cfg.hidden_dim, num_layers=cfg.num_layers, batch_first=True,
                            bidirectional=cfg.bidirectional, dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
                            proj_size=cfg.projection)
        out_dim = (cfg.projection or cfg.hidden_dim) * (2 if cfg.bidirectional else 1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.output = nn.Linear(out_dim, num_tokens)
        self.reset_forget_gate_bias()

    def reset_forget_gate_bias(self, value: float = 1.0) -> None:
        """torch's gate order is (input, forget, cell, output) and the bias is b_ih + b_hh:
        set the forget quarter of b_ih to ``value`` and of b_hh to 0."""
        H = self.cfg.hidden_dim
        with torch.no_grad():
            for name, p in self.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    p[H:2 * H].fill_(value)
                elif name.startswith("bias_hh"):
                    p[H:2 * H].zero_()

    def forget_gate_bias(self) -> list[torch.Tensor]:
        """Effective forget-gate bias (b_ih + b_hh) of every layer and direction."""
        H = self.cfg.hidden_dim
        p = dict(self.lstm.named_parameters())
        return [p[n][H:2 * H] + p[n.replace("bias_ih", "bias_hh")][H:2 * H] for n in p if n.startswith("bias_ih")]

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
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = self.lstm(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        return torch.log_softmax(self.output(self.dropout(h)).float(), dim=-1), lengths
