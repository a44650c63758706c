"""The GPU path of GMM training, in torch: the same code runs (and is tested) on CPU.

:class:`TorchGmm` holds a :class:`~asr.gmm.diag_gmm.DiagGmmSet` on a device: log-likelihoods
of every pdf as one matmul per mixture-size bucket plus a logsumexp, and Viterbi-EM
statistics with the frames of each bucket's pdfs gathered, soft-assigned over their pdf's
components and summed with ``index_add_`` (float64 sums). Alignment on the device is
:func:`asr.hmm.align_torch.viterbi_torch`.

``GmmTrainConfig.device = "cuda"`` (``--set device=cuda``) trains with these; ``"torch"`` runs
this code on the CPU (what the tests do); the default ``"cpu"`` keeps the numpy/numba path.
"""

from __future__ import annotations

import numpy as np
import torch

from asr.gmm.diag_gmm import DiagGmmSet, GmmStats, bucket_sizes
from asr.hmm.align_torch import torch_device  # noqa: F401  (the device names, for callers)
from asr.utils import AsrError

class TorchGmm:
    """A GMM set on a torch device, bucketed by mixture size as the numpy path does, so the
    work follows the real number of Gaussians."""

    def __init__(self, gmm: DiagGmmSet, device: torch.device | str = "cpu"):
        self.gmm, self.device = gmm, torch.device(device)
        inv = 1.0 / gmm.variances
        const = -0.5 * (np.log(2 * np.pi * gmm.variances) + gmm.means ** 2 * inv).sum(-1) + gmm.log_weights
        W = np.concatenate([-0.5 * inv, gmm.means * inv], axis=-1)  # (P, M, 2D)
        nc = np.maximum(gmm.num_components(), 1)
        size = np.minimum(bucket_sizes(nc), gmm.means.shape[1])
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
