"""Optimisers as the textbooks define them, shared by every network trainer.

- ``sgd``: w <- w - lr * g.  ``momentum``: v <- mu v + g, w <- w - lr * v (torch's form).
- ``adadelta`` (Zeiler 2012): the step is RMS[dw] / RMS[g] * g, with running averages of
  decay ``rho`` and the constant ``eps``; the definition has *no* learning rate, so the
  default multiplier is 1.0 (torch scales the step by ``lr``; a 1e-3 there makes steps ~1000x
  too small) and newbob does not halve it unless ``halve_adadelta`` is set.
- ``adam`` (Kingma & Ba 2015), betas (0.9, 0.999).

Weight decay, two different things under Adam (Loshchilov & Hutter 2019):
- ``weight_decay_mode = "l2"`` (the books' definition): (lambda / 2) ||w||^2 is added to the
  minibatch's mean loss, so its gradient lambda * w goes through the optimiser (under Adam it
  is rescaled per weight like the rest of the gradient);
- ``"decoupled"`` (AdamW): after the gradient step every decayed weight shrinks by
  w <- w (1 - lr * lambda), outside the optimiser's statistics.
For plain SGD the two coincide. Biases and batch-norm parameters (every 1-D parameter) are
not decayed unless ``decay_all`` is set (a decayed bias or BN scale only hurts the fit).
"""

from __future__ import annotations

import torch
from torch import nn

from asr.utils import AsrError

OPTIMIZERS = ("sgd", "momentum", "adadelta", "adam")
WEIGHT_DECAY_MODES = ("l2", "decoupled")
DEFAULT_LEARNING_RATES = {"sgd": 0.1, "momentum": 0.01, "adadelta": 1.0, "adam": 1e-3}


def check_optimizer_options(cfg) -> None:
    """Validate the optimiser fields of a trainer config (one-line errors)."""
    if cfg.optimizer not in OPTIMIZERS:
        raise AsrError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
    if cfg.weight_decay_mode not in WEIGHT_DECAY_MODES:
        raise AsrError(f"weight_decay_mode must be one of {', '.join(WEIGHT_DECAY_MODES)}, "
                       f"got {cfg.weight_decay_mode!r}")
    if cfg.learning_rate < 0 or cfg.weight_decay < 0 or cfg.grad_clip < 0:
        raise AsrError("learning_rate, weight_decay and grad_clip must be >= 0")
    if not 0 < cfg.adadelta_rho < 1 or cfg.adadelta_eps <= 0:
        raise AsrError("adadelta_rho must be in (0, 1) and adadelta_eps > 0")


def initial_learning_rate(cfg) -> float:
    """``learning_rate``, or the optimiser's textbook default when it is 0."""
    return cfg.learning_rate or DEFAULT_LEARNING_RATES[cfg.optimizer]


def halves_learning_rate(cfg) -> bool:
    """Whether newbob halves the learning rate (AdaDelta sets its own step size: not by default)."""
    return cfg.optimizer != "adadelta" or cfg.halve_adadelta


def parameter_groups(net: nn.Module, decay_all: bool) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decayed, not decayed): weight matrices and kernels vs biases and norm scales (1-D)."""
    decay, keep = [], []
    for p in net.parameters():
        if p.requires_grad:
            (decay if decay_all or p.ndim > 1 else keep).append(p)
    return decay, keep


class Optimizer:
    """A torch optimiser plus the weight-decay and clipping rules above.

    ``step(loss)`` takes the minibatch's mean loss, adds the L2 term when asked, runs
    backward, clips the gradient norm, steps, and applies decoupled decay.
    """

    def __init__(self, net: nn.Module, cfg):
        check_optimizer_options(cfg)
        self.cfg = cfg
        self.decayed, self.kept = parameter_groups(net, getattr(cfg, "decay_all", False))
        self.params = self.decayed + self.kept
        lr = initial_learning_rate(cfg)
        groups = [{"params": self.decayed}, {"params": self.kept}]
        if cfg.optimizer == "sgd":
            self.torch = torch.optim.SGD(groups, lr=lr)
        elif cfg.optimizer == "momentum":
            self.torch = torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
        elif cfg.optimizer == "adadelta":
            self.torch = torch.optim.Adadelta(groups, lr=lr, rho=cfg.adadelta_rho, eps=cfg.adadelta_eps)
        else:
            self.torch = torch.optim.Adam(groups, lr=lr)

    @property
    def param_groups(self) -> list[dict]:
        return self.torch.param_groups

    def set_lr(self, lr: float) -> None:
        for g in self.torch.param_groups:
            g["lr"] = lr

    def l2_term(self) -> torch.Tensor | float:
        """(lambda / 2) sum ||w||^2 over the decayed weights (0 unless mode "l2")."""
        wd = self.cfg.weight_decay
        if not wd or self.cfg.weight_decay_mode != "l2" or not self.decayed:
            return 0.0
        return 0.5 * wd * sum((p * p).sum() for p in self.decayed)

    def step(self, mean_loss: torch.Tensor) -> float | None:
        """One update from the minibatch's mean loss; returns the gradient norm before clipping
        (None when no clipping is asked)."""
        self.torch.zero_grad(set_to_none=True)
        (mean_loss + self.l2_term()).backward()
        norm = None
        if self.cfg.grad_clip > 0:
            norm = float(nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip))
        self.torch.step()
        wd = self.cfg.weight_decay
        if wd and self.cfg.weight_decay_mode == "decoupled":
            lr = self.torch.param_groups[0]["lr"]
            with torch.no_grad():
                for p in self.decayed:
                    p.mul_(1.0 - lr * wd)
        return norm

    def state_dict(self) -> dict:
        return self.torch.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.torch.load_state_dict(state)
