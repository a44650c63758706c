"""Figures (PNG, headless): an alignment over the spectrogram, a posteriorgram, training
curves, and WER bars per system. Every figure is ``FIG_SIZE`` inches at ``DPI``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from asr.utils import AsrError, atomic_path, ensure_dir, read_json

FIG_SIZE = (10.0, 6.0)
DPI = 100  # 1000 x 600 pixels
KINDS = ("align", "posteriors", "training", "wer")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: str | Path) -> Path:
    out = Path(out)
    ensure_dir(out.parent)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    _pyplot().close(fig)
    return out


def _spectrogram(samples: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """(F, T) log power spectrogram, 25 ms windows every 10 ms; returns it and the frame shift (s)."""
    win, hop = int(0.025 * rate), int(0.010 * rate)
    if len(samples) < win:
        raise AsrError("audio too short to plot (under 25 ms)")
    n = 1 + (len(samples) - win) // hop
    frames = np.stack([samples[i * hop:i * hop + win] for i in range(n)]) * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return 10 * np.log10(power.T + 1e-10), hop / rate


def plot_alignment(audio: str, tiers: dict[str, list[tuple[str, float, float]]], out: str | Path) -> Path:
    """(a) Waveform, spectrogram, and one row of labelled intervals per tier."""
    from asr.audio import read_audio

    plt = _pyplot()
    samples, rate = read_audio(audio)
    spec, shift = _spectrogram(samples, rate)
    duration = len(samples) / rate
    fig, axes = plt.subplots(2 + len(tiers), 1, figsize=FIG_SIZE, sharex=True,
                             gridspec_kw={"height_ratios": [1, 2] + [0.4] * len(tiers)})
    axes[0].plot(np.arange(len(samples)) / rate, samples, lw=0.3, color="black")
    axes[0].set_ylabel("wave")
    axes[1].imshow(spec, origin="lower", aspect="auto", cmap="magma",
                   extent=(0, spec.shape[1] * shift, 0, rate / 2000))
    axes[1].set_ylabel("kHz")
    for ax, (name, tier) in zip(axes[2:], tiers.items()):
        for k, (lab, b, e) in enumerate(tier):
            ax.axvspan(b, e, color="C0" if k % 2 else "C1", alpha=0.3)
            ax.text((b + e) / 2, 0.5, lab, ha="center", va="center", fontsize=7, clip_on=True)
            for a in axes[:2]:
                a.axvline(b, color="white" if a is axes[1] else "grey", lw=0.4, alpha=0.6)
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    axes[-1].set_xlim(0, duration)
    axes[-1].set_xlabel("seconds")
    fig.suptitle(Path(audio).name)
    return _save(fig, out)


def plot_posteriors(log_posteriors: np.ndarray, labels: list[str] | None, frame_shift: float, title: str,
                    out: str | Path) -> Path:
    """(b) Posteriorgram: (T, V) posteriors as an image (labels on the y axis when few enough)."""
    plt = _pyplot()
    post = np.exp(np.asarray(log_posteriors)).T
    fig, ax = plt.subplots(figsize=FIG_SIZE)
    ax.imshow(post, origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=1,
              extent=(0, post.shape[1] * frame_shift, -0.5, post.shape[0] - 0.5))
    if labels is not None and len(labels) <= 60:
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=6)
    ax.set_xlabel("seconds")
    ax.set_ylabel("output")
    ax.set_title(title)
    return _save(fig, out)


def plot_training(model_dir: str | Path, out: str | Path) -> Path:
    """(c) Training curves from train_log.json: loss, accuracy (or CTC token error) and learning
    rate per epoch of a network; log-likelihood and Gaussians per EM iteration of a GMM."""
    path = Path(model_dir) / "train_log.json"
    if not path.exists():
        raise AsrError(f"{model_dir}: no train_log.json (not a trained model dir)")
    rows = read_json(path)
    if not rows:
        raise AsrError(f"{path}: nothing logged")
    plt = _pyplot()
    if "iter" in rows[0]:
        return _plot_em(plt, model_dir, rows, out)
    ep = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=FIG_SIZE)
    axes[0].plot(ep, [r["train_loss"] for r in rows], "o-", label="train")
    axes[0].plot(ep, [r["cv_loss"] for r in rows], "o-", label="held-out")
    axes[0].set_title("loss")
    axes[0].legend()
    if "cv_acc" in rows[0]:
        axes[1].plot(ep, [r["train_acc"] for r in rows], "o-", label="train")
        axes[1].plot(ep, [r["cv_acc"] for r in rows], "o-", label="held-out")
        axes[1].set_title("frame accuracy")
    else:
        axes[1].plot(ep, [100 * r["cv_ter"] for r in rows], "o-", color="C1", label="held-out")
        axes[1].set_title("token error rate (%)")
    axes[1].legend()
    axes[2].semilogy(ep, [r["lr"] for r in rows], "o-", color="C2")
    axes[2].set_title("learning rate")
    rejected = [r["epoch"] for r in rows if not r.get("accepted", True)]
    for ax in axes:
        ax.set_xlabel("epoch")
        for e in rejected:
            ax.axvline(e, color="red", lw=0.5, alpha=0.5)
    fig.suptitle(f"{model_dir}" + (" (red: rejected epochs)" if rejected else ""))
    fig.tight_layout()
    return _save(fig, out)


def plot_training_curves(model_dirs: dict[str, Path], out: str | Path, title: str = "") -> Path:
    """Several networks' training curves overlaid (label -> model dir with train_log.json):
    training and held-out loss per epoch (rejected epochs shown as they were measured)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=FIG_SIZE)
    for k, (label, d) in enumerate(model_dirs.items()):
        path = Path(d) / "train_log.json"
        if not path.exists():
            raise AsrError(f"{d}: no train_log.json (not a trained model dir)")
        rows = read_json(path)
        ep = [r["epoch"] for r in rows]
        axes[0].plot(ep, [r["train_loss"] for r in rows], "o-", color=f"C{k}", label=label)
        axes[1].plot(ep, [r["cv_loss"] for r in rows], "o-", color=f"C{k}", label=label)
    for ax, name in zip(axes, ("training loss", "held-out loss")):
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def _plot_em(plt, model_dir, rows: list[dict], out: str | Path) -> Path:
    it = [r["iter"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=FIG_SIZE)
    axes[0].plot(it, [r["loglik_per_frame"] for r in rows], "o-", ms=3)
    axes[0].set_title("log-likelihood per frame")
    axes[1].plot(it, [r["gaussians"] for r in rows], "o-", ms=3, color="C2")
    axes[1].set_title("Gaussians")
    for ax in axes:
        ax.set_xlabel("EM iteration")
        for r in rows:
            if "align_score_per_frame" in r:
                ax.axvline(r["iter"], color="grey", lw=0.5, alpha=0.5)
    fig.suptitle(f"{model_dir} (grey: realignments)")
    fig.tight_layout()
    return _save(fig, out)


def plot_wer(exp_dir: str | Path, out: str | Path) -> Path:
    """(d) WER per decoded system and set (the results table as bars)."""
    from asr.results import collect

    rows = [r for r in collect(exp_dir) if "wer" in r["info"]]
    if not rows:
        raise AsrError(f"{exp_dir}: nothing scored yet")
    plt = _pyplot()
    names = [f"{r['system']}\n{r['set']}" for r in rows]
    wers = [r["info"]["wer"] for r in rows]
    colors = ["C7" if r["info"].get("unit", "word") != "word" else "C0" for r in rows]
    fig, ax = plt.subplots(figsize=FIG_SIZE)
    bars = ax.bar(range(len(rows)), wers, color=colors)
    ax.bar_label(bars, [f"{w:.2f}" for w in wers], fontsize=7)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(names, fontsize=7, rotation=45 if len(rows) > 8 else 0)
    ax.set_ylabel("% WER (grey: token error rate without LM)")
    ax.set_title(f"{exp_dir}")
    fig.tight_layout()
    return _save(fig, out)
