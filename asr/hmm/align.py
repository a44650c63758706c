"""Batched exact Viterbi alignment of utterances to their training graphs.

Utterances are scored in batches of similar length (emissions of one batch in memory at a
time) and each is aligned by a compiled recursion over its S states x K predecessors:

    delta_t[j] = max_k (delta_{t-1}[pred[j, k]] + arc[j, k]) + emit_t[j]

No beam: the answer is the exact best path, so there are no "retry with a wider beam"
failures, only utterances whose graph cannot fit in their frames.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np

from asr.hmm.align_graph import AlignGraph

log = logging.getLogger(__name__)

NEG_INF = float("-inf")


@dataclass
class Alignment:
    """Best path of one utterance.

    Attributes:
        states: (T,) graph state per frame.
        tids: (T + 1,) transition ids used: into frames 1..T-1 (index 0 unused, -1), plus
            the exit transition at the end (last entry).
        score: total scaled log-score of the path.
    """

    states: np.ndarray
    tids: np.ndarray
    score: float


def viterbi_batch(graphs: list[AlignGraph], emissions: list[np.ndarray], arcs: list[np.ndarray],
                  final_scores: list[np.ndarray]) -> list[Alignment | None]:
    """Best state path of each graph.

    Args:
        graphs: B training graphs.
        emissions: B arrays (T_b, S_b) of scaled emission log-scores.
        arcs: B arrays (S_b, K_b) of arc log-scores (-inf where no predecessor).
        final_scores: B arrays (S_b,) of end-of-utterance log-scores.
    Returns:
        One :class:`Alignment` per graph, or None where no path fits the frames.
    """
    out: list[Alignment | None] = []
    for g, e, a, f in zip(graphs, emissions, arcs, final_scores):
        states, ks, score = _viterbi_one(g.pred.astype(np.int64), a.astype(np.float64),
                                         g.init_graph.astype(np.float64), f.astype(np.float64),
                                         np.asarray(e, dtype=np.float32))
        if not np.isfinite(score):
            out.append(None)
            continue
        Tb = len(states)
        tids = np.full(Tb + 1, -1, dtype=np.int64)
        tids[1:Tb] = g.pred_tid[states[1:], ks[1:]]
        tids[Tb] = g.final_tid[states[-1]]
        out.append(Alignment(states, tids, float(score)))
    return out


@numba.njit(cache=True)
def best_predecessor(pred, arc, delta, j):  # pragma: no cover - compiled
    """max_k delta[pred[j, k]] + arc[j, k] and its slot k (-inf, 0 when j has no live predecessor)."""
    best, arg = -np.inf, 0
    for k in range(pred.shape[1]):
        p = pred[j, k]
        if p < 0:
            continue
        c = delta[p] + arc[j, k]
        if c > best:
            best, arg = c, k
    return best, arg


@numba.njit(cache=True)
def _viterbi_one(pred, arc, init, final, emit):  # pragma: no cover - compiled
    """Exact Viterbi of one utterance: pred (S, K) (-1: none), arc (S, K), init (S,),
    final (S,), emit (T, S). Returns states (T,), predecessor slots (T,), best score.
    Compiled, one utterance at a time: long utterances (a few thousand frames, a thousand
    states) cost T x S x K operations, not T tensor calls."""
    T, S = emit.shape
    neg = -np.inf
    back = np.zeros((T, S), dtype=np.int16)
    delta = np.empty(S)
    for j in range(S):
        delta[j] = init[j] + emit[0, j]
    new = np.empty(S)
    for t in range(1, T):
        for j in range(S):
            best, arg = best_predecessor(pred, arc, delta, j)
            new[j] = best + emit[t, j]
            back[t, j] = arg
        delta, new = new, delta
    score, last = neg, 0
    for j in range(S):
        c = delta[j] + final[j]
        if c > score:
            score, last = c, j
    states = np.zeros(T, dtype=np.int64)
    ks = np.zeros(T, dtype=np.int64)
    cur = last
    for t in range(T - 1, -1, -1):
        states[t] = cur
        if t > 0:
            k = back[t, cur]
            ks[t] = k
            cur = pred[cur, k]
    return states, ks, score


def arc_scores(tids: np.ndarray, graph_logp: np.ndarray, tlp: np.ndarray) -> np.ndarray:
    """Scaled transition log-prob of each arc (0 where there is no tid) plus its graph log-prob (float32)."""
    return np.where(tids >= 0, tlp[np.maximum(tids, 0)], np.float32(0.0)) + graph_logp.astype(np.float32)


def scaled_transitions(trans_log_probs: np.ndarray, transition_scale: float) -> np.ndarray:
    """(num_tids,) float32 transition log-probs times the transition scale."""
    return trans_log_probs.astype(np.float32) * np.float32(transition_scale)


def align_utterances(graphs: dict[str, AlignGraph], emission_fn: Callable[[str, AlignGraph], np.ndarray],
                     trans_log_probs: np.ndarray, transition_scale: float = 0.1, *,
                     num_frames: dict[str, int], max_batch_elems: int = 8_000_000,
                     device=None) -> dict[str, Alignment | None]:
    """Align many utterances, batching those of similar length.

    Emissions are computed one batch at a time, so memory holds one batch of (T, S)
    score matrices rather than the whole corpus's.

    Args:
        graphs: utt -> training graph.
        emission_fn: (utt, graph) -> (T, S) scaled emission log-scores of that utterance.
        trans_log_probs: (num_tids,) transition log-probabilities.
        transition_scale: weight of the HMM transition log-probs (Kaldi's self-loop scale).
        num_frames: utt -> T, to batch utterances of similar length.
        max_batch_elems: bound on B * T * S per batch (memory).
        device: align each batch at once with :func:`asr.hmm.align_torch.viterbi_torch` on this
            torch device (a GPU); None: the compiled CPU recursion, one utterance at a time
            (torch is not imported).
    """
    tlp = scaled_transitions(trans_log_probs, transition_scale)
    results: dict[str, Alignment | None] = {}
    batch: list[str] = []

    def flush() -> None:
        gs = [graphs[u] for u in batch]
        arcs = [arc_scores(g.pred_tid, g.pred_graph, tlp) for g in gs]
        finals = [arc_scores(g.final_tid, g.final_graph, tlp) for g in gs]
        emissions = [emission_fn(u, g) for u, g in zip(batch, gs)]
        if device is None:
            alis = viterbi_batch(gs, emissions, arcs, finals)
        else:
            from asr.hmm.align_torch import alignments_from_paths, viterbi_torch

            paths = viterbi_torch([g.pred.astype(np.int64) for g in gs], arcs, [g.init_graph for g in gs], finals,
                                  emissions, device)
            alis = alignments_from_paths(gs, paths)
        for u, a in zip(batch, alis):
            results[u] = a
        batch.clear()

    max_s = 0
    for utt in sorted(graphs, key=lambda u: num_frames[u]):
        s = max(max_s, graphs[utt].num_states)
        if batch and (len(batch) + 1) * num_frames[utt] * s > max_batch_elems:
            flush()
            s = graphs[utt].num_states
        batch.append(utt)
        max_s = s
    if batch:
        flush()
    return results


def equal_alignment(graph: AlignGraph, num_frames: int) -> np.ndarray | None:
    """Kaldi's align-equal: spread ``num_frames`` evenly over the graph's simple path.

    Returns:
        (T,) state per frame, or None if there are fewer frames than states.
    """
    path = graph.equal_path
    if num_frames < len(path):
        return None
    idx = (np.arange(num_frames) * len(path)) // num_frames
    return path[idx]
