"""A set of diagonal-covariance GMMs, one per pdf (Kaldi's AmDiagGmm).

Parameters are stored padded to the largest mixture size M so that log-likelihoods of
all frames against all Gaussians are a single matrix product:

    log N(x; mu, v) = c - 1/2 sum_d x_d^2 / v_d + sum_d x_d mu_d / v_d,
    c = -1/2 sum_d (log(2 pi v_d) + mu_d^2 / v_d)

Padded components carry log-weight -inf and never contribute.
"""

from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass

import numpy as np

from asr.parallel import fork_pool, make_pool
from asr.utils import AsrError

log = logging.getLogger(__name__)


@dataclass
class GmmStats:
    """Sufficient statistics, padded like the model: occ (P, M), sx and sxx (P, M, D); float64."""

    occ: np.ndarray
    sx: np.ndarray
    sxx: np.ndarray
    loglik: float = 0.0
    frames: int = 0

    def __add__(self, other: "GmmStats") -> "GmmStats":
        """The statistics of both sets of frames (same model shape)."""
        return GmmStats(self.occ + other.occ, self.sx + other.sx, self.sxx + other.sxx,
                        self.loglik + other.loglik, self.frames + other.frames)


# Mixture sizes that pdfs are padded to when scored together: steps of at most 25%, so padding
# wastes at most a fifth of the work (powers of two wasted a third on average).
_SIZES = np.unique(np.ceil(1.25 ** np.arange(64)).astype(np.int64))


def bucket_sizes(num_components: np.ndarray) -> np.ndarray:
    """(P,) the bucket size of each pdf: the smallest listed size >= its number of components."""
    return _SIZES[np.searchsorted(_SIZES, num_components)]


# Worker state of parallel accumulation (inherited through fork: nothing is pickled but results).
_ACC: dict = {}


def pdf_shares(gmm: "DiagGmmSet", pdf_ids: np.ndarray, nj: int) -> list[list[int]]:
    """The pdfs each of ``nj`` jobs accumulates, balanced by their work (frames x components;
    the silence states' few pdfs with hundreds of Gaussians each can be most of it): heaviest
    first, each to the least loaded job (LPT scheduling). Deterministic, and every pdf is
    made whole by one job, so the statistics do not depend on nj."""
    frames = np.bincount(pdf_ids[pdf_ids >= 0], minlength=gmm.num_pdfs)
    cost = frames * np.maximum(gmm.num_components(), 1) + frames  # + frames: the per-frame overhead
    shares: list[list[int]] = [[] for _ in range(nj)]
    load = np.zeros(nj)
    for pdf in np.argsort(-cost, kind="stable"):
        k = int(np.argmin(load))
        shares[k].append(int(pdf))
        load[k] += cost[pdf]
    return [sorted(s) for s in shares]


def _accumulate_share(pdfs: list[int]) -> dict:
    g = _ACC["gmm"]
    return g._accumulate_pdfs(_ACC["feats"], _ACC["src"], _ACC["pdf_ids"], pdfs)


def _accumulate_remote(job: tuple) -> dict:
    pdfs, ragged, pdf_ids = job
    g = DiagGmmSet.from_ragged(ragged)
    return g._accumulate_pdfs(_ACC["feats"], _ACC["src"], pdf_ids, pdfs)


class StatsPool:
    """Persistent --nj workers for EM statistics, forked once with the training frames: each
    iteration sends them only the current GMMs (ragged, a few MB) and the frames' pdfs.
    (Forking afresh every iteration cost more in page faults than the second core gave.)"""

    def __init__(self, nj: int, feats: np.ndarray, stats_feats: np.ndarray | None = None):
        self.nj = nj
        self.feats_dim = (feats if stats_feats is None else stats_feats).shape[1]
        _ACC.update(feats=feats, src=feats if stats_feats is None else stats_feats)
        try:
            self.pool = make_pool(nj)
        finally:
            _ACC.clear()  # the workers have their copy; the parent keeps no reference

    def accumulate(self, gmm: "DiagGmmSet", pdf_ids: np.ndarray) -> "GmmStats":
        ragged = gmm.to_ragged()
        parts = self.pool.map(_accumulate_remote, [(pdfs, ragged, pdf_ids) for pdfs in pdf_shares(gmm, pdf_ids, self.nj)])
        return gmm.merge_stats(parts, len(pdf_ids), self.feats_dim)

    def close(self) -> None:
        self.pool.terminate()


