"""LDA, MLLT and fMLLR: the transforms of tri2 and tri3 (known answers and monotone objectives)."""

from __future__ import annotations

import numpy as np
import pytest

from asr.gmm.diag_gmm import DiagGmmSet
from asr.gmm.fmllr import FmllrStats, accumulate_fmllr, adapt_speakers, apply_fmllr, estimate_fmllr, fmllr_objective
from asr.hmm.alignments import load_transforms, save_transforms
from asr.gmm.lda_mllt import accumulate_full_cov, estimate_lda, estimate_mllt, mllt_objective, transform_gmm
from asr.utils import AsrError


def test_lda_finds_the_discriminant_subspace() -> None:
    rng = np.random.default_rng(0)
    D = 8
    centres = np.zeros((3, D))
    centres[1, 0], centres[2, 1] = 4.0, 4.0  # the classes differ in dims 0 and 1 only
    scale = np.diag(rng.uniform(0.5, 3.0, size=D))
    x = np.concatenate([(rng.normal(size=(3000, D)) + c) @ scale for c in centres])
    classes = np.repeat(np.arange(3), 3000)
    M = estimate_lda(x, classes, 2)
    # Variance the noise dims (2..7) put into the projection, against its unit within-class variance.
    noise = (M[:, 2:] ** 2 * np.diag(scale)[2:] ** 2).sum(1)
    assert noise.max() < 0.01
    y = x @ M.T
    within = sum(np.cov(y[classes == c].T) for c in range(3)) / 3
    np.testing.assert_allclose(within, np.eye(2), atol=0.05)  # unit within-class covariance


def test_lda_leaves_out_unlabelled_frames_and_checks_dims() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 4))
    with pytest.raises(AsrError, match="exceeds"):
        estimate_lda(x, np.zeros(500, dtype=int), 5)
    classes = np.full(500, -1)
    classes[:3] = 0
    with pytest.raises(AsrError, match="labelled frames"):
        estimate_lda(x, classes, 2)


def _random_gmm(rng, P: int, M: int, D: int) -> DiagGmmSet:
    return DiagGmmSet(rng.normal(scale=3.0, size=(P, M, D)), rng.uniform(0.5, 2.0, size=(P, M, D)),
                      np.log(np.full((P, M), 1.0 / M)))


def test_mllt_never_lowers_the_likelihood_and_decorrelates() -> None:
    rng = np.random.default_rng(2)
    D = 6
    mix = np.eye(D) + 0.5 * rng.normal(size=(D, D))  # one shared correlation for all classes
    ids = rng.integers(0, 4, size=8000)
    x = (rng.normal(size=(8000, D)) + 3 * rng.normal(size=(4, D))[ids]) @ mix.T
    gmm = DiagGmmSet(np.stack([x[ids == p].mean(0) for p in range(4)])[:, None],
                     np.stack([x[ids == p].var(0) for p in range(4)])[:, None], np.zeros((4, 1)))
    stats = accumulate_full_cov(gmm, x, ids)
    previous = mllt_objective(np.eye(D), stats)
    for iters in (1, 2, 4, 8):
        value = mllt_objective(estimate_mllt(stats, iters), stats)
        assert value >= previous - 1e-9
        previous = value
    A = estimate_mllt(stats, 10)
    y = x @ A.T
    corr = np.corrcoef(y[ids == 0].T)
    assert np.abs(corr - np.eye(D)).max() < 0.1  # the shared correlation is gone
    # The model moved into A's space scores the transformed frames better than before.
    before = gmm.log_likelihoods(x)[np.arange(len(x)), ids].mean() + 0.0
    transform_gmm(gmm, A, stats)
    after = gmm.log_likelihoods(y)[np.arange(len(x)), ids].mean() + np.linalg.slogdet(A)[1]
    assert after > before


