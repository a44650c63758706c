"""Bounded memory: features read from the ark/scp archive chunk by chunk give the
in-memory results (GMM statistics, tree statistics, EM), and a streamed DNN epoch visits
every frame once while holding one chunk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.arkio import write_ark_scp
from asr.datadir import write_kv
from asr.features import (FeatureArchive, FeaturePipeline, chunk_utterances, cmvn_stats, frame_count,
                          load_features, training_features)
from asr.gmm.diag_gmm import DiagGmmSet
from asr.gmm.em import GmmTrainConfig, accumulate_streamed
from asr.nnet.frames import FrameSet, FrameStream
from asr.nnet.train import TrainConfig
from asr.utils import AsrError

ASR = Path(sys.executable).parent / "asr"


def _data_dir(path: Path, num_utts: int = 12, dim: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """A data dir with stored raw features (3 speakers) and per-speaker CMVN; its raw features."""
    rng = np.random.default_rng(seed)
    raw = {f"s{i % 3}-u{i:02d}": rng.normal(i % 3, 1.0, (int(rng.integers(5, 40)), dim)).astype(np.float32)
           for i in range(num_utts)}
    path.mkdir(parents=True, exist_ok=True)
    write_ark_scp(path / "feats.ark", path / "feats.scp", raw)
    utt2spk = {u: u.split("-")[0] for u in sorted(raw)}
    write_kv(path / "utt2spk", utt2spk)
    write_kv(path / "wav.scp", {u: f"/nonexistent/{u}.wav" for u in sorted(raw)})
    write_kv(path / "utt2num_frames", {u: str(len(raw[u])) for u in sorted(raw)})
    spk = sorted(set(utt2spk.values()))
    write_ark_scp(path / "cmvn.ark", path / "cmvn.scp",
                  {s: cmvn_stats(raw[u] for u in sorted(raw) if utt2spk[u] == s) for s in spk})
    return raw


def test_archive_reads_what_load_features_loads(tmp_path: Path) -> None:
    raw = _data_dir(tmp_path / "d")
    pipeline = FeaturePipeline(delta_order=2)
    loaded = load_features(tmp_path / "d", pipeline)
    archive = FeatureArchive(tmp_path / "d", pipeline)
    assert list(archive) == sorted(raw) and len(archive) == len(raw)
    for u in raw:
        np.testing.assert_array_equal(archive[u], loaded[u])
        assert frame_count(archive, u) == len(raw[u]) == frame_count(loaded, u)
    assert "nope" not in archive
    with pytest.raises(KeyError):
        archive["nope"]
    assert isinstance(training_features(tmp_path / "d", pipeline, 0), dict)
    assert isinstance(training_features(tmp_path / "d", pipeline, 100), FeatureArchive)
    # post-processing (a speaker's fMLLR transform) is applied per utterance
    shifted = FeatureArchive(tmp_path / "d", pipeline, post=lambda u, x: x + 1.0)
    np.testing.assert_allclose(shifted[sorted(raw)[0]], loaded[sorted(raw)[0]] + 1.0)


def test_archive_names_a_missing_utterance(tmp_path: Path) -> None:
    _data_dir(tmp_path / "d")
    with pytest.raises(AsrError, match="ghost has no features"):
        FeatureArchive(tmp_path / "d", FeaturePipeline(), utts=["ghost"])


def test_chunks_are_consecutive_and_close_at_the_size() -> None:
    lengths = {f"u{i}": n for i, n in enumerate([5, 7, 3, 10, 1, 4])}
    utts = list(lengths)
    chunks = chunk_utterances(utts, lengths, 10)
    assert [u for c in chunks for u in c] == utts
    assert chunks == [["u0", "u1"], ["u2", "u3"], ["u4", "u5"]]
    for c in chunks[:-1]:  # every chunk but the last reaches the size, and only with its last utterance
        assert sum(lengths[u] for u in c) >= 10 > sum(lengths[u] for u in c[:-1])
    assert chunk_utterances(utts, lengths, 0) == [utts]
    assert chunk_utterances([], lengths, 10) == []


def _gmm(dim: int, pdfs: int, seed: int = 1) -> DiagGmmSet:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, (pdfs, 3, dim))
    gmm = DiagGmmSet(means, np.full((pdfs, 3, dim), 1.5), np.log(np.full((pdfs, 3), 1 / 3)))
    return gmm


@pytest.mark.parametrize("chunk", [1, 30, 100, 10_000])
def test_streamed_statistics_equal_in_memory(tmp_path: Path, chunk: int) -> None:
    _data_dir(tmp_path / "d", num_utts=20)
    pipeline = FeaturePipeline(delta_order=1)
    feats = load_features(tmp_path / "d", pipeline)
    archive = FeatureArchive(tmp_path / "d", pipeline)
    rng = np.random.default_rng(2)
    pdfs = {u: rng.integers(0, 4, len(x)) for u, x in feats.items()}
    utts = sorted(feats)
    gmm = _gmm(feats[utts[0]].shape[1], 4)
    ref = gmm.accumulate(np.concatenate([feats[u] for u in utts]), np.concatenate([pdfs[u] for u in utts]))
    got = accumulate_streamed(gmm, archive, pdfs, utts, GmmTrainConfig(chunk_frames=chunk))
    # Component scores are float32 matmuls, whose rounding depends on how many frames go in
    # together: equal to float32 precision, not bit for bit.
    assert got.frames == ref.frames
    np.testing.assert_allclose(got.occ, ref.occ, rtol=1e-5)
    np.testing.assert_allclose(got.sx, ref.sx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sxx, ref.sxx, rtol=1e-5)
    assert got.loglik == pytest.approx(ref.loglik, rel=1e-7)
    two = accumulate_streamed(gmm, archive, pdfs, utts, GmmTrainConfig(chunk_frames=chunk, nj=2))
    np.testing.assert_array_equal(two.sxx, got.sxx)  # any nj: the same sums in the same order


def test_streamed_statistics_name_a_length_mismatch(tmp_path: Path) -> None:
    _data_dir(tmp_path / "d")
    archive = FeatureArchive(tmp_path / "d", FeaturePipeline())
    utts = list(archive)
    pdfs = {u: np.zeros(frame_count(archive, u), dtype=np.int64) for u in utts}
    pdfs[utts[3]] = pdfs[utts[3]][:-1]
    with pytest.raises(AsrError, match=f"utterance {utts[3]}: .* feature frames but"):
        accumulate_streamed(_gmm(15, 1), archive, pdfs, utts, GmmTrainConfig(chunk_frames=50))


def test_chunked_tree_statistics_equal_whole(tiny_mono) -> None:
    from asr.tree.stats import accumulate_tree_stats

    trans = tiny_mono.trans
    rng = np.random.default_rng(0)

    def walk(phone: int) -> list[int]:
        """Transition ids through one phone's HMM: each state loops 0-2 times, then moves on."""
        internal, exits = trans.phone_arcs(phone)
        out = []
        for state in range(trans.topo.num_states(phone)):
            loop = [t for a, b, t in internal if a == b == state]
            out += loop[:1] * int(rng.integers(0, 3))
            out += [t for a, b, t in internal if a == state and b == state + 1][:1] or [t for a, t in exits if a == state][:1]
        return out

    feats, tids = {}, {}
    for i in range(8):
        seq = [t for p in rng.choice([1, 2, 3], size=4) for t in walk(int(p))]
        tids[f"u{i}"] = np.array(seq)
        feats[f"u{i}"] = rng.normal(0, 1, (len(seq), 3)).astype(np.float32)
    whole = accumulate_tree_stats(feats, tids, trans)
    for chunk in (1, 7, 25):
        part = accumulate_tree_stats(feats, tids, trans, chunk)
        np.testing.assert_array_equal(part.keys, whole.keys)
        np.testing.assert_array_equal(part.count, whole.count)
        np.testing.assert_allclose(part.sum, whole.sum, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(part.sumsq, whole.sumsq, rtol=1e-12)


class _CountingArchive(dict):
    """In-memory features that count reads and the most utterances alive between reads."""

    def __init__(self, *a):
        super().__init__(*a)
        self.reads: dict[str, int] = {}

    def __getitem__(self, u):
        self.reads[u] = self.reads.get(u, 0) + 1
        return super().__getitem__(u)


def test_a_streamed_epoch_visits_every_frame_once_holding_one_chunk() -> None:
    rng = np.random.default_rng(0)
    feats = _CountingArchive({f"u{i:02d}": rng.normal(0, 1, (int(rng.integers(3, 30)), 4)).astype(np.float32)
                              for i in range(40)})
    targets = {u: np.arange(len(x)) + 1000 * i for i, (u, x) in enumerate(sorted(feats.items()))}
    utts = sorted(feats)
    stream = FrameStream(feats, targets, utts, chunk_frames=60)
    assert len(stream) == sum(len(x) for x in feats.values())
    longest = max(len(x) for x in feats.values())
    order = stream.order(torch.Generator().manual_seed(3))
    seen, first_chunk = [], None
    for frames, perm in stream.parts(order):
        assert len(frames) < 60 + longest  # one chunk: its size plus at most one utterance
        assert sorted(perm.tolist()) == list(range(len(frames)))
        seen.extend(frames.targets[perm].tolist())
        first_chunk = first_chunk or frames.utts
    everything = sorted(int(t) for y in targets.values() for t in y)
    assert sorted(seen) == everything  # each frame once
    assert set(feats.reads.values()) == {1}  # each utterance read once an epoch
    assert first_chunk != utts[:len(first_chunk)]  # utterances shuffled across chunks
    again = stream.order(torch.Generator().manual_seed(3))
    assert again.chunks == order.chunks and again.seed == order.seed  # every DDP rank walks the same order
    # windows at chunk edges stay inside their utterance, as in memory
    whole = FrameSet.build(feats, targets, utts)
    row_of = {int(t): i for i, t in enumerate(whole.targets.tolist())}
    for frames, _ in stream.parts(stream.order(None)):
        rows = torch.tensor([row_of[int(t)] for t in frames.targets])
        torch.testing.assert_close(frames.batch(torch.arange(len(frames)), 2)[0], whole.batch(rows, 2)[0])


def test_streaming_options_are_checked() -> None:
    with pytest.raises(AsrError, match="feed-forward"):
        TrainConfig.from_flat({"chunk_frames": 1000, "kind": "rnn"})
    with pytest.raises(AsrError, match="feed-forward"):
        TrainConfig.from_flat({"chunk_frames": 1000, "pretrain": "rbm"})


def _run(*args) -> None:
    run = subprocess.run([str(ASR), *map(str, args)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]


def test_streamed_triphone_training_equals_in_memory(yesno_run: Path, tmp_path: Path) -> None:
    exp, data = yesno_run / "exp" / "yesno", yesno_run / "data" / "yesno"
    logs, ctms = {}, {}
    for chunk in (0, 700):
        out = tmp_path / f"tri_{chunk}"
        _run("train-tri", "--data", data / "train", "--lang", data / "lang", "--ali", exp / "mono" / "ali",
             "--out", out, "--set", "num_leaves=20", "--set", "total_gauss=80", "--set", "num_iters=6",
             "--set", "max_iter_inc=4", "--set", "realign_iters=[3]", "--set", f"chunk_frames={chunk}")
        logs[chunk] = [r["loglik_per_frame"] for r in json.loads((out / "train_log.json").read_text())]
        ctms[chunk] = (out / "ali" / "phones.ctm").read_text()
    np.testing.assert_allclose(logs[700], logs[0], rtol=1e-6)
    assert ctms[700] == ctms[0]


def test_streamed_dnn_training(yesno_run: Path, tmp_path: Path) -> None:
    exp, data = yesno_run / "exp" / "yesno", yesno_run / "data" / "yesno"
    losses = {}
    for chunk in (0, 2000):
        out = tmp_path / f"dnn_{chunk}"
        _run("train-dnn", "--data", data / "train", "--ali", exp / "tri1" / "ali", "--gmm", exp / "tri1",
             "--out", out, "--set", "num_layers=1", "--set", "hidden_dim=32", "--set", "max_epochs=3",
             "--set", "min_epochs=3", "--set", f"chunk_frames={chunk}", "--set", "threads=1")
        log = json.loads((out / "train_log.json").read_text())
        assert len(log) == 3
        losses[chunk] = log[-1]["cv_loss"]
        assert (out / "nnet.pt").exists()
    # Another shuffle (across chunks, then within one), so not the same weights, but as good.
    assert losses[2000] == pytest.approx(losses[0], rel=0.15)