def _logsumexp_rows(comp: np.ndarray, m: int, out: np.ndarray) -> None:
    """out[j] = log sum_k exp(comp[j * m + k]) over each pdf's m component rows of the
    (n * m, T) transposed matmul output: every step runs along T, where numpy's float32
    exp and reductions are SIMD (3x the per-row loop over a row-major (T, n * m) block)."""
    if m == 1:
        out[:] = comp
        return
    c = comp.reshape(-1, m, comp.shape[1])
    top = c.max(axis=1)
    top[~np.isfinite(top)] = 0.0  # an all -inf pdf stays -inf: log(0) below
    c -= top[:, None]
    np.exp(c, out=c)
    total = c.sum(axis=1)
    with np.errstate(divide="ignore"):
        np.log(total, out=total)
    total += top
    out[:] = total


class DiagGmmSet:
    """P diagonal GMMs of dimension D.

    Attributes:
        means: (P, M, D) float64.
        variances: (P, M, D) float64.
        log_weights: (P, M) float64, -inf on padding.
    """

    def __init__(self, means: np.ndarray, variances: np.ndarray, log_weights: np.ndarray):
        if means.shape != variances.shape or means.shape[:2] != log_weights.shape:
            raise AsrError("GMM parameter shapes disagree")
        self.means = means.astype(np.float64)
        self.variances = variances.astype(np.float64)
        self.log_weights = log_weights.astype(np.float64)
        self._cache: list | None = None
        self._device_copy: tuple | None = None  # (device, TorchGmm) of these parameters

    # --- construction ---------------------------------------------------------------
    @classmethod
    def flat_start(cls, num_pdfs: int, mean: np.ndarray, var: np.ndarray) -> "DiagGmmSet":
        """Every pdf a single Gaussian with the global mean and variance (Kaldi's gmm-init-mono)."""
        D = mean.shape[0]
        return cls(np.tile(mean, (num_pdfs, 1, 1)).reshape(num_pdfs, 1, D),
                   np.tile(var, (num_pdfs, 1, 1)).reshape(num_pdfs, 1, D),
                   np.zeros((num_pdfs, 1)))

    @property
    def num_pdfs(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[2]

    def num_components(self) -> np.ndarray:
        """(P,) number of real (unpadded) components per pdf."""
        return np.isfinite(self.log_weights).sum(1)

    def total_gaussians(self) -> int:
        return int(self.num_components().sum())

    # --- likelihoods ----------------------------------------------------------------
    def _buckets(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
        """Pdfs grouped by mixture size (see :func:`bucket_sizes`): (pdfs, (n*m, 2D) W, (n*m,) b, m) each.

        W @ [x^2, x] + b = log w N(x) per component. Grouping keeps the work near the real
        number of Gaussians when a few pdfs (silence) hold many more than the rest.
        """
        if self._cache is None:
            inv_var = 1.0 / self.variances
            const = -0.5 * (np.log(2 * np.pi * self.variances) + self.means**2 * inv_var).sum(-1)
            W = np.concatenate([-0.5 * inv_var, self.means * inv_var], axis=-1)  # (P, M, 2D)
            b = const + self.log_weights  # (P, M), -inf on padding
            M = W.shape[1]
            size = np.minimum(bucket_sizes(np.maximum(self.num_components(), 1)), M)
            self._cache = []
            for m in sorted(set(size.tolist())):
                pdfs = np.flatnonzero(size == m)
                self._cache.append((pdfs, np.ascontiguousarray(W[pdfs, :m].reshape(-1, 2 * self.dim), dtype=np.float32),
                                    b[pdfs, :m].reshape(-1).astype(np.float32), m))
        return self._cache

    def log_likelihoods(self, feats: np.ndarray, pdfs: np.ndarray | None = None) -> np.ndarray:
        """Per-pdf log-likelihoods, in numpy (BLAS matmuls: decoding a GMM needs no torch).

        Args:
            feats: (T, D) frames.
            pdfs: optional (P',) subset of pdf ids; all pdfs when None.
        Returns:
            (T, P') float32 log p(x_t | pdf).
        """
        x = np.asarray(feats, dtype=np.float32)
        if x.ndim != 2 or x.shape[-1] != self.dim:
            raise AsrError(f"features have dimension {x.shape[-1]}, the model expects {self.dim}")
        wanted = np.arange(self.num_pdfs) if pdfs is None else np.asarray(pdfs, dtype=np.int64)
        column = np.full(self.num_pdfs, -1, dtype=np.int64)
        column[wanted] = np.arange(len(wanted))
        x2t = np.concatenate([x * x, x], axis=1).T  # (2D, T)
        out = np.empty((len(wanted), x.shape[0]), dtype=np.float32)  # (P', T), transposed at the end
        for bucket_pdfs, W, b, m in self._buckets():
            cols = column[bucket_pdfs]
            sel = np.flatnonzero(cols >= 0)
            if len(sel) == 0:
                continue
            if len(sel) < len(bucket_pdfs):
                rows = (sel[:, None] * m + np.arange(m)).reshape(-1)
                W, b = W[rows], b[rows]
            comp = W @ x2t  # (n * m, T)
            comp += b[:, None]
            part = np.empty((len(sel), x.shape[0]), dtype=np.float32)
            _logsumexp_rows(comp, m, part)
            out[cols[sel]] = part
        return np.ascontiguousarray(out.T)

    def invalidate(self) -> None:
        """Forget what was derived from the parameters (call after changing them in place)."""
        self._cache = None
        self._device_copy = None

    def on_device(self, device):
        """These GMMs as a :class:`~asr.gmm.torch_gmm.TorchGmm` on a torch device (cached until
        the parameters change)."""
        if self._device_copy is None or self._device_copy[0] != device:
            from asr.gmm.torch_gmm import TorchGmm

            self._device_copy = (device, TorchGmm(self, device))
        return self._device_copy[1]

    def _component_loglik(self, pdf: int, x: np.ndarray) -> np.ndarray:
        """(n, m) float32 log w_k N(x; mu_k, v_k) of frames ``x`` (n, D) under the m real
        components of one pdf, as matmuls: [x^2, x] @ [-1/(2v), mu/v]^T + const. In float32,
        as Kaldi's DiagGmm computes them (statistics are still summed in float64)."""
        real = np.flatnonzero(np.isfinite(self.log_weights[pdf]))
        m = int(real[-1]) + 1 if len(real) else 1  # real components come first (padding is -inf)
        mu, var, lw = self.means[pdf, :m], self.variances[pdf, :m], self.log_weights[pdf, :m]
        inv = 1.0 / var
        const = -0.5 * (np.log(2 * np.pi * var) + mu * mu * inv).sum(-1) + lw
        x = np.asarray(x, dtype=np.float32)
        ll = (x * x) @ (-0.5 * inv).T.astype(np.float32)
        ll += x @ (mu * inv).T.astype(np.float32)
        ll += const.astype(np.float32)[None]
        return ll

    # --- EM ---------------------------------------------------------------------------
    def frame_posteriors(self, feats: np.ndarray, pdf_ids: np.ndarray, chunk: int = 20000):
        """Component posteriors of aligned frames, pdf by pdf.

        Args:
            feats: (N, D) frames; pdf_ids: (N,) the pdf each frame is aligned to (-1: left out).
        Yields:
            ``(pdf, rows, post, loglik)``: rows (n,) into ``feats`` of frames of that pdf
            (at most ``chunk`` at a time), post (n, m) their posteriors over the pdf's first m
            components, the real ones (padding at the end is never computed: silence may hold 20x the Gaussians of a
            typical pdf), loglik (n,) float64 log p(x | pdf). Component scores and their exp
            are float32; posteriors and what follows are float64.
        """
        order = np.argsort(pdf_ids, kind="stable")
        bounds = np.searchsorted(pdf_ids[order], np.arange(self.num_pdfs + 1))
        for p in range(self.num_pdfs):
            frames = order[bounds[p]:bounds[p + 1]]
            for start in range(0, len(frames), chunk):
                rows = frames[start:start + chunk]
                ll = self._component_loglik(p, feats[rows])
                top = ll.max(axis=1, keepdims=True)
                ll -= top
                post = np.exp(ll, out=ll).astype(np.float64)
                norm = post.sum(axis=1, keepdims=True)
                post /= norm
                yield p, rows, post, top[:, 0].astype(np.float64) + np.log(norm[:, 0])

    def accumulate(self, feats: np.ndarray, pdf_ids: np.ndarray, stats_feats: np.ndarray | None = None,
                   nj: int = 1) -> GmmStats:
        """Viterbi-EM statistics: each frame belongs to one pdf, soft over its components.

        Args:
            feats: (N, D) frames, all utterances concatenated.
            pdf_ids: (N,) the pdf each frame is aligned to.
            stats_feats: optional (N, D') other features of the same frames whose statistics
                are gathered with ``feats``' posteriors (Kaldi's gmm-acc-stats-twofeats:
                the speaker-independent model of a SAT system).
            nj: processes, each taking a share of the pdfs (:func:`pdf_shares`), so the statistics
                are identical to one process's (every pdf's sums are made in the same order,
                whoever makes them).
        """
        P = self.num_pdfs
        src = feats if stats_feats is None else stats_feats
        D = src.shape[1]
        if nj > 1:
            _ACC.update(gmm=self, feats=feats, src=src, pdf_ids=pdf_ids)
            try:
                with fork_pool(nj) as pool:
                    parts = pool.map(_accumulate_share, pdf_shares(self, pdf_ids, nj))
            finally:
                _ACC.clear()
        else:
            parts = [self._accumulate_pdfs(feats, src, pdf_ids, range(P))]
        return self.merge_stats(parts, len(pdf_ids), D)

    def merge_stats(self, parts: list[dict], frames: int, dim: int) -> "GmmStats":
        """GmmStats from per-pdf pieces ({pdf: (loglik, occ, sx, sxx)}), summed in pdf order
        (so any split of the pdfs gives the same totals)."""
        P, M, _ = self.means.shape
        stats = GmmStats(np.zeros((P, M)), np.zeros((P, M, dim)), np.zeros((P, M, dim)), 0.0, frames)
        logliks = np.zeros(P)
        for part in parts:
            for p, (ll, occ, sx, sxx) in part.items():
                m = len(occ)
                logliks[p], stats.occ[p, :m], stats.sx[p, :m], stats.sxx[p, :m] = ll, occ, sx, sxx
        stats.loglik = float(logliks.sum())
        return stats

    def _accumulate_pdfs(self, feats: np.ndarray, src: np.ndarray, pdf_ids: np.ndarray, pdfs) -> dict:
        """{pdf: (log-likelihood sum, occ (m,), sum x (m, D), sum x^2 (m, D))} of the pdfs given."""
        wanted = np.zeros(self.num_pdfs, dtype=bool)
        wanted[list(pdfs)] = True
        ids = np.where(wanted[np.maximum(pdf_ids, 0)] & (pdf_ids >= 0), pdf_ids, -1)
        out: dict[int, list] = {}
        for p, rows, post, tot in self.frame_posteriors(feats, ids):
            xc = src[rows].astype(np.float64)
            acc = out.setdefault(p, [0.0, 0.0, 0.0, 0.0])
            acc[0] += float(tot.sum())
            acc[1] = acc[1] + post.sum(0)
            acc[2] = acc[2] + post.T @ xc
            acc[3] = acc[3] + post.T @ (xc * xc)
        return {p: tuple(v) for p, v in out.items()}

    def update(self, stats: GmmStats, var_floor: np.ndarray, min_occ: float = 3.0,
               min_weight: float = 1e-5) -> None:
        """Maximum-likelihood update (Kaldi's MleDiagGmmUpdate).

        Components with occupancy below ``min_occ`` are removed when the pdf has others,
        otherwise left unchanged; variances are floored at ``var_floor`` (D,).
        """
        P, M, D = self.means.shape
        means, variances, lw = self.means.copy(), self.variances.copy(), self.log_weights.copy()
        removed = False
        for p in range(P):
            real = np.isfinite(self.log_weights[p])
            occ = stats.occ[p]
            total = occ[real].sum()
            if total <= 0:
                continue
            keep = real & (occ >= min_occ)
            if not keep.any():
                keep = real & (occ == occ[real].max())
            for m in np.flatnonzero(real & ~keep):
                lw[p, m] = -np.inf
                removed = True
            for m in np.flatnonzero(keep):
                mu = stats.sx[p, m] / occ[m]
                means[p, m] = mu
                variances[p, m] = np.maximum(stats.sxx[p, m] / occ[m] - mu**2, var_floor)
            w = np.maximum(occ[keep] / occ[keep].sum(), min_weight)
            lw[p, keep] = np.log(w / w.sum())
        self.means, self.variances, self.log_weights = means, variances, lw
        real = np.isfinite(lw)
        if removed or not (real[:, 1:] <= real[:, :-1]).all():  # real components no longer first
            self._compact()
        else:
            self.invalidate()

    def mix_up(self, target_total: int, occs: np.ndarray, power: float = 0.25,
               min_count: float = 20.0, perturb: float = 0.2) -> None:
        """Split Gaussians until about ``target_total`` in all (Kaldi's SplitByCount).

        Each pdf gets a share of the Gaussians proportional to occupancy**power (and
        keeps at least min_count frames per Gaussian); a pdf grows by repeatedly splitting
        its heaviest component into two moved +-``perturb`` standard deviations apart.
        """
        targets = self.num_components().astype(int)
        if target_total <= targets.sum():
            return
        heap = [(-(occs[p] ** power) / targets[p], p) for p in range(self.num_pdfs) if occs[p] > 0]
        heapq.heapify(heap)
        total = targets.sum()
        while total < target_total and heap:
            _, p = heapq.heappop(heap)
            if occs[p] / (targets[p] + 1) < min_count:
                continue
            targets[p] += 1
            total += 1
            heapq.heappush(heap, (-(occs[p] ** power) / targets[p], p))
        new_M = int(targets.max())
        P, M, D = self.means.shape
        if new_M > M:
            pad = new_M - M
            self.means = np.concatenate([self.means, np.zeros((P, pad, D))], 1)
            self.variances = np.concatenate([self.variances, np.ones((P, pad, D))], 1)
            self.log_weights = np.concatenate([self.log_weights, np.full((P, pad), -np.inf)], 1)
        for p in range(P):
            while np.isfinite(self.log_weights[p]).sum() < targets[p]:
                m = int(np.argmax(self.log_weights[p]))
                new = int(np.flatnonzero(~np.isfinite(self.log_weights[p]))[0])
                shift = perturb * np.sqrt(self.variances[p, m])
                self.log_weights[p, m] -= math.log(2.0)
                self.log_weights[p, new] = self.log_weights[p, m]
                self.variances[p, new] = self.variances[p, m]
                self.means[p, new] = self.means[p, m] + shift
                self.means[p, m] = self.means[p, m] - shift
        self.invalidate()

    def _compact(self) -> None:
        """Move real components to the front and drop all-padding columns."""
        order = np.argsort(~np.isfinite(self.log_weights), axis=1, kind="stable")
        self.means = np.take_along_axis(self.means, order[..., None], 1)
        self.variances = np.take_along_axis(self.variances, order[..., None], 1)
        self.log_weights = np.take_along_axis(self.log_weights, order, 1)
        M = max(int(self.num_components().max()), 1)
        self.means, self.variances, self.log_weights = self.means[:, :M], self.variances[:, :M], self.log_weights[:, :M]
        self.invalidate()

    # --- storage ----------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"means": self.means, "variances": self.variances, "log_weights": self.log_weights}

    def to_ragged(self) -> dict[str, np.ndarray]:
        """The real components only (no padding): a training checkpoint of AN4's tri1 at 9,000
        Gaussians is 2.7 MB this way, 100 MB padded to the silence pdf's 327 components."""
        real = np.isfinite(self.log_weights)
        return {"ragged_counts": real.sum(1), "ragged_means": self.means[real], "ragged_variances": self.variances[real],
                "ragged_log_weights": self.log_weights[real], "ragged_slots": np.nonzero(real)[1]}

    @classmethod
    def from_ragged(cls, d: dict[str, np.ndarray]) -> "DiagGmmSet":
        counts, slots = np.asarray(d["ragged_counts"]), np.asarray(d["ragged_slots"])
        P, M, D = len(counts), max(int(slots.max()) + 1, 1) if len(slots) else 1, d["ragged_means"].shape[1]
        pdf = np.repeat(np.arange(P), counts)
        means, variances, lw = np.zeros((P, M, D)), np.ones((P, M, D)), np.full((P, M), -np.inf)
        means[pdf, slots], variances[pdf, slots], lw[pdf, slots] = (d["ragged_means"], d["ragged_variances"],
                                                                    d["ragged_log_weights"])
        return cls(means, variances, lw)

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> "DiagGmmSet":
        return cls(np.asarray(d["means"]), np.asarray(d["variances"]), np.asarray(d["log_weights"]))
