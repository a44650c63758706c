"""Viterbi alignment of a batch of utterances at once, in torch: the GPU path of
:func:`asr.hmm.align.align_utterances` (the same recursion, so the same best paths).

Each frame is one gather + max over every utterance's states and predecessors, padded to
the batch's largest T, S and K, so a GPU runs the whole batch per step; back-pointers go
back to the CPU for the trace-back.
"""

from __future__ import annotations

import numpy as np
import torch

from asr.hmm.align import Alignment
from asr.utils import AsrError

DEVICES = ("cpu", "torch", "cuda")


def torch_device(name: str) -> torch.device | None:
    """The torch device of a GMM ``device`` option (None: the numpy path)."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise AsrError(f"GMM device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "cpu":
        return None
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AsrError("device cuda was asked for but torch sees no GPU")
    return torch.device("cpu" if name == "torch" else name)


def viterbi_torch(preds: list[np.ndarray], arcs: list[np.ndarray], inits: list[np.ndarray],
                  finals: list[np.ndarray], emissions: list[np.ndarray],
                  device: torch.device | str = "cpu") -> list[tuple[np.ndarray, np.ndarray, float] | None]:
    """Exact Viterbi of a batch of utterances at once (the recursion of
    :func:`asr.hmm.align._viterbi_one`, padded to the batch's largest T, S and K).

    Args: per utterance pred (S, K) predecessor states (-1: none), arc (S, K) arc scores,
        init (S,) and final (S,) log-scores, emission (T, S) scores.
    Returns: per utterance (states (T,), predecessor slots (T,), score), or None if no path fits.
    """
    dev = torch.device(device)
    B = len(preds)
    T = max(len(e) for e in emissions)
    S = max(p.shape[0] for p in preds)
    K = max(p.shape[1] for p in preds)
    neg = float("-inf")
    f64 = torch.float64  # as the compiled CPU recursion: the same best paths, not merely close ones
    pred = torch.full((B, S, K), -1, dtype=torch.int64)
    arc = torch.full((B, S, K), neg, dtype=f64)
    init = torch.full((B, S), neg, dtype=f64)
    final = torch.full((B, S), neg, dtype=f64)
    emit = torch.zeros((B, T, S), dtype=f64)
    lengths = torch.tensor([len(e) for e in emissions])
    for b in range(B):
        s, k = preds[b].shape
        pred[b, :s, :k] = torch.from_numpy(preds[b])
        arc[b, :s, :k] = torch.from_numpy(np.asarray(arcs[b], dtype=np.float64))
        init[b, :s] = torch.from_numpy(np.asarray(inits[b], dtype=np.float64))
        final[b, :s] = torch.from_numpy(np.asarray(finals[b], dtype=np.float64))
        # the CPU recursion adds float32 emissions into float64 sums: round them alike
        emit[b, :len(emissions[b]), :s] = torch.from_numpy(np.asarray(emissions[b], dtype=np.float32)).double()
    pred, arc, init, final, emit, lengths = (t.to(dev) for t in (pred, arc, init, final, emit, lengths))
    arc = torch.where(pred >= 0, arc, torch.full_like(arc, neg))
    safe_pred = pred.clamp(min=0)
    back = torch.zeros((T, B, S), dtype=torch.int16, device=dev)
    delta = init + emit[:, 0]
    best_final = torch.where(lengths == 1, torch.max(delta + final, dim=1).values,
                             torch.full((B,), neg, dtype=f64, device=dev))
    last_state = torch.where(lengths == 1, torch.argmax(delta + final, dim=1), torch.zeros(B, dtype=torch.int64,
                                                                                            device=dev))
    for t in range(1, T):
        cand = torch.gather(delta, 1, safe_pred.view(B, -1)).view(B, S, K) + arc
        best, arg = cand.max(dim=2)
        back[t] = arg.to(torch.int16)
        delta = best + emit[:, t]
        ends = lengths == t + 1  # utterances whose last frame this is
        if bool(ends.any()):
            total = delta + final
            best_final = torch.where(ends, total.max(dim=1).values, best_final)
            last_state = torch.where(ends, total.argmax(dim=1), last_state)
    back, last_state, best_final = back.cpu().numpy(), last_state.cpu().numpy(), best_final.cpu().numpy()
    out: list[tuple[np.ndarray, np.ndarray, float] | None] = []
    for b in range(B):
        if not np.isfinite(best_final[b]):
            out.append(None)
            continue
        Tb = int(lengths[b])
        states = np.zeros(Tb, dtype=np.int64)
        ks = np.zeros(Tb, dtype=np.int64)
        cur = int(last_state[b])
        for t in range(Tb - 1, -1, -1):
            states[t] = cur
            if t > 0:
                k = int(back[t, b, cur])
                ks[t] = k
                cur = int(preds[b][cur, k])
        out.append((states, ks, float(best_final[b])))
    return out


def alignments_from_paths(graphs, paths) -> list[Alignment | None]:
    """:class:`Alignment` objects (transition ids) from :func:`viterbi_torch`'s paths."""
    out: list[Alignment | None] = []
    for g, p in zip(graphs, paths):
        if p is None:
            out.append(None)
            continue
        states, ks, score = p
        Tb = len(states)
        tids = np.full(Tb + 1, -1, dtype=np.int64)
        tids[1:Tb] = g.pred_tid[states[1:], ks[1:]]
        tids[Tb] = g.final_tid[states[-1]]
        out.append(Alignment(states, tids, score))
    return out
