"""Frame-level training data for hybrid DNN-HMMs: spliced feature windows + tied-state targets.

All utterances' features live in one (N, D) tensor (on the training device); a frame's
network input is the window of 2k+1 frames around it, indices clamped at its utterance's
edges (Kaldi's splice-feats pads by repeating the first / last frame). Building windows
by index arithmetic on the fly keeps memory at N x D instead of N x (2k+1)D, and the
same function serves training minibatches and whole utterances at decode time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np
import torch
from torch import nn

from asr.features import aligned_features, chunk_utterances
from asr.parallel import prefetched
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
    def build(cls, feats: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray], utts: list[str]
              ) -> "FrameSet":
        return cls.from_arrays(*cls.gather(feats, targets, utts), list(utts))

    @staticmethod
    def gather(feats: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray], utts: list[str]
               ) -> tuple[np.ndarray, ...]:
        """The numpy arrays of :meth:`build` (no torch: safe in a reader thread, see FrameStream)."""
        xs, ys, starts, ends, lens = [], [], [], [], []
        offset = 0
        for u in utts:
            y = targets[u]
            x = aligned_features(feats, u, len(y))
            xs.append(x)
            ys.append(y)
            starts.append(np.full(len(x), offset))
            ends.append(np.full(len(x), offset + len(x) - 1))
            lens.append(np.full(len(x), len(x)))
            offset += len(x)
        if not xs:
            raise AsrError("no utterance has both features and an alignment")
        return (np.concatenate(xs).astype(np.float32, copy=False), np.concatenate(ys).astype(np.int64, copy=False),
                *(np.concatenate(a).astype(np.int64, copy=False) for a in (starts, ends, lens)))

    @classmethod
    def from_arrays(cls, x: np.ndarray, y: np.ndarray, starts: np.ndarray, ends: np.ndarray, lens: np.ndarray,
                    utts: list[str]) -> "FrameSet":
        t = torch.from_numpy
        return cls(t(x), t(y), t(starts), t(ends), t(lens), utts)

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
class StreamOrder:
    """One epoch's walk through a :class:`FrameStream`: the utterances of each chunk, in
    order, and how frames are shuffled inside a chunk (``seed`` None: not at all)."""

    chunks: list[list[str]]
    seed: int | None = None
    shortest_first: bool = False  # within a chunk, frames of shorter utterances first


class FrameStream:
    """Training frames too many to hold: utterances are read from a feature archive (any
    mapping utt -> (T, D), such as :class:`~asr.features.FeatureArchive`) a chunk of about
    ``chunk_frames`` frames at a time, and each chunk becomes a :class:`FrameSet` on
    ``device``. Shuffling is two-level, as Kaldi nnet1's randomiser buffer does it:
    utterances across chunks, frames within a chunk. Memory holds one chunk.
    """

    def __init__(self, feats: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray], utts: list[str],
                 chunk_frames: int, device: str | torch.device = "cpu"):
        if not utts:
            raise AsrError("no utterance has both features and an alignment")
        if chunk_frames <= 0:
            raise AsrError(f"chunk_frames must be > 0 to stream frames, got {chunk_frames}")
        self.feats, self.targets, self.utts = feats, targets, list(utts)
        self.chunk_frames, self.device = chunk_frames, torch.device(device)
        self.lengths = np.array([len(targets[u]) for u in self.utts], dtype=np.int64)  # (U,) frames

    def __len__(self) -> int:
        return int(self.lengths.sum())

    def order(self, gen: torch.Generator | None, shortest_first: bool = False,
              length_cap: int | None = None) -> StreamOrder:
        """An epoch's chunks: utterances shuffled (``gen``; None keeps their order), or sorted
        shortest first; with ``length_cap`` only utterances at most that long."""
        idx = np.arange(len(self.utts))
        if gen is not None:
            idx = torch.randperm(len(idx), generator=gen).numpy()
        if shortest_first:
            idx = idx[np.argsort(self.lengths[idx], kind="stable")]
        if length_cap is not None:
            idx = idx[self.lengths[idx] <= length_cap]
        utts = [self.utts[i] for i in idx]
        lengths = dict(zip(self.utts, self.lengths.tolist()))
        seed = None if gen is None else int(torch.randint(0, 2**62, (1,), generator=gen))
        return StreamOrder(chunk_utterances(utts, lengths, self.chunk_frames), seed, shortest_first)

    def parts(self, order: StreamOrder | None) -> Iterator[tuple[FrameSet, torch.Tensor | None]]:
        """(chunk frames on the device, their shuffled frame order or None) for each chunk. The
        next chunk is read by a second thread while the caller trains on this one, so at most
        two chunks are held."""
        order = order or self.order(None)
        # The reader thread uses numpy only: a torch op there would start a second OpenMP team
        # whose spinning threads take the cores from training (an epoch ran at half speed).
        load = lambda utts: FrameSet.gather(self.feats, self.targets, utts)  # noqa: E731
        for i, (chunk, arrays) in enumerate(prefetched(load, order.chunks)):
            frames = FrameSet.from_arrays(*arrays, chunk).to(self.device)
            del arrays
            yield frames, self._shuffle(frames, order, i)
            del frames

    @staticmethod
    def _shuffle(frames: FrameSet, order: StreamOrder, i: int) -> torch.Tensor | None:
        if order.seed is None:
            return None
        gen = torch.Generator().manual_seed(order.seed + i)
        perm = torch.randperm(len(frames), generator=gen)
        if order.shortest_first:
            perm = perm[torch.argsort(frames.utt_len.cpu()[perm], stable=True)]
        return perm


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
