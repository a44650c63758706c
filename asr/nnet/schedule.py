"""What every network trainer shares: torch setup, "newbob" learning-rate control, and
resumable checkpoints.

Newbob (Kaldi nnet1): after each epoch the held-out loss decides. An epoch that makes it
worse is rejected (the best weights are restored); once the relative improvement drops
below ``halving_threshold`` the learning rate is halved every epoch, and training stops
when the improvement drops below ``stop_threshold`` while halving, after
``max_halvings`` halvings, or at ``max_epochs`` (the caller's loop). The first
``keep_first`` epochs are never rejected (CTC training sits on an all-blank plateau for a
while, with a noisy held-out loss; restoring an early best there would keep it stuck).

The checkpoint holds weights, optimiser state and the schedule's state, tagged with a
fingerprint of the options and data, so a rerun with the same inputs resumes after its
last finished epoch and a rerun with other inputs starts over. ``max_epochs`` is left out
of the fingerprint (``checkpoint_fingerprint``): the epochs already run are the same for any limit, so a run can be
extended or cut short (Kaldi's ``--num-epochs`` on a rerun) without losing them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import torch

from asr.utils import AsrError, atomic_path, one_line

log = logging.getLogger(__name__)


def setup_torch(cfg) -> torch.device:
    """Threads, seed and device from a trainer config (``threads``, ``seed``, ``device``).

    Training is deterministic for a given seed and thread count: deterministic torch
    kernels, and every epoch's randomness drawn from :func:`epoch_generator`.
    """
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AsrError("--device cuda was asked for but torch sees no GPU")
    return device


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The randomness of one epoch (shuffles, and dropout / masks through the global RNG),
    a function of (seed, epoch) only: a run resumed after epoch k draws exactly what an
    uninterrupted run draws in epoch k + 1."""
    torch.manual_seed(seed * 1000 + epoch)
    return torch.Generator().manual_seed(seed * 1000 + epoch)


class Newbob:
    """Learning-rate schedule state; ``state`` is plain data so it goes into a checkpoint."""

    def __init__(self, learning_rate: float, min_epochs: int, halving_threshold: float, stop_threshold: float,
                 max_halvings: int, keep_first: int = 0, halve: bool = True):
        self.min_epochs, self.halving_threshold, self.keep_first = min_epochs, halving_threshold, keep_first
        self.halve = halve  # False: the halving phase (and its stopping rule) without changing the rate
        self.stop_threshold, self.max_halvings = stop_threshold, max_halvings
        self.state = {"epoch": 0, "lr": learning_rate, "halving": False, "halvings": 0, "history": [],
                      "best_cv": math.inf, "best_weights": None}
        self.seconds_before = 0.0  # wall seconds of the runs before a resume (load_checkpoint sets it)

    @classmethod
    def from_config(cls, cfg, keep_first: int = 0) -> "Newbob":
        """From any trainer config with the newbob and optimiser fields (:mod:`asr.nnet.optim`)."""
        from asr.nnet.optim import halves_learning_rate, initial_learning_rate

        return cls(initial_learning_rate(cfg), cfg.min_epochs, cfg.halving_threshold, cfg.stop_threshold,
                   cfg.max_halvings, keep_first, halves_learning_rate(cfg))

    def seconds(self, t_start: float) -> float:
        """Wall seconds the training has taken: the runs before a resume plus this one, which
        started at ``t_start`` (``time.time()``)."""
        return self.seconds_before + time.time() - t_start

    @property
    def lr(self) -> float:
        return self.state["lr"]

    @property
    def epoch(self) -> int:
        return self.state["epoch"]

    def end_epoch(self, net: torch.nn.Module, cv_loss: float, row: dict) -> bool:
        """Record an epoch's held-out loss; keep or reject its weights; True when training is done.

        ``row`` (the epoch's log line) gains ``accepted`` and goes into the history.
        """
        s = self.state
        prev = s["best_cv"]
        improvement = (prev - cv_loss) / abs(prev) if math.isfinite(prev) else math.inf
        epoch = s["epoch"] + 1
        if cv_loss < prev:
            s["best_cv"] = cv_loss
            s["best_weights"] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            row["accepted"] = True
        elif epoch <= self.keep_first:
            row["accepted"] = True  # kept to train on, though not the best so far
        else:
            net.load_state_dict(s["best_weights"])
            row["accepted"] = False
        done = False
        if epoch >= self.min_epochs:
            if s["halving"] and improvement < self.stop_threshold:
                done = True
            elif improvement < self.halving_threshold:
                s["halving"] = True
        if s["halving"] and not done:
            if self.halve:
                s["lr"] /= 2
            s["halvings"] += 1
            if s["halvings"] > self.max_halvings:
                done = True
        s["history"].append(row)
        s["epoch"] = epoch
        return done

    def restore_best(self, net: torch.nn.Module) -> None:
        if self.state["best_weights"] is not None:
            net.load_state_dict(self.state["best_weights"])


# Options that only say when to stop: changing them keeps a checkpoint valid.
STOPPING_OPTIONS = ("max_epochs",)


def checkpoint_fingerprint(cfg, **inputs) -> str:
    """What a checkpoint must have been trained with to be resumed: the trainer config ``cfg``
    (a dataclass) less its STOPPING_OPTIONS, and the training ``inputs`` (data dirs, sizes, ranks)."""
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in STOPPING_OPTIONS}
    return json.dumps({"config": options, **inputs}, sort_keys=True)


def load_checkpoint(path: Path, fingerprint: str, net: torch.nn.Module, opt: torch.optim.Optimizer,
                    schedule: Newbob) -> bool:
    """Resume from ``path`` when it was written for the same ``fingerprint``; True if resumed."""
    if not path.exists():
        return False
    # weights_only: tensors and plain containers only; a pickle that would build any other
    # object (run code) is refused, not executed.
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise AsrError(f"{path}: not a checkpoint this trainer wrote (refused to load it: "
                       f"{one_line(e)}); delete it to train from scratch") from None
    if not isinstance(saved, dict) or not {"fingerprint", "weights", "optimizer", "state"} <= set(saved):
        raise AsrError(f"{path}: not a checkpoint this trainer wrote; delete it to train from scratch")
    if saved["fingerprint"] != fingerprint:
        log.warning("%s was written with other options or data; starting from scratch", path)
        return False
    try:
        net.load_state_dict(saved["weights"])
        opt.load_state_dict(saved["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise AsrError(f"{path}: checkpoint does not fit this network ({one_line(e)}); "
                       "delete it to train from scratch") from None
    schedule.state = saved["state"]
    schedule.seconds_before = float(schedule.state.pop("seconds", 0.0))
    log.info("resuming training after epoch %d from %s", schedule.epoch, path)
    return True


def save_checkpoint(path: Path, fingerprint: str, net: torch.nn.Module, opt: torch.optim.Optimizer,
                    schedule: Newbob, seconds: float = 0.0) -> None:
    """``seconds``: wall time the training has taken so far, all runs (a resumed run's
    ``schedule.seconds_before`` plus its own), so the model's train time survives resumes."""
    with atomic_path(path) as tmp:
        torch.save({"fingerprint": fingerprint, "weights": net.state_dict(), "optimizer": opt.state_dict(),
                    "state": {**schedule.state, "seconds": seconds}}, tmp)
