"""DNN training throughput: the bare network on random data vs. the real input pipeline.

    .venv/bin/python bench/bench_dnn.py [--device cuda] [--bf16] [--layers 6 --dim 1024 --pdfs 2000]

"bare": one random (B, 440) batch and random targets already on the device, repeated
forward + backward + Adam steps - the ceiling. "pipeline": the training loop's own
path (FrameSet with AN4-sized utterances on the device, shuffled frame order, spliced
windows gathered per batch, run_epoch). The ratio says what the input pipeline costs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from asr.nnet.frames import FrameSet
from asr.nnet.network import AcousticNet, NetConfig
from asr.nnet.train import TrainConfig, make_optimizer, run_epoch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--pdfs", type=int, default=2000)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--frames", type=int, default=250_000, help="frames in the synthetic corpus")
    a = p.parse_args()
    device = torch.device(a.device)
    cfg = TrainConfig(net=NetConfig(num_layers=a.layers, hidden_dim=a.dim, context=5, batch_norm=False),
                      batch_size=a.batch, bf16=a.bf16, device=a.device)
    net = AcousticNet(cfg.net, 40, a.pdfs).to(device)
    opt = make_optimizer(net, cfg)
    x = torch.randn(a.batch, 440, device=device)
    y = torch.randint(0, a.pdfs, (a.batch,), device=device)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=a.bf16)
    steps = 50 if device.type == "cuda" else 10
    for n in (5, steps):  # warm-up, then timed
        sync(device)
        t = time.time()
        for _ in range(n):
            with autocast:
                loss = torch.nn.functional.cross_entropy(net(x).float(), y)
            opt.step(loss)  # zero_grad, backward, step
        sync(device)
    bare = steps * a.batch / (time.time() - t)
    # Real pipeline: AN4-like utterances (about 270 frames each).
    rng = np.random.default_rng(0)
    lens = rng.integers(150, 400, size=a.frames // 270)
    feats = {f"u{i:05d}": rng.normal(size=(n, 40)).astype(np.float32) for i, n in enumerate(lens)}
    targets = {u: rng.integers(0, a.pdfs, size=len(f)) for u, f in feats.items()}
    frames = FrameSet.build(feats, targets, sorted(feats)).to(device)
    run_epoch(net, frames, torch.randperm(len(frames))[: a.batch * 5], cfg, opt, "warm-up")
    sync(device)
    t = time.time()
    run_epoch(net, frames, torch.randperm(len(frames)), cfg, opt, "epoch")
    sync(device)
    real = len(frames) / (time.time() - t)
    print(f"device {device}{' bf16' if a.bf16 else ''}: {a.layers}x{a.dim} MLP, 440 -> {a.pdfs}, batch {a.batch}")
    print(f"bare network on random data: {bare / 1e3:8.1f} k frames/s")
    print(f"training pipeline (1 epoch): {real / 1e3:8.1f} k frames/s  ({100 * real / bare:.0f}% of bare)")


if __name__ == "__main__":
    main()
