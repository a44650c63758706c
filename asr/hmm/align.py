"""Batched exact Viterbi alignment of utterances to their training graphs.

Utterances are padded into a batch (B utterances x S states x K predecessors); the
recursion loops over time only, every step vectorised over the batch and the states:

    delta_t[j] = max_k (delta_{t-1}[pred[j, k]] + arc[j, k]) + emit_t[j]

No beam: the answer is the exact best path, so there are no "retry with a wider beam"
failures, only utterances whose graph cannot fit in their frames.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

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


def viterbi_batch(graphs: list[AlignGraph], emissions: list[torch.Tensor], arc_scores: list[torch.Tensor],
                  final_scores: list[torch.Tensor]) -> list[Alignment | None]:
    """Best state path of each graph.

    Args:
        graphs: B training graphs.
        emissions: B tensors (T_b, S_b) of scaled emission log-scores.
        arc_scores: B tensors (S_b, K_b) of arc log-scores (-inf where no predecessor).
        final_scores: B tensors (S_b,) of end-of-utterance log-scores.
    Returns:
        One :class:`Alignment` per graph, or None where no path fits the frames.
    """
    B = len(graphs)
    lengths = torch.tensor([e.shape[0] for e in emissions])
    T = int(lengths.max())
    S = max(g.num_states for g in graphs)
    K = max(g.pred.shape[1] for g in graphs)
    dummy = S  # an extra always -inf state that padded predecessors point to
    pred = torch.full((B, S, K), dummy, dtype=torch.long)
    arc = torch.full((B, S, K), NEG_INF)
    init = torch.full((B, S), NEG_INF)
    final = torch.full((B, S), NEG_INF)
    emit = torch.full((B, T, S), NEG_INF)
    for b, g in enumerate(graphs):
        s, k = g.pred.shape
        p = torch.from_numpy(g.pred)
        pred[b, :s, :k] = torch.where(p >= 0, p, torch.tensor(dummy))
        arc[b, :s, :k] = arc_scores[b]
        init[b, :s] = torch.from_numpy(g.init_graph).float()
        final[b, :s] = final_scores[b]
        emit[b, : emissions[b].shape[0], :s] = emissions[b]
    pred_flat = pred.view(B, S * K)
    backptr = torch.zeros((T, B, S), dtype=torch.uint8 if K <= 256 else torch.int16)
    delta = init + emit[:, 0]
    end_delta = torch.full((B, S), NEG_INF)
    pad = torch.full((B, 1), NEG_INF)
    ends = lengths - 1
    for t in range(T):
        if t > 0:
            cand = torch.cat([delta, pad], 1).gather(1, pred_flat).view(B, S, K) + arc
            best, arg = cand.max(2)
            backptr[t] = arg.to(backptr.dtype)
            delta = best + emit[:, t]
        done = ends == t
        if done.any():
            end_delta[done] = delta[done]
    total = end_delta + final
    score, last = total.max(1)
    # Traceback, all utterances at once; an utterance starts moving at its own last frame.
    bidx = torch.arange(B)
    cur = last.clone()
    states = torch.zeros((B, T), dtype=torch.long)
    ks = torch.zeros((B, T), dtype=torch.long)
    for t in range(T - 1, -1, -1):
        active = t <= ends
        states[:, t] = torch.where(active, cur, states[:, t])
        if t == 0:
            break
        k = backptr[t, bidx, cur].long()
        ks[:, t] = k
        cur = torch.where(active, pred[bidx, cur, k], cur)
    out: list[Alignment | None] = []
    for b, g in enumerate(graphs):
        if not torch.isfinite(score[b]):
            out.append(None)
            continue
        Tb = int(lengths[b])
        st = states[b, :Tb].numpy()
        kk = ks[b, :Tb].numpy()
        tids = np.full(Tb + 1, -1, dtype=np.int64)
        tids[1:Tb] = g.pred_tid[st[1:], kk[1:]]
        tids[Tb] = g.final_tid[st[-1]]
        out.append(Alignment(st, tids, float(score[b])))
    return out


def _arc_scores(tids: np.ndarray, graph_logp: np.ndarray, tlp: torch.Tensor) -> torch.Tensor:
    """Scaled transition log-prob of each arc (0 where there is no tid) plus its graph log-prob."""
    t = torch.from_numpy(tids)
    return torch.where(t >= 0, tlp[t.clamp(min=0)], torch.tensor(0.0)) + torch.from_numpy(graph_logp).float()


def align_utterances(graphs: dict[str, AlignGraph], emission_fn: Callable[[str, AlignGraph], torch.Tensor],
                     trans_log_probs: np.ndarray, transition_scale: float = 0.1, *,
                     num_frames: dict[str, int], max_batch_elems: int = 8_000_000) -> dict[str, Alignment | None]:
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
    """
    tlp = torch.from_numpy(trans_log_probs).float() * transition_scale
    results: dict[str, Alignment | None] = {}
    batch: list[str] = []

    def flush() -> None:
        gs = [graphs[u] for u in batch]
        arcs = [_arc_scores(g.pred_tid, g.pred_graph, tlp) for g in gs]
        finals = [_arc_scores(g.final_tid, g.final_graph, tlp) for g in gs]
        emissions = [emission_fn(u, g) for u, g in zip(batch, gs)]
        for u, a in zip(batch, viterbi_batch(gs, emissions, arcs, finals)):
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
