"""The GPU path of GMM training and alignment, in torch: the same code runs (and is tested) on CPU.

- :class:`TorchGmm` holds a :class:`~asr.gmm.diag_gmm.DiagGmmSet` on a device:
  log-likelihoods of every pdf as one matmul per mixture-size bucket plus a logsumexp, and
  Viterbi-EM statistics with the frames of each bucket's pdfs gathered, soft-assigned over
  their pdf's components and summed with ``index_add_`` (float64 sums).
- :func:`viterbi_torch` aligns a padded batch of utterances at once: each frame is one gather
  + max over every utterance's states and predecessors, so a GPU runs the whole batch per step.

``GmmTrainConfig.device = "cuda"`` (``--set device=cuda``) trains with these; ``"torch"`` runs
this code on the CPU (what the tests do); the default ``"cpu"`` keeps the numpy/numba path.
"""

from __future__ import annotations

import numpy as np
import torch

from asr.gmm.diag_gmm import DiagGmmSet, GmmStats
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


class TorchGmm:
    """A GMM set on a torch device, bucketed by mixture size (next power of two), as the
    numpy path does, so the work follows the real number of Gaussians."""

    def __init__(self, gmm: DiagGmmSet, device: torch.device | str = "cpu"):
        self.gmm, self.device = gmm, torch.device(device)
        inv = 1.0 / gmm.variances
        const = -0.5 * (np.log(2 * np.pi * gmm.variances) + gmm.means ** 2 * inv).sum(-1) + gmm.log_weights
        W = np.concatenate([-0.5 * inv, gmm.means * inv], axis=-1)  # (P, M, 2D)
        nc = np.maximum(gmm.num_components(), 1)
        size = np.minimum(2 ** np.ceil(np.log2(nc)).astype(int), gmm.means.shape[1])
        self.buckets = []
        for m in sorted(set(size.tolist())):
            pdfs = np.flatnonzero(size == m)
            self.buckets.append((torch.as_tensor(pdfs, device=self.device),
                                 torch.as_tensor(W[pdfs, :m], dtype=torch.float32, device=self.device),
                                 torch.as_tensor(const[pdfs, :m], dtype=torch.float32, device=self.device), m))
        self.bucket_of = torch.as_tensor(np.searchsorted(sorted(set(size.tolist())), size), device=self.device)
        self.slot = torch.zeros(gmm.num_pdfs, dtype=torch.int64, device=self.device)
        for pdfs, *_ in self.buckets:
            self.slot[pdfs] = torch.arange(len(pdfs), device=self.device)

    def log_likelihoods(self, feats: torch.Tensor | np.ndarray, chunk: int = 4096) -> torch.Tensor:
        """(T, P) float32 log p(x_t | pdf) of (T, D) frames, on the device."""
        x = torch.as_tensor(feats, dtype=torch.float32, device=self.device)
        if x.ndim != 2 or x.shape[1] != self.gmm.dim:
            raise AsrError(f"features have dimension {x.shape[-1]}, the model expects {self.gmm.dim}")
        out = torch.empty(x.shape[0], self.gmm.num_pdfs, device=self.device)
        for t in range(0, x.shape[0], chunk):
            xs = x[t:t + chunk]
            x2 = torch.cat([xs * xs, xs], dim=1)  # (n, 2D)
            for pdfs, W, b, m in self.buckets:
                comp = (x2 @ W.reshape(-1, W.shape[-1]).T).view(len(xs), len(pdfs), m) + b
                out[t:t + chunk, pdfs] = torch.logsumexp(comp, dim=-1)
        return out

    def accumulate(self, feats: np.ndarray, pdf_ids: np.ndarray, stats_feats: np.ndarray | None = None,
                   chunk: int = 16384) -> GmmStats:
        """:meth:`DiagGmmSet.accumulate` on the device: the same statistics (to float rounding)."""
        P, M, _ = self.gmm.means.shape
        x = torch.as_tensor(feats, dtype=torch.float32, device=self.device)
        src = x if stats_feats is None else torch.as_tensor(stats_feats, dtype=torch.float32, device=self.device)
        D = src.shape[1]
        ids = torch.as_tensor(pdf_ids, dtype=torch.int64, device=self.device)
        occ = torch.zeros(P, M, dtype=torch.float64, device=self.device)
        sx = torch.zeros(P, M, D, dtype=torch.float64, device=self.device)
        sxx = torch.zeros(P, M, D, dtype=torch.float64, device=self.device)
        loglik = torch.zeros((), dtype=torch.float64, device=self.device)
        keep = ids >= 0
        bucket = torch.where(keep, self.bucket_of[ids.clamp(min=0)], -1)
        for k, (pdfs, W, b, m) in enumerate(self.buckets):
            rows = torch.nonzero(bucket == k).squeeze(1)
            for s in range(0, len(rows), chunk):
                r = rows[s:s + chunk]
                slot = self.slot[ids[r]]
                xs = x[r]
                x2 = torch.cat([xs * xs, xs], dim=1)
                comp = torch.einsum("nd,nmd->nm", x2, W[slot]) + b[slot]  # (n, m): own pdf's components
                tot = torch.logsumexp(comp, dim=1)
                post = torch.exp(comp - tot[:, None]).double()
                xd = src[r].double()
                flat = ids[r] * M  # rows of the (P * M) view
                idx = (flat[:, None] + torch.arange(m, device=self.device)[None]).reshape(-1)
                occ.view(-1).index_add_(0, idx, post.reshape(-1))
                sx.view(-1, D).index_add_(0, idx, (post[:, :, None] * xd[:, None, :]).reshape(-1, D))
                sxx.view(-1, D).index_add_(0, idx, (post[:, :, None] * (xd * xd)[:, None, :]).reshape(-1, D))
                loglik += tot.double().sum()
        return GmmStats(occ.cpu().numpy(), sx.cpu().numpy(), sxx.cpu().numpy(), float(loglik), len(pdf_ids))


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