def _speaker_data(rng, gmm: DiagGmmSet, n: int):
    ids = rng.integers(0, gmm.num_pdfs, size=n)
    comp = rng.integers(0, gmm.means.shape[1], size=n)
    clean = gmm.means[ids, comp] + rng.normal(size=(n, gmm.dim)) * np.sqrt(gmm.variances[ids, comp])
    return clean, ids


def _affine(rng, D: int) -> tuple[np.ndarray, np.ndarray]:
    return np.eye(D) + 0.3 * rng.normal(size=(D, D)), rng.normal(size=D)


def test_fmllr_recovers_a_known_affine_map_and_raises_the_likelihood() -> None:
    rng = np.random.default_rng(3)
    D = 5
    gmm = _random_gmm(rng, 6, 1, D)
    clean, ids = _speaker_data(rng, gmm, 20000)
    A, b = _affine(rng, D)
    stats = accumulate_fmllr(gmm, clean @ A.T + b, ids)
    W = estimate_fmllr(stats, 10)
    A_inv = np.linalg.inv(A)
    np.testing.assert_allclose(W, np.concatenate([A_inv, (-A_inv @ b)[:, None]], 1), atol=0.05)
    identity = np.concatenate([np.eye(D), np.zeros((D, 1))], 1)
    assert fmllr_objective(W, stats) > fmllr_objective(identity, stats)
    assert fmllr_objective(estimate_fmllr(stats, 1), stats) > fmllr_objective(identity, stats)


def test_fmllr_keeps_the_identity_for_too_few_frames() -> None:
    rng = np.random.default_rng(4)
    gmm = _random_gmm(rng, 3, 2, 4)
    x, ids = _speaker_data(rng, gmm, 30)
    W = estimate_fmllr(accumulate_fmllr(gmm, x, ids), min_count=50)
    np.testing.assert_array_equal(W, np.concatenate([np.eye(4), np.zeros((4, 1))], 1))


def test_fmllr_stats_and_transforms_round_trip_through_disk(tmp_path) -> None:
    rng = np.random.default_rng(5)
    gmm = _random_gmm(rng, 4, 2, 3)
    x, ids = _speaker_data(rng, gmm, 500)
    stats = accumulate_fmllr(gmm, x, ids, frame_weights=rng.uniform(size=500))
    stats.save(tmp_path / "spk1.stats.npz")
    back = FmllrStats.load(tmp_path / "spk1.stats.npz")
    assert back.beta == stats.beta
    np.testing.assert_array_equal(back.K, stats.K)
    np.testing.assert_array_equal(back.G, stats.G)
    transforms = {"spk1": estimate_fmllr(stats), "spk-2": estimate_fmllr(back, 3)}
    save_transforms(tmp_path / "trans.npz", transforms)
    loaded = load_transforms(tmp_path / "trans.npz")
    assert sorted(loaded) == ["spk-2", "spk1"]
    np.testing.assert_array_equal(loaded["spk1"], transforms["spk1"])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(AsrError, match="bad.npz"):
        load_transforms(tmp_path / "bad.npz")


def test_each_utterance_gets_its_own_speakers_transform() -> None:
    rng = np.random.default_rng(6)
    D = 4
    gmm = _random_gmm(rng, 5, 1, D)
    feats, pdfs, clean_of, utt2spk = {}, {}, {}, {}
    for spk in ("a", "b"):
        A, b = _affine(rng, D)
        for k in range(3):
            clean, ids = _speaker_data(rng, gmm, 3000)
            utt = f"{spk}-{k}"
            feats[utt], pdfs[utt], clean_of[utt], utt2spk[utt] = (clean @ A.T + b).astype(np.float32), ids, clean, spk
    adapted, transforms = adapt_speakers(gmm, feats, pdfs, utt2spk)
    assert sorted(transforms) == ["a", "b"]
    for utt in feats:
        assert np.abs(adapted[utt] - clean_of[utt]).mean() < 0.05
        other = "b" if utt2spk[utt] == "a" else "a"
        assert np.abs(apply_fmllr(feats[utt], transforms[other]) - clean_of[utt]).mean() > 0.3
