"""Linear feature transforms estimated from GMM statistics: LDA and MLLT.

LDA (Kaldi's ``acc-lda`` + ``est-lda``): spliced frames labelled with the pdf a previous
model aligned them to; the projection keeps the directions of largest between-class over
within-class variance and makes the within-class covariance the identity.

MLLT (Gales' semi-tied covariances, Kaldi's ``est-mllt``): one square matrix A shared by
all Gaussians such that diagonal covariances fit the transformed data best. With full
covariances S_m of each Gaussian (occupancy g_m) in the current space, the log-likelihood
gain of A is

    Q(A) = sum_m g_m (log|det A| - 1/2 sum_i log(a_i S_m a_i^T)),

maximised row by row: with G_i = sum_m g_m / var_mi * S_m (var_mi = a_i S_m a_i^T at the
current A) and c_i the i-th row of A's cofactor matrix, a_i = c_i G_i^-1 sqrt(b / (c_i G_i^-1 c_i^T)),
b = sum_m g_m. Every row update raises Q, so the estimate never lowers the likelihood.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from asr.gmm.diag_gmm import DiagGmmSet
from asr.utils import AsrError

log = logging.getLogger(__name__)


def estimate_lda(x: np.ndarray, classes: np.ndarray, dim: int) -> np.ndarray:
    """LDA projection of labelled frames.

    Args:
        x: (N, D) frames (e.g. spliced MFCCs).
        classes: (N,) class of each frame (a pdf id); frames labelled -1 are left out
            (silence, as Kaldi weights it 0).
        dim: output dimension (<= D).
    Returns:
        (dim, D) float64 matrix M; M x has identity within-class covariance and its rows
        are ordered by decreasing between-class variance.
    """
    keep = classes >= 0
    x, classes = np.asarray(x[keep], dtype=np.float64), classes[keep]
    N, D = x.shape
    if dim > D:
        raise AsrError(f"LDA dimension {dim} exceeds the feature dimension {D}")
    if N <= D:
        raise AsrError(f"LDA needs more than {D} labelled frames, got {N}")
    _, cls = np.unique(classes, return_inverse=True)
    counts = np.bincount(cls).astype(np.float64)
    sums = np.zeros((len(counts), D))
    np.add.at(sums, cls, x)
    mean = x.mean(0)
    total = x.T @ x / N - np.outer(mean, mean)
    class_means = sums / counts[:, None]
    between = (class_means.T * counts) @ class_means / N - np.outer(mean, mean)
    within = total - between
    # Whiten the within-class covariance, then diagonalise the between-class one there.
    chol = np.linalg.cholesky(within + 1e-10 * np.trace(within) / D * np.eye(D))
    chol_inv = np.linalg.inv(chol)
    eigval, eigvec = np.linalg.eigh(chol_inv @ between @ chol_inv.T)
    order = np.argsort(eigval)[::-1][:dim]
    log.info("LDA: %d frames, %d classes, %d -> %d dims; kept eigenvalues %.3g..%.3g, dropped sum %.3g",
             N, len(counts), D, dim, eigval[order[0]], eigval[order[-1]], eigval[np.argsort(eigval)[::-1][dim:]].sum())
    return eigvec[:, order].T @ chol_inv


@dataclass
class FullCovStats:
    """Per-Gaussian statistics in the current feature space: occ (G,), cov (G, D, D) around
    each Gaussian's own mean, and which (pdf, component) each row is."""

    occ: np.ndarray
    cov: np.ndarray
    pdf: np.ndarray
    comp: np.ndarray


def accumulate_full_cov(gmm: DiagGmmSet, x: np.ndarray, pdf_ids: np.ndarray, min_occ: float = 1e-3) -> FullCovStats:
    """Full-covariance statistics of every Gaussian, frames soft-assigned within their pdf.

    Args:
        x: (N, D) frames; pdf_ids: (N,) the pdf each is aligned to (-1: left out).
    """
    D = x.shape[1]
    acc: dict[int, list[np.ndarray]] = {}  # pdf -> [occ (m,), sum x (m, D), sum x x^T (m, D, D)], real components
    for p, rows, post, _ in gmm.frame_posteriors(x, pdf_ids):
        real = np.flatnonzero(np.isfinite(gmm.log_weights[p]))
        post, xs = post[:, real], x[rows].astype(np.float64)
        a = acc.setdefault(p, [np.zeros(len(real)), np.zeros((len(real), D)), np.zeros((len(real), D, D))])
        a[0] += post.sum(0)
        a[1] += post.T @ xs
        a[2] += np.einsum("nm,nd,ne->mde", post, xs, xs, optimize=True)
    occs, covs, pdfs, comps = [], [], [], []
    for p, (g, s1, s2) in sorted(acc.items()):
        keep = g >= min_occ
        mu = s1[keep] / g[keep, None]
        occs.append(g[keep])
        covs.append(s2[keep] / g[keep, None, None] - mu[:, :, None] * mu[:, None, :])
        pdfs.append(np.full(keep.sum(), p))
        comps.append(np.flatnonzero(np.isfinite(gmm.log_weights[p]))[keep])
    if not occs or sum(len(o) for o in occs) == 0:
        raise AsrError("no frames to estimate a feature transform from")
    return FullCovStats(np.concatenate(occs), np.concatenate(covs), np.concatenate(pdfs), np.concatenate(comps))


def mllt_objective(A: np.ndarray, stats: FullCovStats) -> float:
    """Q(A) per frame (see the module docstring), up to a constant."""
    var = np.einsum("id,gde,ie->gi", A, stats.cov, A)
    _, logdet = np.linalg.slogdet(A)
    return float((stats.occ * (logdet - 0.5 * np.log(var).sum(1))).sum() / stats.occ.sum())


def estimate_mllt(stats: FullCovStats, num_iters: int = 10) -> np.ndarray:
    """(D, D) MLLT matrix from full-covariance statistics, starting from the identity."""
    D = stats.cov.shape[1]
    A = np.eye(D)
    beta = stats.occ.sum()
    var = np.einsum("gii->gi", stats.cov).copy()
    before = mllt_objective(A, stats)
    for _ in range(num_iters):
        for i in range(D):
            G = np.tensordot(stats.occ / var[:, i], stats.cov, axes=1)
            G_inv = np.linalg.inv(G)
            # Row i of the cofactor matrix, det(A) inv(A)[:, i], up to its scale (set below).
            cof = np.linalg.inv(A)[:, i]
            row = cof @ G_inv
            A[i] = row * np.sqrt(beta / (row @ cof))
            var[:, i] = np.einsum("d,gde,e->g", A[i], stats.cov, A[i])
    after = mllt_objective(A, stats)
    log.info("MLLT: objective %.4f -> %.4f per frame over %d Gaussians", before, after, len(stats.occ))
    return A


def transform_gmm(gmm: DiagGmmSet, A: np.ndarray, stats: FullCovStats | None = None) -> None:
    """Move a diagonal GMM set into the space x' = A x: means A mu; variances diag(A S A^T)
    from the full covariances where stats have them, else from the diagonal ones."""
    gmm.means = gmm.means @ A.T
    gmm.variances = gmm.variances @ (A**2).T
    if stats is not None:
        gmm.variances[stats.pdf, stats.comp] = np.einsum("id,gde,ie->gi", A, stats.cov, A)
    gmm.invalidate()
