"""Data-parallel training under ``torchrun`` (DDP): ranks, reductions, and the rules that keep
replicas identical.

Every rank walks the same shuffled order. Each global minibatch is split between the ranks
(rank r takes items r, r + world, ...), every rank divides its loss sum by the *global*
batch size times 1/world, and DDP averages the gradients: the update equals one process's
update on the whole minibatch (batch-norm statistics aside: they are per rank's share).
Held-out losses and counts are summed over ranks, and batch-norm running statistics are
averaged after every epoch, so every rank sees the same numbers and newbob makes the same
decision everywhere. Only rank 0 writes files.
"""

from __future__ import annotations

import os

import torch
from torch import nn


def rank_and_world() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) from torchrun's environment; (0, 1) outside it."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def init_process_group(device: torch.device) -> torch.device:
    """Join the torchrun job (NCCL on GPUs, gloo on CPUs); the rank's device."""
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def wrap(net: nn.Module, device: torch.device, world: int) -> nn.Module:
    """The module to train: ``net`` itself, or ``net`` in DistributedDataParallel."""
    if world <= 1:
        return net
    return nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def all_reduce_sum(values: list[float | int], device: torch.device, world: int) -> list[float]:
    """Element-wise sums of ``values`` over the ranks (as they are when world is 1)."""
    if world <= 1:
        return [float(v) for v in values]
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def average_buffers(net: nn.Module, world: int) -> None:
    """Average floating-point buffers (batch-norm running statistics) over the ranks."""
    if world <= 1:
        return
    import torch.distributed as dist

    for b in net.buffers():
        if b.is_floating_point():
            dist.all_reduce(b)
            b /= world


def barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def minibatch_bounds(n: int, batch_size: int, min_size: int = 2) -> list[tuple[int, int]]:
    """[start, end) of consecutive minibatches of ``n`` items; a last batch smaller than
    ``min_size`` is merged into the one before (batch norm cannot normalise one frame, and under
    DDP every rank needs its share)."""
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_size:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds
