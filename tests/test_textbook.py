"""The textbook toolbox: optimisers, initialisations, weight decay, dropout, batch norm with a
one-frame batch, maxout, CNN and recurrent hybrids, recurrent cells, pretraining, curricula,
ensembles (snapshots, bagging, voting, CTC, MC dropout), gradient checks, softmax overflow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asr.decode.vote import vote
from asr.nnet.ctc_net import CtcNet, CtcNetConfig
from asr.nnet.distributed import minibatch_bounds
from asr.nnet.frames import FrameSet, splice
from asr.nnet.network import AcousticNet, Maxout, NetConfig
from asr.nnet.optim import Optimizer
from asr.nnet.pretrain import pretrain_layers
from asr.nnet.recurrent import RecurrentAcousticNet, RecurrentStack, recurrent_layer, splice_batch
from asr.nnet.schedule import Newbob
from asr.nnet.train import (TrainConfig, curriculum_cap, frame_order, hybrid_utterances, run_epoch,
                            run_sequence_epoch)
from asr.utils import AsrError


def _frames(n_utts: int = 8, frames_per_utt: int = 40, dim: int = 6, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(classes, dim))
    feats, targets = {}, {}
    for u in range(n_utts):
        y = rng.integers(0, classes, size=frames_per_utt + u)
        feats[f"u{u}"] = (centres[y] + rng.normal(0, 1, size=(len(y), dim))).astype(np.float32)
        targets[f"u{u}"] = y
    return feats, targets


# --- batch norm and the last partial minibatch

def test_last_minibatch_of_one_frame_is_merged():
    assert minibatch_bounds(257, 256) == [(0, 257)]
    assert minibatch_bounds(513, 256) == [(0, 256), (256, 513)]
    assert minibatch_bounds(258, 256) == [(0, 256), (256, 258)]
    assert minibatch_bounds(1, 256) == [(0, 1)]
    assert minibatch_bounds(260, 256, min_size=6) == [(0, 260)]  # DDP: every rank needs its share


def test_batch_norm_trains_on_frames_mod_batch_size_one():
    feats, targets = _frames(n_utts=1, frames_per_utt=257)
    frames = FrameSet.build(feats, targets, ["u0"])
    assert len(frames) == 257
    cfg = TrainConfig(net=NetConfig(num_layers=2, hidden_dim=8, context=1, batch_norm=True), batch_size=256)
    net = AcousticNet(cfg.net, 6, 4)
    loss, _ = run_epoch(net, frames, torch.randperm(257), cfg, Optimizer(net, cfg), "train")  # used to raise
    assert np.isfinite(loss)


# --- optimisers

def test_adadelta_has_no_learning_rate_and_newbob_leaves_it_alone():
    cfg = TrainConfig(optimizer="adadelta", adadelta_rho=0.9, adadelta_eps=1e-4)
    w = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        w.weight.fill_(1.0)
    opt = Optimizer(w, cfg)
    assert opt.param_groups[0]["lr"] == 1.0
    g = 2.0  # d/dw of (w x)^2 / 2 * ... : loss = w * 2
    opt.step((w.weight * g).sum())
    # Zeiler's first step: E[g^2] = (1 - rho) g^2, dx = -sqrt(0 + eps) / sqrt(E[g^2] + eps) * g
    expected = 1.0 - math.sqrt(1e-4) / math.sqrt(0.1 * g * g + 1e-4) * g
    assert float(w.weight.detach()) == pytest.approx(expected, rel=1e-5)
    sched = Newbob.from_config(cfg)
    net = torch.nn.Linear(1, 1)
    for loss in (1.0, 0.999, 0.9985, 0.998):
        sched.end_epoch(net, loss, {})
    assert sched.state["halving"] and sched.lr == 1.0  # halving phase entered, rate untouched
    asked = Newbob.from_config(TrainConfig(optimizer="adadelta", halve_adadelta=True, min_epochs=1))
    asked.end_epoch(net, 1.0, {})
    asked.end_epoch(net, 0.9999, {})
    assert asked.lr == 0.5


def test_textbook_default_learning_rates_and_bad_options():
    assert Newbob.from_config(TrainConfig(optimizer="adam")).lr == 1e-3
    assert Newbob.from_config(TrainConfig(optimizer="sgd")).lr == 0.1
    assert Newbob.from_config(TrainConfig(optimizer="sgd", learning_rate=0.3)).lr == 0.3
    for bad in ({"optimizer": "rmsprop"}, {"weight_decay_mode": "l1"}, {"adadelta_rho": 1.0}, {"grad_clip": -1},
                {"batch_size": 1}, {"pretrain": "vae"}):
        with pytest.raises(AsrError):
            TrainConfig(**bad)


# --- weight decay

def _decay_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))


def test_l2_decay_is_a_gradient_term_and_skips_biases_and_norms():
    net = _decay_net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    cfg = TrainConfig(optimizer="sgd", learning_rate=0.1, weight_decay=0.5, weight_decay_mode="l2")
    opt = Optimizer(net, cfg)
    opt.step(sum(p.sum() * 0 for p in net.parameters()))  # no data gradient: only the decay acts
    after = dict(net.named_parameters())
    # d/dw (lambda/2)||w||^2 = lambda w: w <- w - lr lambda w
    torch.testing.assert_close(after["0.weight"], before["0.weight"] * (1 - 0.1 * 0.5))
    for name in ("0.bias", "1.weight", "1.bias"):  # biases and batch-norm parameters: not decayed
        torch.testing.assert_close(after[name], before[name])
    all_cfg = TrainConfig(optimizer="sgd", learning_rate=0.1, weight_decay=0.5, decay_all=True)
    net2 = _decay_net()
    b0 = net2[0].bias.detach().clone()
    Optimizer(net2, all_cfg).step(sum(p.sum() * 0 for p in net2.parameters()))
    torch.testing.assert_close(net2[0].bias, b0 * 0.95)


def test_decoupled_decay_differs_from_l2_under_adam():
    res = {}
    for mode in ("l2", "decoupled"):
        net = _decay_net()
        w0 = net[0].weight.detach().clone()
        cfg = TrainConfig(optimizer="adam", learning_rate=0.01, weight_decay=0.1, weight_decay_mode=mode)
        Optimizer(net, cfg).step(sum(p.sum() * 0 for p in net.parameters()))
        res[mode] = (w0, net[0].weight.detach().clone())
    w0, w = res["decoupled"]
    torch.testing.assert_close(w, w0 * (1 - 0.01 * 0.1))  # shrink by lr * lambda, outside Adam
    w0, w = res["l2"]
    # Adam normalises the decay gradient: the first step moves every weight by ~lr, towards 0
    torch.testing.assert_close((w0 - w).abs(), torch.full_like(w, 0.01), rtol=1e-3, atol=1e-6)
    assert torch.all((w0 - w) * w0 > 0)


def test_gradient_clipping_bounds_the_norm():
    net = torch.nn.Linear(4, 3)
    cfg = TrainConfig(optimizer="sgd", learning_rate=0.0, grad_clip=0.5)
    cfg.learning_rate = 1e-12  # effectively no step; only the gradient is inspected
    opt = Optimizer(net, cfg)
    norm = opt.step((net(torch.full((2, 4), 100.0)) ** 2).sum())
    assert norm > 0.5
    total = math.sqrt(sum(float((p.grad ** 2).sum()) for p in net.parameters()))
    assert total == pytest.approx(0.5, rel=1e-4)


# --- initialisation, dropout, maxout

def test_xavier_is_the_books_uniform_and_xavier_normal_a_normal():
    n_in, n_out = 400, 300
    a = math.sqrt(6 / (n_in + n_out))
    torch.manual_seed(0)
    uni = AcousticNet(NetConfig(num_layers=1, hidden_dim=n_out, context=0, init="xavier"), n_in,
                      5).hidden[0].layer.weight.detach()
    norm = AcousticNet(NetConfig(num_layers=1, hidden_dim=n_out, context=0, init="xavier_normal"), n_in,
                       5).hidden[0].layer.weight.detach()
    assert float(uni.abs().max()) <= a and float(uni.abs().max()) > 0.99 * a
    assert float(uni.var()) == pytest.approx(a * a / 3, rel=0.02)
    assert float(norm.var()) == pytest.approx(2 / (n_in + n_out), rel=0.02)
    assert float(norm.abs().max()) > a  # a normal has tails beyond the uniform's bound


def test_dropout_is_the_drop_probability_and_inverted():
    cfg = NetConfig(num_layers=1, hidden_dim=2000, context=0, dropout=0.3, batch_norm=False, activation="relu")
    net = AcousticNet(cfg, 4, 3)
    block = net.hidden[0]
    x = torch.ones(50, 2000)
    block.drop.train()
    y = block.drop(x)
    assert float((y == 0).float().mean()) == pytest.approx(0.3, abs=0.01)
    assert float(y.mean()) == pytest.approx(1.0, abs=0.02)  # kept units scaled by 1 / (1 - p)
    block.drop.eval()
    assert torch.equal(block.drop(x), x)
    with pytest.raises(AsrError, match="drop probability"):
        NetConfig(dropout=1.0)


def test_maxout_takes_the_max_of_each_units_pieces():
    x = torch.tensor([[1.0, 5.0, -2.0, -3.0, 0.0, 7.0]])
    torch.testing.assert_close(Maxout(2)(x), torch.tensor([[5.0, -2.0, 7.0]]))
    torch.testing.assert_close(Maxout(3)(x), torch.tensor([[5.0, 7.0]]))
    net = AcousticNet(NetConfig(num_layers=2, hidden_dim=8, context=1, activation="maxout", maxout_pieces=3), 4, 5)
    assert net.hidden[0].layer.out_features == 24 and net(torch.randn(7, 12)).shape == (7, 5)


# --- CNN and recurrent hybrids

def test_cnn_convolves_time_and_frequency_and_pools_frequency():
    cfg = NetConfig(kind="cnn", num_layers=1, hidden_dim=16, context=2, cnn_channels=[4, 6], cnn_freq_kernels=[3, 2],
                    cnn_time_kernel=2, cnn_pool=[2, 1])
    net = AcousticNet(cfg, 10, 5)
    # window 5 x 10 -> conv 2x3: 4 x 8 -> pool 2: 4 x 4 -> conv 2x2: 3 x 3, 6 maps
    assert net.hidden[0].layer.in_features == 6 * 3 * 3
    x = torch.randn(9, 5 * 10, requires_grad=True)
    out = net(x)
    assert out.shape == (9, 5)
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(AsrError, match="too short"):
        NetConfig(kind="cnn", context=1, cnn_time_kernel=3, cnn_channels=[4, 4], cnn_freq_kernels=[3, 3],
                  cnn_pool=[1, 1])


def test_splice_batch_matches_per_utterance_splicing():
    x = torch.randn(2, 7, 3)
    lengths = torch.tensor([7, 4])
    out = splice_batch(x, lengths, 2)
    torch.testing.assert_close(out[0], splice(x[0], 2))
    torch.testing.assert_close(out[1, :4], splice(x[1, :4], 2))


@pytest.mark.parametrize("cell", ["elman", "irnn", "gru", "lstm"])
def test_every_cell_trains_a_recurrent_hybrid(cell):
    torch.manual_seed(0)
    feats, targets = _frames(n_utts=6, frames_per_utt=20)
    data = hybrid_utterances(feats, targets, sorted(feats))
    cfg = TrainConfig(net=NetConfig(kind="rnn", cell=cell, num_layers=2, hidden_dim=16, context=1, dropout=0.1),
                      learning_rate=1e-2, sequence_frames=60, grad_clip=5.0)
    net = RecurrentAcousticNet(cfg.net, 6, 4)
    opt = Optimizer(net, cfg)
    batches = data.batches(cfg.sequence_frames)
    first, _ = run_sequence_epoch(net, data, batches, cfg, None, "eval")
    for _ in range(30):
        run_sequence_epoch(net, data, batches, cfg, opt, "train")
    last, acc = run_sequence_epoch(net, data, batches, cfg, None, "eval")
    assert last < first and acc > 0.5


def test_irnn_starts_as_identity_and_lstm_forget_bias_is_one():
    layer = recurrent_layer("irnn", 3, 5, bidirectional=False)
    torch.testing.assert_close(layer.weight_hh_l0, torch.eye(5))
    assert float(layer.bias_ih_l0.detach().abs().sum()) == 0 and float(layer.weight_ih_l0.detach().std()) < 0.01
    stack = RecurrentStack(3, 4, 2, "lstm", bidirectional=True)
    for b in stack.forget_gate_bias():
        torch.testing.assert_close(b, torch.ones(4))


def test_variational_dropout_shares_one_mask_over_time():
    stack = RecurrentStack(3, 4, 2, "gru", dropout=0.5, variational=True).train()
    x = torch.ones(3, 10, 8)
    y = stack.drop(x)
    zero = y == 0
    assert zero.any() and torch.equal(zero, zero[:, :1].expand_as(zero))  # the same units every step
    per_step = RecurrentStack(3, 4, 2, "gru", dropout=0.5, variational=False).train()
    z = per_step.drop(x) == 0
    assert not torch.equal(z, z[:, :1].expand_as(z))


def test_recurrent_hybrid_model_scores_whole_utterances(tmp_path, tiny_mono):
    from asr.features import FeatureConfig, FeaturePipeline
    from asr.nnet.model import DnnHmm, state_log_priors

    t = tiny_mono
    torch.manual_seed(0)
    net = RecurrentAcousticNet(NetConfig(kind="rnn", cell="gru", num_layers=1, hidden_dim=8, context=0), 4,
                               t.ctx.num_pdfs).eval()
    model = DnnHmm(t.phones, t.words, t.lex, t.trans, t.ctx, net, state_log_priors(np.ones(t.ctx.num_pdfs)),
                   FeatureConfig(), FeaturePipeline(delta_order=0))
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    with torch.no_grad():
        direct = torch.log_softmax(net(torch.from_numpy(x)[None], torch.tensor([30]))[0], -1)
    torch.testing.assert_close(torch.from_numpy(model.log_posteriors(x)), direct)
    model.save(tmp_path / "rnn")
    again = DnnHmm.load(tmp_path / "rnn")
    np.testing.assert_allclose(again.scores(x), model.scores(x), rtol=1e-5, atol=1e-5)


def test_ctc_cells_and_old_lstm_model_dirs_load():
    for cell in ("elman", "irnn", "gru", "lstm"):
        net = CtcNet(CtcNetConfig(num_layers=2, hidden_dim=8, subsample=2, cell=cell), 5, 4)
        logp, lens = net(torch.randn(2, 9, 5), torch.tensor([9, 6]))
        assert logp.shape == (2, 5, 4) and lens.tolist() == [5, 3]
    with pytest.raises(AsrError, match="projection"):
        CtcNetConfig(cell="gru", projection=4)
    # a state dict of the former single multi-layer nn.LSTM ("lstm.*") loads into the stack
    cfg = CtcNetConfig(num_layers=2, hidden_dim=8, subsample=1, dropout=0.0)
    old = torch.nn.LSTM(5, 8, num_layers=2, batch_first=True, bidirectional=True)
    state = {f"lstm.{k}": v for k, v in old.state_dict().items()}
    net = CtcNet(cfg, 5, 4)
    state.update({k: v for k, v in net.state_dict().items() if k.startswith("output.")})
    net.load_state_dict(state)
    x = torch.randn(1, 6, 5)
    h, _ = old(x)
    torch.testing.assert_close(net.rnn(x, torch.tensor([6])), h)


# --- gradient checks and overflow

def test_numeric_gradient_of_the_ctc_loss_through_an_lstm():
    torch.manual_seed(0)
    net = CtcNet(CtcNetConfig(num_layers=1, hidden_dim=3, subsample=1, dropout=0.0, bidirectional=True), 2, 3).double()
    x = torch.randn(1, 6, 2, dtype=torch.float64, requires_grad=True)
    targets, lengths = torch.tensor([[1, 2]]), torch.tensor([6])

    def loss(inp):
        logp, out_len = net(inp, lengths)
        return torch.nn.functional.ctc_loss(logp.double().transpose(0, 1), targets, out_len, torch.tensor([2]))

    assert torch.autograd.gradcheck(loss, (x,), eps=1e-6, atol=1e-5)
    params = [p for p in net.parameters()]
    w = params[0]

    def loss_w(weight):
        saved = w.data.clone()
        w.data = weight
        try:
            return loss(x.detach())
        finally:
            w.data = saved

    analytic = torch.autograd.grad(loss(x.detach()), w)[0]
    numeric = torch.zeros_like(w)
    for idx in [(0, 0), (3, 1), (7, 0), (11, 1)]:
        e = torch.zeros_like(w)
        e[idx] = 1e-6
        with torch.no_grad():
            numeric[idx] = (loss_w(w.detach() + e) - loss_w(w.detach() - e)) / 2e-6
        assert float(numeric[idx]) == pytest.approx(float(analytic[idx]), rel=1e-4, abs=1e-7)


def test_huge_logits_do_not_overflow_the_softmax(tiny_mono):
    from asr.features import FeatureConfig, FeaturePipeline
    from asr.nnet.model import DnnHmm, state_log_priors

    t = tiny_mono
    net = AcousticNet(NetConfig(num_layers=1, hidden_dim=4, context=0), 4, t.ctx.num_pdfs).eval()
    with torch.no_grad():
        net.output.bias.copy_(torch.linspace(0, 1e5, t.ctx.num_pdfs))  # exp(1e5) overflows float64
    model = DnnHmm(t.phones, t.words, t.lex, t.trans, t.ctx, net, state_log_priors(np.ones(t.ctx.num_pdfs)),
                   FeatureConfig(), FeaturePipeline(delta_order=0))
    lp = torch.from_numpy(model.log_posteriors(np.zeros((3, 4), np.float32)))
    assert torch.isfinite(lp).all() and torch.allclose(lp.exp().sum(1), torch.ones(3))
    assert float(lp[0, -1]) == pytest.approx(0.0, abs=1e-4)
    ctc = CtcNet(CtcNetConfig(num_layers=1, hidden_dim=4, subsample=1), 2, 3).eval()
    with torch.no_grad():
        ctc.output.bias.copy_(torch.tensor([1e6, 0.0, -1e6]))
        logp, _ = ctc(torch.zeros(1, 4, 2), torch.tensor([4]))
    assert torch.isfinite(logp[..., :2]).all() and float(logp[0, 0, 0]) == pytest.approx(0.0)


# --- pretraining and curricula

@pytest.mark.parametrize("method", ["autoencoder", "rbm"])
def test_layerwise_pretraining_lowers_each_layers_reconstruction_error(method):
    torch.manual_seed(0)
    feats, targets = _frames(n_utts=10, frames_per_utt=60)
    frames = FrameSet.build(feats, targets, sorted(feats))
    cfg = TrainConfig(net=NetConfig(num_layers=2, hidden_dim=16, context=1, activation="sigmoid", batch_norm=False),
                      pretrain=method, pretrain_epochs=4, batch_size=32)
    net = AcousticNet(cfg.net, 6, 4)
    rows = pretrain_layers(net, frames, cfg, torch.Generator().manual_seed(0))
    assert [(r["layer"], r["epoch"]) for r in rows] == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (2, 3), (2, 4)]
    for layer in (1, 2):
        errs = [r["reconstruction_error"] for r in rows if r["layer"] == layer]
        assert errs[-1] < errs[0]
    with pytest.raises(AsrError, match="feed-forward"):
        TrainConfig(net=NetConfig(kind="tdnn"), pretrain="rbm")


def test_growing_curriculum_caps_utterance_length():
    lengths = np.array([10, 20, 30, 50])
    assert [curriculum_cap(lengths, e, 4) for e in (1, 2, 3, 4, 5)] == [20, 30, 40, None, None]
    assert curriculum_cap(lengths, 1, 0) is None
    feats, targets = _frames(n_utts=4, frames_per_utt=10)  # lengths 10, 11, 12, 13
    frames = FrameSet.build(feats, targets, sorted(feats))
    order = frame_order(frames, False, torch.Generator().manual_seed(0), length_cap=11)
    assert len(order) == 21 and int(frames.utt_len[order].max()) == 11
    sorted_order = frame_order(frames, True, torch.Generator().manual_seed(0))
    assert torch.all(frames.utt_len[sorted_order].diff() >= 0)


# --- ensembles

def test_majority_vote_aligns_and_elects_words():
    assert vote([["A", "B", "C"], ["A", "X", "C"], ["A", "B", "C"]]) == ["A", "B", "C"]
    assert vote([["A", "B"], ["A", "B", "C"], ["A", "B", "C"]]) == ["A", "B", "C"]  # an insertion two agree on
    assert vote([["A", "B", "C"], ["A", "C"], ["A", "C"]]) == ["A", "C"]  # a word two systems leave out
    assert vote([["X"], ["Y"], ["Z"]]) == ["X"]  # ties go to the first (best) system
    assert vote([["A"]]) == ["A"]
    assert vote([[], ["B"], []]) == []


def test_vote_over_decode_dirs_scores_against_the_reference(tmp_path):
    from asr.decode.vote import vote_decode_dirs

    data = tmp_path / "data"
    data.mkdir()
    (data / "text").write_text("u1 ONE TWO\nu2 THREE\n")
    hyps = ["u1 ONE TWO\nu2 FOUR\n", "u1 ONE TOO\nu2 THREE\n", "u1 ONE TWO\nu2 THREE\n"]
    dirs = []
    for k, h in enumerate(hyps):
        d = tmp_path / f"sys{k}"
        d.mkdir()
        (d / "hyp.txt").write_text(h)
        dirs.append(d)
    counts = vote_decode_dirs(dirs, data, tmp_path / "vote")
    assert counts.errors == 0 and (tmp_path / "vote" / "hyp.txt").read_text() == "u1 ONE TWO\nu2 THREE\n"
    (dirs[1] / "hyp.txt").write_text("u1 ONE\n")
    with pytest.raises(AsrError, match="other utterances"):
        vote_decode_dirs(dirs, data, tmp_path / "vote2")


def test_mc_dropout_averages_dropout_draws(tiny_mono):
    from asr.features import FeatureConfig, FeaturePipeline
    from asr.nnet.model import DnnHmm, state_log_priors

    t = tiny_mono
    torch.manual_seed(0)
    net = AcousticNet(NetConfig(num_layers=2, hidden_dim=32, context=1, dropout=0.5), 4, t.ctx.num_pdfs).eval()
    model = DnnHmm(t.phones, t.words, t.lex, t.trans, t.ctx, net, state_log_priors(np.ones(t.ctx.num_pdfs)),
                   FeatureConfig(), FeaturePipeline(delta_order=0))
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    plain = torch.from_numpy(model.log_posteriors(x))
    model.mc_samples = 30
    torch.manual_seed(1)
    mc = torch.from_numpy(model.log_posteriors(x))
    torch.manual_seed(1)
    again = torch.from_numpy(model.log_posteriors(x))
    torch.testing.assert_close(mc, again)  # seeded: reproducible
    assert not torch.allclose(mc, plain) and torch.allclose(mc.exp().sum(1), torch.ones(20))
    assert not net.training and all(not m.training for m in net.modules())  # left in inference mode
    # the average of many draws lies near the weight-scaled network (the usual approximation)
    assert float((mc.exp() - plain.exp()).abs().mean()) < 0.1


def test_ctc_models_ensemble_by_averaging_posteriors():
    from test_ctc import _tiny_ctc_system

    from asr.features import FeatureConfig, FeaturePipeline
    from asr.nnet.ctc_model import CtcModel
    from asr.nnet.model import Ensemble

    _, tokens, hmm = _tiny_ctc_system()

    def ctc_model(seed: int) -> CtcModel:
        torch.manual_seed(seed)
        net = CtcNet(CtcNetConfig(num_layers=1, hidden_dim=8), 4, len(tokens)).eval()
        return CtcModel(net=net, tokens=tokens, feature=FeatureConfig(kind="fbank", num_mel_bins=4),
                        pipeline=FeaturePipeline(), **hmm)

    a, b = ctc_model(0), ctc_model(1)
    ens = Ensemble([a, b])
    assert ens.kind == "ctc" and ens.subsample == a.subsample and hasattr(ens, "align_spans")
    x = np.random.default_rng(0).normal(size=(12, a.net.input_dim)).astype(np.float32)
    expected = torch.logsumexp(torch.stack([a.log_posteriors(x), b.log_posteriors(x)]), 0) - math.log(2)
    np.testing.assert_allclose(ens.log_posteriors(x), expected.numpy(), atol=1e-6)


def test_utterance_batches_give_every_rank_a_share():
    from asr.nnet.frames import Utterances

    lens = [10, 10, 10, 40]  # budget 30: [0, 1, 2] then [3] alone
    data = Utterances([f"u{i}" for i in range(4)], [torch.zeros(n, 2) for n in lens], [torch.zeros(1)] * 4)
    assert data.batches(30) == [[0, 1, 2], [3]]
    assert data.batches(30, min_size=2) == [[0, 1, 2, 3]]
    assert data.batches(10, min_size=2) == [[0, 1], [2, 3]]
    assert data.batches(5, min_size=3) == [[0, 1, 2, 3]]
    assert sorted(i for b in data.batches(12, min_size=2) for i in b) == [0, 1, 2, 3]


def test_mc_dropout_needs_a_network_with_dropout(tiny_mono):
    from asr.decode.run import set_mc_dropout
    from asr.features import FeatureConfig, FeaturePipeline
    from asr.nnet.model import DnnHmm, state_log_priors

    with pytest.raises(AsrError, match="hybrid network"):
        set_mc_dropout(object(), 4, "exp/mono")
    t = tiny_mono
    for dropout, ok in ((0.0, False), (0.2, True)):
        net = AcousticNet(NetConfig(num_layers=1, hidden_dim=4, context=0, dropout=dropout), 4, t.ctx.num_pdfs)
        model = DnnHmm(t.phones, t.words, t.lex, t.trans, t.ctx, net, state_log_priors(np.ones(t.ctx.num_pdfs)),
                       FeatureConfig(), FeaturePipeline(delta_order=0))
        if ok:
            set_mc_dropout(model, 4, "exp/dnn")
            assert model.mc_samples == 4
        else:
            with pytest.raises(AsrError, match="no dropout"):
                set_mc_dropout(model, 4, "exp/dnn")
