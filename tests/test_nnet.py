"""Hybrid DNN-HMM pieces: splicing, networks, gradients, priors, training steps, model dirs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from asr.decode.config import DecoderConfig
from asr.decode.decoder import Decoder
from asr.features import FeatureConfig, FeaturePipeline, splice_frames
from asr.graph.compile import compile_graph
from asr.lang.arpa import LmAutomaton
from asr.nnet.frames import FrameSet, splice, window_indices
from asr.nnet.model import DnnHmm, Ensemble, state_log_priors
from asr.nnet.network import AcousticNet, NetConfig
from asr.nnet.optim import OPTIMIZERS
from asr.nnet.train import TrainConfig, make_optimizer, run_epoch, split_speakers
from asr.utils import AsrError


def test_splice_matches_kaldi_style_splicing():
    x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    ours = splice(torch.from_numpy(x), 2).numpy()
    assert ours.shape == (7, 15)
    np.testing.assert_array_equal(ours, splice_frames(x, 2))
    # Windows never cross into the neighbouring utterance.
    idx = window_indices(torch.tensor([0, 4, 5]), torch.tensor([0, 0, 5]), torch.tensor([4, 4, 9]), 2)
    assert idx.tolist() == [[0, 0, 0, 1, 2], [2, 3, 4, 4, 4], [5, 5, 5, 6, 7]]


@pytest.mark.parametrize("kind", ["dnn", "tdnn"])
@pytest.mark.parametrize("depth", [1, 3])
def test_layer_count_equals_configured_depth(kind, depth):
    net = AcousticNet(NetConfig(kind=kind, num_layers=depth, hidden_dim=8, context=3), 5, 4)
    assert net.num_hidden_layers == depth
    kinds = (torch.nn.Conv1d,) if kind == "tdnn" else (torch.nn.Linear,)
    assert sum(isinstance(m, kinds) for m in net.hidden.modules()) == depth
    assert net(torch.zeros(2, 5 * 7)).shape == (2, 4)


def test_tdnn_dilations_cover_the_context_exactly():
    assert NetConfig(kind="tdnn", num_layers=3, context=5).dilations() == [2, 2, 1]
    assert NetConfig(kind="tdnn", num_layers=4, context=2).dilations() == [1, 1, 0, 0]
    assert NetConfig(kind="tdnn", num_layers=2, context=4, tdnn_dilations=[1, 3]).dilations() == [1, 3]
    with pytest.raises(AsrError, match="summing"):
        NetConfig(kind="tdnn", num_layers=2, context=4, tdnn_dilations=[1, 1]).dilations()
    for bad in ({"kind": "transformer"}, {"kind": "rnn", "cell": "lstmp"}, {"activation": "swish"}, {"init": "orthogonal"}, {"num_layers": 0}):
        with pytest.raises(AsrError):
            NetConfig(**bad)


def test_tdnn_on_windows_equals_tdnn_over_the_utterance():
    """The window formulation computes what a sequence TDNN computes at each frame."""
    torch.manual_seed(0)
    cfg = NetConfig(kind="tdnn", num_layers=3, hidden_dim=6, context=4, batch_norm=False, activation="tanh")
    net = AcousticNet(cfg, 3, 5).double().eval()
    x = torch.randn(20, 3, dtype=torch.float64)
    per_window = net(splice(x, 4))
    # Sequence TDNN: pad the utterance by repeating edge frames, run the convolutions once.
    padded = torch.cat([x[:1].repeat(4, 1), x, x[-1:].repeat(4, 1)]).T[None]  # (1, D, T + 8)
    h = padded
    for block in net.hidden:
        h = block.act(block.layer(h))
    seq = net.output(h[0].T)
    torch.testing.assert_close(per_window, seq)


@pytest.mark.parametrize("kind", ["dnn", "tdnn"])
def test_numeric_gradient_of_the_loss(kind):
    torch.manual_seed(1)
    cfg = NetConfig(kind=kind, num_layers=2, hidden_dim=5, context=1, activation="tanh", batch_norm=False)
    net = AcousticNet(cfg, 3, 4).double()
    x = torch.randn(6, 9, dtype=torch.float64)
    y = torch.randint(0, 4, (6,))

    def loss() -> torch.Tensor:
        return torch.nn.functional.cross_entropy(net(x), y)

    net.zero_grad()
    loss().backward()
    eps = 1e-6
    for p in net.parameters():
        flat = p.data.view(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 7)):
            old = flat[i].item()
            flat[i] = old + eps
            up = loss().item()
            flat[i] = old - eps
            down = loss().item()
            flat[i] = old
            assert p.grad.view(-1)[i].item() == pytest.approx((up - down) / (2 * eps), abs=1e-7, rel=1e-5)


def test_priors_sum_to_one_and_are_floored():
    lp = state_log_priors(np.array([0, 10, 30, 0, 60]), floor=1e-4)
    p = np.exp(lp)
    assert p.sum() == pytest.approx(1.0)
    assert (p > 0).all() and p[0] == pytest.approx(p[3]) == pytest.approx(1e-4 / (1 + 2e-4))
    assert p[4] == pytest.approx(0.6, rel=1e-3)
    with pytest.raises(AsrError):
        state_log_priors(np.zeros(3))


def _separable(n_per_class: int = 200, classes: int = 4, dim: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(classes, dim))
    feats, targets = {}, {}
    for c in range(classes):
        for k in range(4):
            utt = f"spk{k}_c{c}"
            feats[utt] = (centres[c] + rng.normal(0, 1, size=(n_per_class // 4, dim))).astype(np.float32)
            targets[utt] = np.full(n_per_class // 4, c)
    return feats, targets


def test_tiny_dnn_learns_separable_frames():
    torch.manual_seed(0)
    feats, targets = _separable()
    frames = FrameSet.build(feats, targets, sorted(feats))
    cfg = TrainConfig(net=NetConfig(num_layers=2, hidden_dim=32, context=0), learning_rate=3e-3, batch_size=32)
    net = AcousticNet(cfg.net, 6, 4)
    opt = make_optimizer(net, cfg)
    for _ in range(5):
        run_epoch(net, frames, torch.randperm(len(frames)), cfg, opt, "test")
    loss, acc = run_epoch(net, frames, None, cfg, None, "eval")
    assert acc > 0.97 and loss < 0.2


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("init", ["lecun", "xavier", "he", "default"])
def test_every_activation_and_initialiser_trains_a_step(activation, init):
    _one_step(NetConfig(num_layers=2, hidden_dim=8, context=1, activation=activation, init=init, dropout=0.1),
              "adam")


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("kind", ["dnn", "tdnn"])
def test_every_optimizer_trains_a_step(optimizer, kind):
    _one_step(NetConfig(kind=kind, num_layers=2, hidden_dim=8, context=1), optimizer)


def _one_step(net_cfg: NetConfig, optimizer: str) -> None:
    torch.manual_seed(0)
    feats, targets = _separable(n_per_class=40)
    frames = FrameSet.build(feats, targets, sorted(feats))
    cfg = TrainConfig(net=net_cfg, optimizer=optimizer, learning_rate=0.1 if optimizer != "adam" else 1e-2,
                      weight_decay=1e-4, batch_size=len(frames))
    net = AcousticNet(net_cfg, 6, 4)
    before = [p.detach().clone() for p in net.parameters()]
    loss, _ = run_epoch(net, frames, torch.arange(len(frames)), cfg, make_optimizer(net, cfg), "step")
    assert np.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_held_out_split_is_by_speaker():
    from asr.datadir import DataDir

    utts = [f"s{k}-u{i}" for k in range(10) for i in range(3)]
    data = DataDir(wav={u: "x.wav" for u in utts}, text={u: ["A"] for u in utts},
                   utt2spk={u: u.split("-")[0] for u in utts})
    tr, cv = split_speakers(data, utts, 0.2, seed=0)
    assert len(cv) == 6 and not ({data.utt2spk[u] for u in tr} & {data.utt2spk[u] for u in cv})
    assert sorted(tr + cv) == sorted(utts)


@pytest.fixture(scope="module")
def tiny_system(tiny_mono):
    phones, words, trans, ctx, lex = tiny_mono.phones, tiny_mono.words, tiny_mono.trans, tiny_mono.ctx, tiny_mono.lex
    lm = LmAutomaton(1, 0, [(0, "X", 0, 0.7), (0, "Y", 0, 0.7)], [], {0: 0.7})
    graph = compile_graph(lex, words, phones, lm, trans, ctx)
    return phones, words, lex, trans, ctx, graph


def _dnn(tiny_system, seed: int) -> DnnHmm:
    phones, words, lex, trans, ctx, _ = tiny_system
    torch.manual_seed(seed)
    net = AcousticNet(NetConfig(num_layers=2, hidden_dim=16, context=2), 4, ctx.num_pdfs).eval()
    priors = state_log_priors(np.arange(1, ctx.num_pdfs + 1))
    return DnnHmm(phones, words, lex, trans, ctx, net, priors, FeatureConfig(), FeaturePipeline(delta_order=0),
                  prior_scale=0.8)


def test_scaled_likelihoods_are_posteriors_over_priors(tiny_system):
    model = _dnn(tiny_system, 0)
    x = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    logpost = torch.log_softmax(model.net(splice(torch.from_numpy(x), 2)), -1).detach().numpy()
    np.testing.assert_allclose(model.scores(x), logpost - 0.8 * model.log_priors, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.exp(model.log_posteriors(x)).sum(1), 1.0, rtol=1e-5)
    with pytest.raises(AsrError, match="dimension"):
        model.scores(np.zeros((3, 5), dtype=np.float32))


def test_model_dir_reloads_and_decodes_identically(tiny_system, tmp_path):
    graph = tiny_system[5]
    model = _dnn(tiny_system, 1)
    model.save(tmp_path / "dnn")
    again = DnnHmm.load(tmp_path / "dnn")
    from asr.nnet.numpy_dnn import NumpyDnn

    assert isinstance(again.net, NumpyDnn)  # a feed-forward DNN decodes on the CPU without torch
    x = np.random.default_rng(1).normal(size=(30, 4)).astype(np.float32)
    np.testing.assert_allclose(model.scores(x), again.scores(x), atol=1e-5)
    dec = Decoder(graph, model.trans.log_probs, DecoderConfig(acoustic_scale=1.0))
    a, b = dec.decode(model.scores(x)), dec.decode(again.scores(x))
    assert a.word_ids == b.word_ids and a.cost == pytest.approx(b.cost, abs=1e-4)
    assert (a.tids == b.tids).all()
    again.with_torch_network()  # the torch network again, with the very same weights
    np.testing.assert_array_equal(model.scores(x), again.scores(x))


def test_ensemble_averages_posteriors(tiny_system):
    m1, m2 = _dnn(tiny_system, 2), _dnn(tiny_system, 3)
    x = np.random.default_rng(2).normal(size=(8, 4)).astype(np.float32)
    ens = Ensemble([m1, m2])
    p = (np.exp(m1.log_posteriors(x)) + np.exp(m2.log_posteriors(x))) / 2
    np.testing.assert_allclose(ens.scores(x), np.log(p) - 0.8 * m1.log_priors, rtol=1e-5, atol=1e-5)
    with pytest.raises(AsrError):
        Ensemble([m1])


def test_search_space_parsing_and_trials():
    from asr.nnet.search import parse_space, trials

    space = parse_space(["hidden_dim=256,512", "optimizer=adam,sgd", "dropout=0.0,0.1,0.2"])
    assert space == {"hidden_dim": [256, 512], "optimizer": ["adam", "sgd"], "dropout": [0.0, 0.1, 0.2]}
    grid = trials(space)
    assert len(grid) == 12 and len({json.dumps(t, sort_keys=True) for t in grid}) == 12
    rnd = trials(space, num_random=5, seed=1)
    assert len(rnd) == 5 and all(t in grid for t in rnd) and len({json.dumps(t, sort_keys=True) for t in rnd}) == 5
    with pytest.raises(AsrError):
        parse_space(["hidden_dim"])


def _fake_search(tmp_path, monkeypatch, errors_of):
    """The search with training and decoding replaced by fakes (dev errors = errors_of(values))."""
    import asr.nnet.search as search_mod
    from asr.score import ErrorCounts

    gmm = tmp_path / "gmm"
    gmm.mkdir(exist_ok=True)
    (gmm / "graph.npz").write_bytes(b"graph")
    calls = []

    class FakeModel:
        def __init__(self, cfg):
            self.decoder = DecoderConfig()
            self.cfg = cfg
            self.info = {"best_cv_loss": 1.0 / cfg.net.hidden_dim, "epochs": 3, "train_seconds": 1.0,
                         "parameters": cfg.net.hidden_dim}

    def fake_train(data, ali, gmm_dir, out, cfg):
        calls.append(cfg)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.json").write_text("{}")
        return FakeModel(cfg)

    def fake_decode(model_dir, dev, out, grid, nj):
        e = errors_of(calls[-1])
        return ErrorCounts(ref_words=100, ins=0, dels=0, subs=e, sentences=10, sentence_errors=min(e, 10))

    monkeypatch.setattr(search_mod, "train_dnn", fake_train)
    monkeypatch.setattr(search_mod, "decode_data_dir", fake_decode)
    monkeypatch.setattr(search_mod, "make_graph", lambda model_dir, lang, opts, reuse: None)
    return search_mod, gmm, calls


def test_grid_search_keeps_the_best_dev_trial_and_resumes(tmp_path, monkeypatch):
    search_mod, gmm, calls = _fake_search(tmp_path, monkeypatch, lambda cfg: {64: 9, 128: 3, 256: 5}[cfg.net.hidden_dim])
    space = {"hidden_dim": [64, 128, 256]}
    best = search_mod.search({"max_epochs": 1}, space, "d", "a", gmm, "dev", tmp_path / "s", lang_dir="lang")
    assert best["values"] == {"hidden_dim": 128} and best["dev_wer"] == pytest.approx(3.0)
    assert sorted(c.net.hidden_dim for c in calls) == [64, 128, 256]
    assert (tmp_path / "s" / "best" / "model.json").exists()
    table = (tmp_path / "s" / "search.md").read_text()
    assert "**best** | 128 | 3.00 |" in table and table.count("\n| ") == 4
    calls.clear()
    search_mod.search({"max_epochs": 1}, space, "d", "a", gmm, "dev", tmp_path / "s", lang_dir="lang")
    assert calls == []  # every trial was already done


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_range_search_draws_log_uniform_values_and_finds_the_valley(tmp_path, monkeypatch, sampler):
    # dev errors fall as the learning rate nears 1e-3 (a valley in log space)
    errors = lambda cfg: int(round(10 * abs(math.log10(cfg.learning_rate) + 3)))  # noqa: E731
    search_mod, gmm, calls = _fake_search(tmp_path, monkeypatch, errors)
    space = search_mod.parse_space(["learning_rate=log:1e-5:1e-1", "hidden_dim=64,128"])
    assert space["learning_rate"] == search_mod.Range("log", 1e-5, 1e-1)
    best = search_mod.search({"max_epochs": 1}, space, "d", "a", gmm, "dev", tmp_path / "s", lang_dir="lang", sampler=sampler,
                             num_trials=14)
    lrs = [c.learning_rate for c in calls]
    assert len(calls) == 14 and all(1e-5 <= lr <= 1e-1 for lr in lrs)
    assert sum(lr < 1e-3 for lr in lrs) >= 3  # log-uniform: small rates drawn as often as large ones
    assert abs(math.log10(best["values"]["learning_rate"]) + 3) < 0.5
    calls.clear()
    search_mod.search({"max_epochs": 1}, space, "d", "a", gmm, "dev", tmp_path / "s", lang_dir="lang", sampler=sampler,
                      num_trials=16)
    assert len(calls) == 2  # resumed: only the two new trials run
    with pytest.raises(AsrError, match="grid"):
        search_mod.search({}, space, "d", "a", gmm, "dev", tmp_path / "g", lang_dir="lang", sampler="grid")


def test_held_out_split_by_utterance():
    from asr.datadir import DataDir

    utts = [f"s{k}-u{i}" for k in range(3) for i in range(10)]
    data = DataDir(wav={u: "x.wav" for u in utts}, text={u: ["A"] for u in utts},
                   utt2spk={u: u.split("-")[0] for u in utts})
    tr, cv = split_speakers(data, utts, 0.1, seed=0, by="utterance")
    assert len(cv) == 3 and {data.utt2spk[u] for u in cv} <= {data.utt2spk[u] for u in tr}
    with pytest.raises(AsrError):
        TrainConfig(cv_by="day")


def test_aligner_takes_scaled_likelihoods_of_any_model(tiny_system):
    """Realignment with a DNN: the aligner uses model.scores() when there is no GMM."""
    from asr.hmm.align_data import Aligner
    from asr.hmm.align_graph import build_align_graph

    phones, words, lex, trans, ctx, _ = tiny_system
    graph = build_align_graph(["X", "Y"], lex, phones, trans, ctx)
    # SIL(0 1 2) | A(3 4) B(5 6) | B(5 6) | SIL(0 1 2), two frames on A's first state.
    plan = [0, 1, 2, 3, 3, 4, 5, 6, 5, 6, 0, 1, 2]

    class Planned:
        def __init__(self):
            self.phones, self.trans, self.silence_phone = phones, trans, "SIL"

        def scores(self, feats):
            s = np.full((len(plan), ctx.num_pdfs), -30.0)
            s[np.arange(len(plan)), plan] = 0.0
            return s

    ali = Aligner(Planned(), {"u": np.zeros((len(plan), 4))}, {"u": graph}, acoustic_scale=1.0).align()["u"]
    assert graph.pdf[ali.states].tolist() == plan


def test_frequency_masks_zero_whole_bands_across_the_window():
    from asr.nnet.train import mask_frequencies

    torch.manual_seed(0)
    x = torch.ones(64, 11 * 40)
    y = mask_frequencies(x, 40, masks=2, width=8).view(64, 11, 40)
    assert y.shape == (64, 11, 40) and (y == 0).any()
    # A masked bin is masked in all 11 frames of its window; at most 2 x 8 bins per window.
    per_bin = (y == 0).all(dim=1)
    assert torch.equal(per_bin, (y == 0).any(dim=1))
    assert int(per_bin.sum(dim=1).max()) <= 16
