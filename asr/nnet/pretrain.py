"""Greedy layer-wise pretraining of the feed-forward DNN, before cross-entropy fine-tuning.

Each hidden layer in turn learns to model the output of the layers below it (frozen, already
pretrained), unsupervised, for ``pretrain_epochs`` passes over the training windows:

- ``autoencoder`` (Bengio et al. 2007): the layer's block (affine -> [BN] -> activation) is the
  encoder, a fresh linear decoder maps it back, and both minimise the squared reconstruction
  error of the layer's input (Adam).
- ``rbm`` (Hinton, Osindero & Teh 2006; the DBN-DNN hybrid of Mohamed, Dahl & Hinton 2012):
  the layer's affine weights are an RBM trained with one step of contrastive divergence
  (CD-1), Gaussian-Bernoulli for the first layer (real-valued, mean-normalised features;
  a tenth of the learning rate, as Hinton's practical guide advises) and Bernoulli-Bernoulli
  above, momentum 0.5 then 0.9, weight cost 2e-4. The hidden units of an RBM are logistic,
  so this is the classic recipe for sigmoid networks.

The output layer is not pretrained; fine-tuning then trains everything with cross-entropy.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from asr.nnet.distributed import minibatch_bounds
from asr.nnet.frames import FrameSet

log = logging.getLogger(__name__)

PRETRAINERS = ("none", "autoencoder", "rbm")


def _layer_inputs(net: nn.Module, frames: FrameSet, idx: torch.Tensor, layer: int) -> torch.Tensor:
    """(B, fan_in) inputs of hidden layer ``layer``: the windows through the frozen layers below."""
    x, _ = frames.batch(idx, net.cfg.context)
    with torch.no_grad():
        for block in net.hidden[:layer]:
            x = block(x)
    return x


def _autoencoder_epoch(net, frames, order, layer, decoder, opt, bs) -> float:
    block, total = net.hidden[layer], 0.0
    for start, end in minibatch_bounds(len(order), bs):
        v = _layer_inputs(net, frames, order[start:end], layer)
        loss = ((decoder(block(v)) - v) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * (end - start)
    return total / len(order)


def _rbm_epoch(net, frames, order, layer, visible_bias, velocity, lr, momentum, bs) -> float:
    """One CD-1 pass; returns the mean squared reconstruction error of the visible units."""
    lin = net.hidden[layer].layer
    W, b, c = lin.weight, lin.bias, visible_bias  # W: (hidden, visible)
    gaussian = layer == 0
    total = 0.0
    with torch.no_grad():
        for start, end in minibatch_bounds(len(order), bs):
            v0 = _layer_inputs(net, frames, order[start:end], layer)
            B = v0.shape[0]
            h0 = torch.sigmoid(v0 @ W.T + b)
            h_sample = torch.bernoulli(h0)
            v1 = h_sample @ W + c
            if not gaussian:
                v1 = torch.sigmoid(v1)
            h1 = torch.sigmoid(v1 @ W.T + b)
            grads = ((h0.T @ v0 - h1.T @ v1) / B - 2e-4 * W, (h0 - h1).mean(0), (v0 - v1).mean(0))
            for p, vel, g in zip((W, b, c), velocity, grads):
                vel.mul_(momentum).add_(g, alpha=lr)
                p.add_(vel)
            total += float(((v0 - v1) ** 2).sum(1).mean()) * B
    return total / len(order)


def pretrain_layers(net: nn.Module, frames: FrameSet, cfg, gen: torch.Generator) -> list[dict]:
    """Pretrain every hidden layer of ``net`` (an :class:`AcousticNet` of kind dnn) in place,
    bottom up; returns one log row per layer and epoch."""
    rows: list[dict] = []
    method = cfg.pretrain
    lr = cfg.pretrain_learning_rate or (1e-3 if method == "autoencoder" else 0.01)
    device = frames.feats.device
    for layer, block in enumerate(net.hidden):
        lin = block.layer
        n_visible, n_hidden = lin.in_features, lin.out_features
        net.train(False)
        block.train(True)
        if method == "autoencoder":
            decoder = nn.Linear(n_hidden, n_visible).to(device)
            opt = torch.optim.Adam(list(block.parameters()) + list(decoder.parameters()), lr=lr)
        else:
            with torch.no_grad():
                lin.weight.normal_(0.0, 0.01)
                lin.bias.zero_()
            visible_bias = torch.zeros(n_visible, device=device)
            velocity = [torch.zeros_like(lin.weight), torch.zeros_like(lin.bias), torch.zeros_like(visible_bias)]
        for epoch in range(1, cfg.pretrain_epochs + 1):
            order = torch.randperm(len(frames), generator=gen).to(device)
            if method == "autoencoder":
                err = _autoencoder_epoch(net, frames, order, layer, decoder, opt, cfg.batch_size)
            else:
                rate = lr / 10 if layer == 0 else lr
                err = _rbm_epoch(net, frames, order, layer, visible_bias, velocity, rate,
                                 0.5 if epoch == 1 else 0.9, cfg.batch_size)
            rows.append({"layer": layer + 1, "epoch": epoch, "method": method, "reconstruction_error": err})
            log.info("pretrain %s layer %d epoch %d: reconstruction error %.4f", method, layer + 1, epoch, err)
    net.train(True)
    return rows
