"""Statistics the phonetic decision tree is grown from (Kaldi's acc-tree-stats).

Every frame of an alignment belongs to one context-dependent HMM state, the key
(left phone, phone, right phone, HMM state); 0 stands for "no phone" at the edges of
an utterance. For each key seen we keep the single-Gaussian sufficient statistics
(count, sum, sum of squares) of its frames: enough to score any clustering of keys.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from asr.features import chunk_utterances
from asr.hmm.alignments import phone_segments
from asr.hmm.topology import TransitionModel
from asr.utils import AsrError

log = logging.getLogger(__name__)

LEFT, CENTRAL, RIGHT, HMM_STATE = 0, 1, 2, 3


@dataclass
class TreeStats:
    """Statistics of K distinct context-dependent states.

    Attributes:
        keys: (K, 4) int64 rows (left, phone, right, hmm_state).
        count: (K,) frames.
        sum: (K, D) sum of the frames.
        sumsq: (K, D) sum of their squares.
    """

    keys: np.ndarray
    count: np.ndarray
    sum: np.ndarray
    sumsq: np.ndarray

    @property
    def packed(self) -> np.ndarray:
        """(K, 1 + 2D) [count, sum, sumsq]: the form clusters are added up in."""
        return np.concatenate([self.count[:, None], self.sum, self.sumsq], axis=1)


def gaussian_objective(packed: np.ndarray, var_floor: float) -> np.ndarray:
    """Log-likelihood of each cluster's frames under its own ML diagonal Gaussian.

    Args:
        packed: (..., 1 + 2D) [count, sum, sumsq] per cluster.
    Returns:
        (...) log-likelihoods; 0 for empty clusters. Variances are floored at
        ``var_floor`` (so a tiny cluster cannot claim an unbounded likelihood).
    """
    D = (packed.shape[-1] - 1) // 2
    n = packed[..., 0]
    safe_n = np.maximum(n, 1e-10)[..., None]
    mean = packed[..., 1:1 + D] / safe_n
    ml_var = np.maximum(packed[..., 1 + D:] / safe_n - mean**2, 0.0)
    var = np.maximum(ml_var, var_floor)
    obj = -0.5 * n * (D * math.log(2 * math.pi) + np.log(var).sum(-1) + (ml_var / var).sum(-1))
    return np.where(n > 0, obj, 0.0)


def frame_keys(tids: np.ndarray, trans: TransitionModel) -> np.ndarray:
    """(T, 4) (left, phone, right, hmm_state) of every frame of a transition-id alignment."""
    phones, first, last = phone_segments(tids, trans)
    left = np.concatenate([[0], phones[:-1]])
    right = np.concatenate([phones[1:], [0]])
    lengths = last - first + 1
    state = trans.tstate_hmm_state[trans.tid_tstate[np.asarray(tids, dtype=np.int64)]]
    return np.stack([np.repeat(left, lengths), np.repeat(phones, lengths), np.repeat(right, lengths), state], axis=1)


def accumulate_tree_stats(feats: Mapping[str, np.ndarray], tids: dict[str, np.ndarray],
                          trans: TransitionModel, chunk_frames: int = 0) -> TreeStats:
    """Tree statistics of every aligned utterance that has features.

    Args:
        feats: utt -> (T, D) features (the pipeline the tree's GMMs will use); a
            :class:`~asr.features.FeatureArchive` is read ``chunk_frames`` frames at a time
            (0: all at once), and each chunk's statistics are summed.
        tids: utt -> (T,) transition-id alignment.
    """
    missing = sorted(set(tids) - set(feats))
    if missing:
        log.warning("%d aligned utterance(s) have no features and are skipped: %s", len(missing), " ".join(missing[:5]))
    utts = sorted(set(tids) & set(feats))
    if not utts:
        raise AsrError("no aligned utterance to build the tree from")
    parts = [_chunk_tree_stats(feats, tids, trans, chunk)
             for chunk in chunk_utterances(utts, {u: len(tids[u]) for u in utts}, chunk_frames)]
    if len(parts) == 1:
        return parts[0]
    return _reduce_by_key(np.concatenate([p.keys for p in parts]), np.concatenate([p.packed for p in parts]))


def _chunk_tree_stats(feats: Mapping[str, np.ndarray], tids: dict[str, np.ndarray], trans: TransitionModel,
                      utts: list[str]) -> TreeStats:
    keys, frames = [], []
    for utt in utts:
        x = feats[utt]
        if len(tids[utt]) != len(x):
            raise AsrError(f"utterance {utt}: alignment has {len(tids[utt])} frames, features {len(x)}")
        try:
            keys.append(frame_keys(tids[utt], trans))
        except AsrError as e:
            raise AsrError(f"utterance {utt}: {e}") from None
        frames.append(x)
    x = np.concatenate(frames).astype(np.float64)
    return _reduce_by_key(np.concatenate(keys), np.concatenate([np.ones((len(x), 1)), x, x * x], axis=1))


def _reduce_by_key(keys: np.ndarray, packed: np.ndarray) -> TreeStats:
    """(K, 4) keys with (K, 1 + 2D) [count, sum, sumsq] rows -> one row per distinct key."""
    # Rows as one int64 each (mixed radix, lexicographic order kept): a 1-D unique is ~5x
    # faster than unique over rows.
    base = int(keys.max()) + 1 if len(keys) else 1
    code = ((keys[:, 0] * base + keys[:, 1]) * base + keys[:, 2]) * base + keys[:, 3]
    uniq_code, inverse = np.unique(code, return_inverse=True)
    uniq = np.stack([uniq_code // base**3, uniq_code // base**2 % base, uniq_code // base % base, uniq_code % base],
                    axis=1).astype(keys.dtype)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(uniq)))
    total = np.add.reduceat(packed[order], starts, axis=0)
    D = (packed.shape[1] - 1) // 2
    return TreeStats(uniq, total[:, 0], total[:, 1:1 + D], total[:, 1 + D:])
