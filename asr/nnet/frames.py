"""Frame-level training data for hybrid DNN-HMMs: spliced feature windows + tied-state targets.

All utterances' features live in one (N, D) tensor (on the training device); a frame's
network input is the window of 2k+1 frames around it, indices clamped at its utterance's
edges (Kaldi's splice-feats pads by repeating the first / last frame). Building windows
by index arithmetic on the fly keeps memory at N x D instead of N x (2k+1)D, and the
same function serves training minibatches and whole utterances at decode time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from asr.utils import AsrError


def window_indices(frames: torch.Tensor, utt_start: torch.Tensor, utt_end: torch.Tensor, context: int) -> torch.Tensor:
    """(B, 2k+1) row indices of the windows centred on ``frames``.

    Args:
        frames: (B,) global frame indices.
        utt_start, utt_end: (B,) first and last global frame of each frame's utterance.
    """
    offsets = torch.arange(-context, context + 1, device=frames.device)
    idx = frames[:, None] + offsets[None, :]
    return torch.minimum(torch.maximum(idx, utt_start[:, None]), utt_end[:, None])


def splice(feats: torch.Tensor, context: int) -> torch.Tensor:
    """(T, D) one utterance -> (T, (2k+1)D) spliced windows (edge frames repeated)."""
    T = feats.shape[0]
    frames = torch.arange(T, device=feats.device)
    idx = window_indices(frames, torch.zeros_like(frames), torch.full_like(frames, T - 1), context)
    return feats[idx].reshape(T, -1)


@dataclass
class FrameSet:
    """Frames of a set of utterances, concatenated.

    Attributes:
        feats: (N, D) float32 features.
        targets: (N,) int64 pdf ids.
        utt_start, utt_end: (N,) first / last global frame of each frame's utterance.
        utt_len: (N,) length of each frame's utterance (for the short-first curriculum).
        utts: utterance ids in order.
    """

    feats: torch.Tensor
    targets: torch.Tensor
    utt_start: torch.Tensor
    utt_end: torch.Tensor
    utt_len: torch.Tensor
    utts: list[str]

    @classmethod
    def build(cls, feats: dict[str, np.ndarray], targets: dict[str, np.ndarray], utts: list[str]) -> "FrameSet":
        xs, ys, starts, ends, lens = [], [], [], [], []
        offset = 0
        for u in utts:
            x, y = feats[u], targets[u]
            if len(x) != len(y):
                raise AsrError(f"utterance {u}: {len(x)} feature frames but {len(y)} aligned frames")
            xs.append(x)
            ys.append(y)
            starts.append(np.full(len(x), offset))
            ends.append(np.full(len(x), offset + len(x) - 1))
            lens.append(np.full(len(x), len(x)))
            offset += len(x)
        if not xs:
            raise AsrError("no utterance has both features and an alignment")
        cat = lambda a: torch.from_numpy(np.concatenate(a))  # noqa: E731
        return cls(cat(xs).float(), cat(ys).long(), cat(starts).long(), cat(ends).long(), cat(lens).long(), list(utts))

    def __len__(self) -> int:
        return self.feats.shape[0]

    def to(self, device: str | torch.device) -> "FrameSet":
        return FrameSet(self.feats.to(device), self.targets.to(device), self.utt_start.to(device),
                        self.utt_end.to(device), self.utt_len.to(device), self.utts)

    def batch(self, frames: torch.Tensor, context: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, (2k+1)D) inputs and (B,) targets of the frames ``frames``."""
        idx = window_indices(frames, self.utt_start[frames], self.utt_end[frames], context)
        return self.feats[idx].reshape(len(frames), -1), self.targets[frames]


@dataclass
class Utterances:
    """Whole utterances for sequence training (CTC, the recurrent hybrid), ordered by length.

    ``targets`` are token sequences (CTC) or per-frame pdf ids (the hybrid, same length as
    the features).
    """

    keys: list[str]
    feats: list[torch.Tensor]  # (T, D) each
    targets: list[torch.Tensor]  # (L,) each

    def batches(self, batch_frames: int, min_size: int = 1) -> list[list[int]]:
        """Consecutive (similar-length) utterances, at most ``batch_frames`` padded frames each
        (a batch with fewer than ``min_size`` utterances, such as the last, joins the one before)."""
        out, cur, longest = [], [], 0
        for i, f in enumerate(self.feats):
            longest2 = max(longest, len(f))
            if cur and longest2 * (len(cur) + 1) > batch_frames:
                out.append(cur)
                cur, longest2 = [], len(f)
            cur.append(i)
            longest = longest2
        if cur:
            out.append(cur)
        merged: list[list[int]] = []
        for b in out:
            if merged and len(merged[-1]) < min_size:
                merged[-1] = merged[-1] + b
            else:
                merged.append(b)
        if len(merged) > 1 and len(merged[-1]) < min_size:
            last = merged.pop()
            merged[-1] = merged[-1] + last
        return merged

    def collate(self, idx: list[int], device: torch.device):
        feats = [self.feats[i] for i in idx]
        x = nn.utils.rnn.pad_sequence(feats, batch_first=True).to(device)
        lengths = torch.tensor([len(f) for f in feats])
        tgt = [self.targets[i] for i in idx]
        return x, lengths, torch.cat(tgt), torch.tensor([len(t) for t in tgt])
