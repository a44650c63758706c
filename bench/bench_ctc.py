"""CTC training throughput: the bare BiLSTM + CTC on random data vs. the real training loop.

    .venv/bin/python bench/bench_ctc.py [--device cuda] [--bf16] [--layers 4 --dim 320 --subsample 1]

"bare": one random padded batch of equal-length utterances already on the device,
repeated forward + CTC loss + backward + Adam steps - the ceiling. "pipeline": the
trainer's own path (length-sorted batches of AN4-sized utterances, padding, packing,
run_epoch). Throughput is in input frames per second (10 ms frames).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from asr.nnet.ctc_net import CtcNet, CtcNetConfig
from asr.nnet.optim import Optimizer
from asr.nnet.ctc_train import CtcTrainConfig, build_utterances, run_epoch
from bench_dnn import sync  # this folder is on sys.path when a bench script runs


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=320)
    p.add_argument("--subsample", type=int, default=1)
    p.add_argument("--tokens", type=int, default=40)
    p.add_argument("--batch-frames", type=int, default=20000)
    p.add_argument("--frames", type=int, default=100_000, help="frames in the synthetic corpus")
    a = p.parse_args()
    device = torch.device(a.device)
    cfg = CtcTrainConfig(net=CtcNetConfig(num_layers=a.layers, hidden_dim=a.dim, subsample=a.subsample, dropout=0.0),
                         batch_frames=a.batch_frames, bf16=a.bf16, device=a.device)
    net = CtcNet(cfg.net, 40, a.tokens).to(device)
    opt = Optimizer(net, cfg)
    N, T = max(1, a.batch_frames // 270), 270
    x = torch.randn(N, T, 40, device=device)
    lengths = torch.full((N,), T)
    tgt = torch.randint(1, a.tokens, (N, 30), device=device)
    tgt_len = torch.full((N,), 30, device=device)
    loss_fn = torch.nn.CTCLoss(zero_infinity=True)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=a.bf16)
    steps = 30 if device.type == "cuda" else 3
    for n in (2, steps):  # warm-up, then timed
        sync(device)
        t = time.time()
        for _ in range(n):
            with autocast:
                logp, out_len = net(x, lengths)
            loss = loss_fn(logp.float().transpose(0, 1), tgt, out_len.to(device), tgt_len)
            opt.step(loss)  # zero_grad, backward, step
        sync(device)
    bare = steps * N * T / (time.time() - t)
    rng = np.random.default_rng(0)
    lens = rng.integers(150, 400, size=a.frames // 270)
    feats = {f"u{i:05d}": rng.normal(size=(n, 40)).astype(np.float32) for i, n in enumerate(lens)}
    targets = {u: rng.integers(1, a.tokens, size=len(f) // 10).tolist() for u, f in feats.items()}
    data = build_utterances(feats, targets, sorted(feats), a.subsample)
    batches = data.batches(a.batch_frames)
    gen = torch.Generator().manual_seed(0)
    run_epoch(net, data, batches[:2], cfg, opt, gen, "warm-up")
    sync(device)
    t = time.time()
    run_epoch(net, data, batches, cfg, opt, gen, "epoch")
    sync(device)
    real = sum(len(f) for f in data.feats) / (time.time() - t)
    print(f"device {device}{' bf16' if a.bf16 else ''}: {a.layers}x{a.dim} BiLSTM, stack {a.subsample}, "
          f"{a.tokens} tokens, {a.batch_frames} frames per batch")
    print(f"bare network on random data: {bare / 1e3:8.1f} k frames/s")
    print(f"training pipeline (1 epoch): {real / 1e3:8.1f} k frames/s  ({100 * real / bare:.0f}% of bare)")


if __name__ == "__main__":
    main()
