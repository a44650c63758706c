"""Kaldi's --nj on one machine: forked worker processes, one thread each.

Workers are forked, so they inherit the parent's data (features, models, graphs) without
pickling it; only their results come back. Each worker runs single-threaded (BLAS and
torch), as a Kaldi job does: N jobs then use N cores instead of fighting over them.
"""

from __future__ import annotations

import multiprocessing as mp
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def single_threaded() -> None:
    """Limit this process to one BLAS / OpenMP thread and one torch thread."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    import sys

    if "torch" in sys.modules:  # never import torch just for this (GMM work is torch-free)
        sys.modules["torch"].set_num_threads(1)


def make_pool(nj: int):
    """A pool of ``nj`` forked single-threaded workers (the caller terminates it)."""
    return mp.get_context("fork").Pool(nj, initializer=single_threaded)


@contextmanager
def fork_pool(nj: int) -> Iterator:
    """A pool of ``nj`` forked single-threaded workers, for a ``with`` block."""
    with make_pool(nj) as pool:
        yield pool


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """At most ``n`` BLAS threads inside the block (0: leave them as they are). GMM training
    is many small matmuls, where extra threads cost more in synchronisation than they give."""
    if n <= 0:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(n):
        yield


def prefetched(load: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
    """(item, load(item)) for each item, the next one loaded by a second thread while the
    caller works on this one: reading a chunk of features overlaps training on the last.
    At most two results are alive. ``load`` must not call torch (see FrameStream)."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(load, items[0])
        for i, item in enumerate(items):
            result = pending.result()
            pending = reader.submit(load, items[i + 1]) if i + 1 < len(items) else None
            yield item, result
            del result
