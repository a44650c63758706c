from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from asr.gmm.diag_gmm import DiagGmmSet
from asr.utils import AsrError

TRUE_MEANS = np.array([[-3.0, 0.0], [3.0, 2.0]])
TRUE_VARS = np.array([[1.0, 0.5], [0.5, 2.0]])
TRUE_WEIGHTS = np.array([0.3, 0.7])


def _sample(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    comp = rng.choice(2, size=n, p=TRUE_WEIGHTS)
    return TRUE_MEANS[comp] + rng.standard_normal((n, 2)) * np.sqrt(TRUE_VARS[comp])


def _reference_loglik(gmm: DiagGmmSet, x: np.ndarray) -> np.ndarray:
    out = np.zeros((len(x), gmm.num_pdfs))
    for p in range(gmm.num_pdfs):
        comps = []
        for m in range(gmm.means.shape[1]):
            if not np.isfinite(gmm.log_weights[p, m]):
                continue
            comps.append(gmm.log_weights[p, m]
                         + multivariate_normal(gmm.means[p, m], np.diag(gmm.variances[p, m])).logpdf(x))
        out[:, p] = logsumexp(np.stack(comps, 1), axis=1)
    return out


def test_em_recovers_generating_gmm():
    x = _sample(20000)
    pdf_ids = np.zeros(len(x), dtype=np.int64)
    gmm = DiagGmmSet.flat_start(1, x.mean(0), x.var(0))
    var_floor = np.full(2, 1e-3)
    logliks = []
    for it in range(30):
        stats = gmm.accumulate(x, pdf_ids)
        assert stats.frames == len(x)
        np.testing.assert_allclose(stats.occ.sum(), len(x), rtol=1e-9)
        logliks.append((gmm.total_gaussians(), stats.loglik / len(x)))
        gmm.update(stats, var_floor=var_floor)
        gmm.mix_up(2, stats.occ.sum(1))
    assert gmm.total_gaussians() == 2
    # EM never decreases the likelihood once the model size is fixed (up to the float32
    # rounding of the component scores, as Kaldi computes them: ~1e-7 per frame).
    two = [ll for n, ll in logliks if n == 2]
    assert len(two) >= 25
    for a, b in zip(two, two[1:]):
        assert b >= a - 2e-6, (a, b)
    assert two[-1] > two[0] + 0.01  # and it did climb
    # The final likelihood is close to that of the true model on the same data.
    true = DiagGmmSet(TRUE_MEANS[None], TRUE_VARS[None], np.log(TRUE_WEIGHTS)[None])
    true_ll = true.accumulate(x, pdf_ids).loglik / len(x)
    assert abs(two[-1] - true_ll) < 0.01

    order = np.argsort(gmm.means[0, :, 0])
    means, variances = gmm.means[0, order], gmm.variances[0, order]
    weights = np.exp(gmm.log_weights[0, order])
    np.testing.assert_allclose(means, TRUE_MEANS, atol=0.06)
    np.testing.assert_allclose(variances, TRUE_VARS, rtol=0.08)
    np.testing.assert_allclose(weights, TRUE_WEIGHTS, atol=0.015)
    np.testing.assert_allclose(weights.sum(), 1.0, atol=1e-12)


def _random_gmm(seed: int = 0, P: int = 3, M: int = 2, D: int = 3) -> DiagGmmSet:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 2, (P, M, D))
    variances = rng.uniform(0.3, 2.0, (P, M, D))
    w = rng.uniform(0.2, 1.0, (P, M))
    return DiagGmmSet(means, variances, np.log(w / w.sum(1, keepdims=True)))


def test_log_likelihoods_match_scipy():
    gmm = _random_gmm()
    x = np.random.default_rng(7).normal(0, 2, (50, 3))
    ref = _reference_loglik(gmm, x)
    got = gmm.log_likelihoods(x)
    assert got.shape == (50, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-3, rtol=1e-5)
    sub = gmm.log_likelihoods(x, pdfs=np.array([2, 0]))
    assert sub.shape == (50, 2)
    np.testing.assert_allclose(sub, got[:, [2, 0]], atol=1e-5)
    with pytest.raises(AsrError):
        gmm.log_likelihoods(np.zeros((4, 2)))


def test_padded_components_ignored():
    gmm = _random_gmm(seed=4)
    # Make pdf 1 a single Gaussian by removing its second component.
    lw = gmm.log_weights.copy()
    lw[1] = [0.0, -np.inf]
    gmm = DiagGmmSet(gmm.means, gmm.variances, lw)
    assert list(gmm.num_components()) == [2, 1, 2]
    x = np.random.default_rng(8).normal(0, 2, (20, 3))
    np.testing.assert_allclose(gmm.log_likelihoods(x), _reference_loglik(gmm, x), atol=1e-3, rtol=1e-5)


def test_accumulate_matches_reference_posteriors():
    gmm = _random_gmm(seed=9)
    rng = np.random.default_rng(10)
    x = rng.normal(0, 2, (40, 3))
    pdf_ids = rng.integers(0, 3, 40)
    stats = gmm.accumulate(x, pdf_ids)
    ref = _reference_loglik(gmm, x)
    # component scores are float32 (as Kaldi's); posteriors still sum to one in float64
    np.testing.assert_allclose(stats.loglik, ref[np.arange(40), pdf_ids].sum(), rtol=1e-6)
    np.testing.assert_allclose(stats.occ.sum(1), np.bincount(pdf_ids, minlength=3), rtol=1e-9)
    for p in range(3):
        np.testing.assert_allclose(stats.sx[p].sum(0), x[pdf_ids == p].sum(0), rtol=1e-9, atol=1e-9)


def test_accumulate_with_padding_and_two_jobs_is_exact():
    """Pdfs with fewer components than the widest (padding) and two processes: the same sums."""
    rng = np.random.default_rng(11)
    P, M, D = 7, 5, 4
    lw = np.log(rng.dirichlet(np.ones(M), size=P))
    for p, m in enumerate([5, 1, 2, 3, 5, 1, 4]):
        lw[p, m:] = -np.inf
    lw -= np.logaddexp.reduce(lw, axis=1, keepdims=True)
    gmm = DiagGmmSet(rng.normal(0, 2, (P, M, D)), rng.uniform(0.5, 2, (P, M, D)), lw)
    x = rng.normal(0, 2, (3000, D))
    pdf_ids = rng.integers(-1, P, 3000)  # -1: frames left out
    one = gmm.accumulate(x, pdf_ids)
    two = gmm.accumulate(x, pdf_ids, nj=3)
    for a, b in ((one.occ, two.occ), (one.sx, two.sx), (one.sxx, two.sxx)):
        np.testing.assert_array_equal(a, b)
    assert one.loglik == two.loglik
    ref = _reference_loglik(gmm, x)
    keep = pdf_ids >= 0
    np.testing.assert_allclose(one.loglik, ref[np.flatnonzero(keep), pdf_ids[keep]].sum(), rtol=1e-6)  # float32 scores
    assert np.all(one.occ[np.isinf(lw)] == 0)
    np.testing.assert_allclose(one.occ.sum(1), np.bincount(pdf_ids[keep], minlength=P), rtol=1e-9)


def test_variance_floor():
    rng = np.random.default_rng(11)
    x = np.stack([rng.normal(0, 1, 500), rng.normal(5, 0.01, 500)], 1)
    gmm = DiagGmmSet.flat_start(1, x.mean(0), x.var(0) + 1.0)
    floor = np.array([0.2, 0.5])
    gmm.update(gmm.accumulate(x, np.zeros(500, dtype=np.int64)), var_floor=floor)
    assert gmm.variances[0, 0, 1] == pytest.approx(0.5)
    assert gmm.variances[0, 0, 0] == pytest.approx(x[:, 0].var(), rel=1e-9)
    np.testing.assert_allclose(gmm.means[0, 0], x.mean(0), rtol=1e-9)
    assert (gmm.variances >= floor).all()


def test_mix_up_targets_and_weights():
    rng = np.random.default_rng(12)
    gmm = DiagGmmSet.flat_start(3, rng.normal(size=4), rng.uniform(0.5, 1.5, 4))
    occs = np.array([1000.0, 4000.0, 500.0])
    gmm.mix_up(10, occs)
    assert gmm.total_gaussians() == 10
    assert (gmm.num_components() >= 1).all()
    # More data -> at least as many Gaussians.
    n = gmm.num_components()
    assert n[1] >= n[0] >= n[2]
    np.testing.assert_allclose(np.exp(gmm.log_weights).sum(1), 1.0, atol=1e-12)
    assert gmm.means.shape[1] == n.max()
    # Likelihoods still well defined and consistent with the reference.
    x = rng.normal(size=(10, 4))
    np.testing.assert_allclose(gmm.log_likelihoods(x), _reference_loglik(gmm, x), atol=1e-3, rtol=1e-5)
    # A target not above the current count does nothing.
    before = gmm.means.copy()
    gmm.mix_up(5, occs)
    np.testing.assert_array_equal(gmm.means, before)
    # min_count limits the split: 500 frames allow at most 25 Gaussians at 20 frames each.
    small = DiagGmmSet.flat_start(1, np.zeros(2), np.ones(2))
    small.mix_up(100, np.array([500.0]))
    assert small.total_gaussians() == 25


def test_ragged_round_trip_keeps_every_component():
    rng = np.random.default_rng(12)
    lw = np.log(rng.dirichlet(np.ones(4), size=3))
    lw[0, 2:] = -np.inf
    lw[2, 1:] = -np.inf
    gmm = DiagGmmSet(rng.normal(size=(3, 4, 2)), rng.uniform(0.5, 1, (3, 4, 2)), lw)
    back = DiagGmmSet.from_ragged(gmm.to_ragged())
    assert back.means.shape == gmm.means.shape and list(back.num_components()) == [2, 4, 1]
    real = np.isfinite(lw)
    np.testing.assert_array_equal(back.log_weights, lw)
    np.testing.assert_array_equal(back.means[real], gmm.means[real])
    x = rng.normal(size=(5, 2))
    np.testing.assert_allclose(back.log_likelihoods(x), gmm.log_likelihoods(x))
