from __future__ import annotations

import numpy as np
import pytest

from asr.features import (FeatureConfig, FeaturePipeline, add_deltas, apply_cmvn, cmvn_stats, compute_features,
                          load_features, make_features, sliding_cmvn, splice_frames, transform)
from asr.utils import AsrError


def _noise(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("kind,dim", [("mfcc", 13), ("fbank", 40)])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_compute_features_shape(kind, dim, rate):
    cfg = FeatureConfig(kind=kind, sample_rate=rate, num_mel_bins=23 if kind == "mfcc" else 40)
    assert cfg.dim == dim
    window, hop = rate * 25 // 1000, rate * 10 // 1000
    for n in (window, window + hop - 1, window + hop, rate // 2 + 37):
        f = compute_features(_noise(n), cfg)
        assert f.dtype == np.float32
        assert f.shape == (1 + (n - window) // hop, dim)
        assert np.isfinite(f).all()


def test_compute_features_deterministic_and_too_short():
    cfg = FeatureConfig()
    x = _noise(8000, seed=3)
    np.testing.assert_array_equal(compute_features(x, cfg), compute_features(x.copy(), cfg))
    for kind, dim in (("mfcc", 13), ("fbank", 23)):
        f = compute_features(_noise(399), FeatureConfig(kind=kind))
        assert f.shape == (0, dim)
        assert f.dtype == np.float32


def test_feature_config_from_dict():
    cfg = FeatureConfig(kind="fbank", sample_rate=8000, num_mel_bins=40)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(AsrError, match="bogus"):
        FeatureConfig.from_dict({"kind": "mfcc", "bogus": 1})
    with pytest.raises(AsrError):
        FeatureConfig(kind="plp")


def test_add_deltas_linear_ramp():
    T, D = 20, 3
    t = np.arange(T, dtype=np.float32)
    feats = np.stack([t, 2 * t + 5, -t], axis=1)
    out = add_deltas(feats, order=2, window=2)
    assert out.shape == (T, D * 3)
    np.testing.assert_array_equal(out[:, :D], feats)
    delta, ddelta = out[:, D:2 * D], out[:, 2 * D:]
    slope = np.array([1.0, 2.0, -1.0])
    # Delta window reaches +-2 frames, delta-delta +-4: interior frames see no edge replication.
    np.testing.assert_allclose(delta[2:T - 2], np.tile(slope, (T - 4, 1)), atol=1e-5)
    np.testing.assert_allclose(ddelta[4:T - 4], 0.0, atol=1e-5)
    # At the edges replication flattens the ramp: the first delta is smaller than the slope.
    assert abs(delta[0, 0]) < 1.0
    assert add_deltas(feats, order=0) is feats
    assert add_deltas(feats, order=1).shape == (T, 2 * D)


def test_add_deltas_matches_reference():
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((15, 4)).astype(np.float32)
    out = add_deltas(feats, order=1, window=2)
    T = len(feats)
    ref = np.zeros_like(feats, dtype=np.float64)
    for t in range(T):
        for n in range(-2, 3):
            ref[t] += n * feats[min(max(t + n, 0), T - 1)]
    ref /= 10.0
    np.testing.assert_allclose(out[:, 4:], ref, atol=1e-5)


def test_cmvn_stats_layout_and_apply():
    rng = np.random.default_rng(2)
    a = (rng.standard_normal((30, 5)) * [1, 2, 3, 4, 5] + [10, -3, 0, 2, 7]).astype(np.float32)
    b = (rng.standard_normal((20, 5)) * 2 + 1).astype(np.float32)
    stats = cmvn_stats([a, b])
    assert stats.shape == (2, 6)
    assert stats[0, -1] == 50
    assert stats[1, -1] == 0
    both = np.concatenate([a, b]).astype(np.float64)
    np.testing.assert_allclose(stats[0, :-1], both.sum(0), rtol=1e-10)
    np.testing.assert_allclose(stats[1, :-1], (both**2).sum(0), rtol=1e-10)

    out = apply_cmvn(both.astype(np.float32), stats)
    assert out.dtype == np.float32 and out.shape == (50, 5)
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(0), both.std(0), rtol=1e-4)
    outv = apply_cmvn(both.astype(np.float32), stats, norm_vars=True)
    np.testing.assert_allclose(outv.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(outv.var(0), 1.0, rtol=1e-4)
    with pytest.raises(AsrError):
        cmvn_stats([])


def test_transform_per_utterance_cmvn():
    rng = np.random.default_rng(5)
    f = (rng.standard_normal((25, 3)) + 4).astype(np.float32)
    pipe = FeaturePipeline(cmvn=True, norm_vars=False, delta_order=2, splice=1)
    out = transform(f, pipe)
    assert out.shape == (25, pipe.output_dim(3)) == (25, 27)
    # Centre block of the splice is the CMVN'd static + delta features of that frame.
    centre = out[:, 9:18]
    np.testing.assert_allclose(centre[:, :3].mean(0), 0.0, atol=1e-5)


def test_splice_frames():
    T, D, k = 7, 2, 2
    feats = np.arange(T * D, dtype=np.float32).reshape(T, D)
    out = splice_frames(feats, k)
    assert out.shape == (T, D * (2 * k + 1))
    blocks = out.reshape(T, 2 * k + 1, D)
    np.testing.assert_array_equal(blocks[:, k], feats)
    for t in range(T):
        for j, off in enumerate(range(-k, k + 1)):
            np.testing.assert_array_equal(blocks[t, j], feats[min(max(t + off, 0), T - 1)])
    # Edges replicated.
    np.testing.assert_array_equal(blocks[0, 0], feats[0])
    np.testing.assert_array_equal(blocks[-1, -1], feats[-1])
    assert splice_frames(feats, 0) is feats


def _window_mean_by_hand(f: np.ndarray, window: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the ``window`` frames centred on t, moved inside the utterance."""
    T = len(f)
    n = min(window, T)
    lo = min(max(t - window // 2, 0), T - n)
    part = f[lo:lo + n].astype(np.float64)
    return part.mean(0), part.var(0)


@pytest.mark.parametrize("T,window", [(1, 600), (7, 3), (40, 10), (40, 11), (50, 600), (700, 600), (25, 1)])
def test_sliding_cmvn_equals_brute_force_window_mean(T, window):
    rng = np.random.default_rng(T + window)
    f = (rng.standard_normal((T, 4)) * 3 + np.linspace(0, 20, T)[:, None]).astype(np.float32)
    for norm_vars in (False, True):
        out = sliding_cmvn(f, window, norm_vars)
        for t in range(T):
            mean, var = _window_mean_by_hand(f, window, t)
            want = (f[t] - mean) / (np.sqrt(np.maximum(var, 1e-10)) if norm_vars else 1.0)
            np.testing.assert_allclose(out[t], want, rtol=1e-4, atol=1e-4)
    with pytest.raises(AsrError):
        sliding_cmvn(f, 0)


def test_sliding_cmvn_follows_a_channel_change_that_global_cmvn_cannot():
    # The second half of the "file" is 10 units louder: a 100-frame window removes the jump.
    f = np.concatenate([np.zeros((300, 2)), np.full((300, 2), 10.0)]).astype(np.float32)
    out = sliding_cmvn(f, 100)
    assert np.abs(out[:240]).max() < 1e-5 and np.abs(out[360:]).max() < 1e-5
    assert np.abs(apply_cmvn(f, cmvn_stats([f]))).min() == pytest.approx(5.0)


def test_sliding_cmvn_is_the_same_for_a_data_dir_and_a_single_file(tmp_path):
    import soundfile as sf

    from asr.datadir import DataDir

    rate = 16000
    wavs = {"s-1": _noise(rate), "s-2": 3 * _noise(2 * rate, 1)}
    for u, x in wavs.items():
        sf.write(tmp_path / f"{u}.wav", x, rate)
    DataDir(wav={u: str(tmp_path / f"{u}.wav") for u in wavs}, text={u: ["A"] for u in wavs},
            utt2spk={u: "s" for u in wavs}).write(tmp_path / "d")
    make_features(tmp_path / "d", FeatureConfig(dither=0.0))
    sliding = FeaturePipeline(cmvn=True, cmvn_window=100, delta_order=0)
    speaker = FeaturePipeline(cmvn=True, delta_order=0)
    from_dir, by_speaker = load_features(tmp_path / "d", sliding), load_features(tmp_path / "d", speaker)
    for u, x in wavs.items():
        raw = compute_features(sf.read(tmp_path / f"{u}.wav", dtype="float32")[0], FeatureConfig(dither=0.0))
        # training (the data dir) and decoding (one file) normalise alike; speaker CMVN does not
        np.testing.assert_allclose(from_dir[u], transform(raw, sliding), atol=1e-4)
        np.testing.assert_allclose(from_dir[u], sliding_cmvn(raw, 100), atol=1e-4)
        assert not np.allclose(by_speaker[u], from_dir[u], atol=1e-2)


def test_features_with_three_jobs_equal_one(tmp_path):
    import soundfile as sf

    from asr.datadir import DataDir

    rate = 16000
    wavs = {f"s{k % 2}-{k}": _noise(rate // 2 + 1000 * k, k) for k in range(5)}
    for u, x in wavs.items():
        sf.write(tmp_path / f"{u}.wav", x, rate)
    for nj in (1, 3):
        DataDir(wav={u: str(tmp_path / f"{u}.wav") for u in wavs}, text={u: ["A"] for u in wavs},
                utt2spk={u: u.split("-")[0] for u in wavs}).write(tmp_path / f"d{nj}")
        make_features(tmp_path / f"d{nj}", FeatureConfig(dither=0.0), nj=nj)
    raw = FeaturePipeline(cmvn=False, delta_order=0)
    one, three = load_features(tmp_path / "d1", raw), load_features(tmp_path / "d3", raw)
    assert list(one) == list(three) and len(one) == 5
    assert (tmp_path / "d1" / "feats.ark").read_bytes() == (tmp_path / "d3" / "feats.ark").read_bytes()
    for u in one:
        np.testing.assert_array_equal(one[u], three[u])
    assert (tmp_path / "d1" / "cmvn.ark").read_bytes() == (tmp_path / "d3" / "cmvn.ark").read_bytes()
