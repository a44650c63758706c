"""Feature-space MLLR (constrained MLLR): one affine transform per speaker (Kaldi's fmllr-diag-gmm).

A speaker's frames x (D,) become x' = A x + b = W xi, with W = [A b] (D, D+1) and
xi = [x; 1]. Under a diagonal GMM (means mu_m, variances var_m, frame posteriors g_tm) the
auxiliary function is

    Q(W) = beta log|det A| + sum_i (w_i . k_i - 1/2 w_i G_i w_i^T),
    beta = sum g_tm,  K = sum g_tm (mu_m / var_m) xi_t^T  (D, D+1),
    G_i = sum g_tm / var_mi xi_t xi_t^T  (D+1, D+1),

maximised row by row (Gales 1998): with p the i-th cofactor row of A padded with a 0,
w_i = (alpha p + k_i) G_i^-1, alpha the root of e1 alpha^2 + e2 alpha - beta = 0
(e1 = p G_i^-1 p^T, e2 = p G_i^-1 k_i^T) that maximises beta log|alpha e1 + e2| - alpha^2 e1 / 2.
Each row update cannot lower Q.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.gmm.diag_gmm import DiagGmmSet
from asr.utils import AsrError, atomic_path


@dataclass
class FmllrStats:
    """One speaker's sufficient statistics: beta, K (D, D+1), G (D, D+1, D+1)."""

    beta: float
    K: np.ndarray
    G: np.ndarray

    @classmethod
    def zeros(cls, dim: int) -> "FmllrStats":
        return cls(0.0, np.zeros((dim, dim + 1)), np.zeros((dim, dim + 1, dim + 1)))

    @property
    def dim(self) -> int:
        return self.K.shape[0]

    def add(self, other: "FmllrStats") -> None:
        self.beta += other.beta
        self.K += other.K
        self.G += other.G

    def save(self, path: str | Path) -> None:
        with atomic_path(Path(path)) as tmp:
            np.savez(tmp, beta=self.beta, K=self.K, G=self.G)

    @classmethod
    def load(cls, path: str | Path) -> "FmllrStats":
        try:
            with np.load(path) as z:
                return cls(float(z["beta"]), z["K"], z["G"])
        except (OSError, KeyError, ValueError) as e:
            raise AsrError(f"{path}: not fMLLR statistics ({e})") from None


def accumulate_fmllr(gmm: DiagGmmSet, x: np.ndarray, pdf_ids: np.ndarray,
                     frame_weights: np.ndarray | None = None) -> FmllrStats:
    """Statistics of frames ``x`` (N, D) aligned to ``pdf_ids`` (N,), soft over each pdf's
    components; ``frame_weights`` (N,) scale frames (0 for silence), pdf -1 leaves a frame out."""
    N, D = x.shape
    x = x.astype(np.float64)
    w_iv = np.zeros((N, D))  # sum_m g_tm / var_m
    w_mu = np.zeros((N, D))  # sum_m g_tm mu_m / var_m
    weight = np.ones(N) if frame_weights is None else np.asarray(frame_weights, dtype=np.float64)
    weight = np.where(pdf_ids >= 0, weight, 0.0)
    for p, rows, post, _ in gmm.frame_posteriors(x, pdf_ids):
        post *= weight[rows, None]
        m = post.shape[1]  # the pdf's real components (the first m)
        inv_var = np.where(np.isfinite(gmm.log_weights[p, :m])[:, None], 1.0 / gmm.variances[p, :m], 0.0)
        w_iv[rows] = post @ inv_var
        w_mu[rows] = post @ (gmm.means[p, :m] * inv_var)
    xi = np.concatenate([x, np.ones((N, 1))], axis=1)
    G = np.stack([(xi * w_iv[:, i:i + 1]).T @ xi for i in range(D)])
    return FmllrStats(float(weight.sum()), w_mu.T @ xi, G)


def fmllr_objective(W: np.ndarray, stats: FmllrStats) -> float:
    """Q(W) per frame of statistics (see the module docstring)."""
    _, logdet = np.linalg.slogdet(W[:, :-1])
    quad = sum(W[i] @ stats.K[i] - 0.5 * W[i] @ stats.G[i] @ W[i] for i in range(stats.dim))
    return float((stats.beta * logdet + quad) / max(stats.beta, 1e-10))


def estimate_fmllr(stats: FmllrStats, num_iters: int = 10, W: np.ndarray | None = None,
                   min_count: float = 50.0) -> np.ndarray:
    """(D, D+1) transform maximising Q from ``W`` (default identity); identity below ``min_count`` frames."""
    D = stats.dim
    W = np.concatenate([np.eye(D), np.zeros((D, 1))], axis=1) if W is None else np.array(W, dtype=np.float64)
    if stats.beta < min_count:
        return np.concatenate([np.eye(D), np.zeros((D, 1))], axis=1)
    G_inv = [np.linalg.inv(stats.G[i]) for i in range(D)]
    for _ in range(num_iters):
        for i in range(D):
            p = np.append(np.linalg.inv(W[:, :-1])[:, i], 0.0)  # cofactor row, up to a scale
            k = stats.K[i]
            e1 = p @ G_inv[i] @ p
            e2 = p @ G_inv[i] @ k
            disc = np.sqrt(e2 * e2 + 4 * e1 * stats.beta)
            roots = [(-e2 + disc) / (2 * e1), (-e2 - disc) / (2 * e1)]
            alpha = max(roots, key=lambda a: stats.beta * np.log(abs(a * e1 + e2)) - 0.5 * a * a * e1)
            W[i] = (alpha * p + k) @ G_inv[i]
    return W


def apply_fmllr(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(T, D) frames transformed by W = [A b]: x A^T + b, float32."""
    return (x @ W[:, :-1].T + W[:, -1]).astype(np.float32)


def adapt_speakers(gmm: DiagGmmSet, feats: dict[str, np.ndarray], frame_pdfs: dict[str, np.ndarray],
                   utt2spk: dict[str, str], silence_pdfs: set[int] | frozenset = frozenset(),
                   silence_weight: float = 0.0, num_iters: int = 10, min_count: float = 50.0,
                   init: dict[str, np.ndarray] | None = None
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Estimate one transform per speaker from aligned frames and apply it to all its utterances.

    Args:
        feats: utt -> (T, D) unadapted features; frame_pdfs: utt -> (T,) aligned pdfs.
        silence_pdfs, silence_weight: frames of these pdfs count this much (Kaldi's
            weight-silence-post; 0 leaves silence out).
        init: speaker -> transform to start the row updates from (the previous estimate).
    Returns:
        utt -> (T, D) adapted features (utterances without an alignment get their speaker's
        transform too), and speaker -> (D, D+1) transform.
    """
    sil = np.array(sorted(silence_pdfs), dtype=np.int64)
    by_spk: dict[str, list[str]] = {}
    for u in sorted(feats):
        by_spk.setdefault(utt2spk.get(u, u), []).append(u)
    transforms, out = {}, {}
    for spk, utts in by_spk.items():
        aligned = [u for u in utts if u in frame_pdfs]
        stats = FmllrStats.zeros(feats[utts[0]].shape[1])
        if aligned:
            pdfs = np.concatenate([frame_pdfs[u] for u in aligned])
            stats = accumulate_fmllr(gmm, np.concatenate([feats[u] for u in aligned]), pdfs,
                                     np.where(np.isin(pdfs, sil), silence_weight, 1.0))
        W = estimate_fmllr(stats, num_iters, None if init is None else init.get(spk), min_count)
        transforms[spk] = W
        for u in utts:
            out[u] = apply_fmllr(feats[u], W)
    return out, transforms
