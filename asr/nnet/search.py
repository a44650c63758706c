"""Hyper-parameter search for the hybrid network or the CTC model, scored by WER on a dev set
(never test).

A search space is a list of ``name=...`` entries (``--space``), each an option of the
trainer's config section:

    hidden_dim=256,512,1024     a choice (values parsed as TOML)
    learning_rate=log:1e-4:1e-2 log-uniform on [1e-4, 1e-2]
    dropout=uniform:0:0.3       uniform
    num_layers=int:2:6          an integer, uniform on 2..6

Samplers (``sampler``): ``grid`` (every combination; choices only), ``random`` (independent
draws), ``tpe`` (a Tree-structured Parzen Estimator over the trials so far, Bergstra et al.
2011) and ``gp`` (Gaussian-process Bayesian optimisation), the last three from optuna.

Each trial trains a model with the base options plus the trial's values, decodes the dev
data dir over an LMWT grid and scores its best dev WER (ties broken by the held-out loss).
A hybrid trial reuses the GMM's graph (same tree); a CTC trial compiles its graph once and
later trials reuse it (same tokens and lexicon). The best trial is copied to ``out/best``
and every trial is tabled in ``out/search.md``.

Resumable: optuna's journal (``out/study.journal``) keeps the trials; a trial's dir is named
after its values, so a trial interrupted while training is queued again with the same values
and resumes from its checkpoint, and a finished trial is never retrained.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from asr.decode.run import decode_data_dir, lmwt_grid
from asr.graph.mkgraph import make_graph
from asr.nnet.train import TrainConfig, train_dnn
from asr.utils import AsrError, read_json, write_text_atomic

log = logging.getLogger(__name__)

SAMPLERS = ("grid", "random", "tpe", "gp")


@dataclass(frozen=True)
class Range:
    """A continuous or integer range: kind ``log`` | ``uniform`` | ``int``."""

    kind: str
    low: float
    high: float


def _parse_range(name: str, spec: str) -> Range:
    kind, *bounds = spec.split(":")
    try:
        low, high = (float(b) for b in bounds)
    except ValueError:
        raise AsrError(f"search range {name}={spec!r} should look like {kind}:LOW:HIGH") from None
    if not low < high or (kind == "log" and low <= 0):
        raise AsrError(f"search range {name}={spec!r} needs LOW < HIGH (and LOW > 0 for log)")
    return Range(kind, low, high)


def parse_space(items: list[str]) -> dict[str, list | Range]:
    """``["hidden_dim=256,512", "learning_rate=log:1e-4:1e-2"]`` -> {name: [values] or Range}."""
    import tomllib

    space: dict[str, list | Range] = {}
    for item in items:
        if "=" not in item:
            raise AsrError(f"search space entries look like name=v1,v2 or name=log:LOW:HIGH; got {item!r}")
        name, values = (x.strip() for x in item.split("=", 1))
        if values.split(":")[0] in ("log", "uniform", "int"):
            space[name] = _parse_range(name, values)
            continue
        parsed = []
        for v in values.split(","):
            try:
                parsed.append(tomllib.loads(f"v = {v}")["v"])
            except tomllib.TOMLDecodeError:
                parsed.append(v)
        space[name] = parsed
    return space


def trials(space: dict[str, list], num_random: int = 0, seed: int = 0) -> list[dict]:
    """Every combination of a space of choices, or ``num_random`` distinct random ones."""
    names = sorted(space)
    combos = [dict(zip(names, vals)) for vals in itertools.product(*(space[n] for n in names))]
    if num_random and num_random < len(combos):
        combos = random.Random(seed).sample(combos, num_random)
    return combos


def _suggest(trial, name: str, dist: list | Range):
    if isinstance(dist, Range):
        if dist.kind == "int":
            return trial.suggest_int(name, int(dist.low), int(dist.high))
        return trial.suggest_float(name, dist.low, dist.high, log=dist.kind == "log")
    # optuna stores choices as JSON-able values; index them so lists and mixed types work too
    k = trial.suggest_categorical(name, list(range(len(dist)))) if len(dist) > 1 else 0
    return dist[k]


def _sampler(name: str, space: dict, seed: int, num_trials: int):
    import optuna

    if name == "grid":
        ranges = [n for n, d in space.items() if isinstance(d, Range)]
        if ranges:
            raise AsrError(f"a grid search takes choices only; {', '.join(ranges)} are ranges (use random or tpe)")
        return optuna.samplers.GridSampler({n: list(range(len(d))) for n, d in space.items() if len(d) > 1},
                                           seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        # random draws first (a third of the budget, at most 5), then the Parzen estimators
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(5, num_trials // 3)))
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise AsrError(f"sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")


def _trial_dir(out_dir: Path, values: dict) -> Path:
    key = hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]
    return out_dir / f"trial_{key}"


@dataclass
class Task:
    """What one trial trains and how its dev decode is set up."""

    kind: str  # dnn | ctc
    data_dir: Path
    dev_dir: Path
    ali_dir: Path | None = None
    gmm_dir: Path | None = None
    lang_dir: Path | None = None
    graph_opts: dict | None = None
    lmwt: tuple[float, float, float] = (7, 17, 1)
    nj: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("dnn", "ctc"):
            raise AsrError(f"search kind must be dnn or ctc, got {self.kind!r}")
        if self.lang_dir is None:
            raise AsrError("a search needs --lang (the lexicon and LM of the trials' graphs)")
        if self.kind == "dnn":
            if self.ali_dir is None or self.gmm_dir is None:
                raise AsrError("a DNN search needs --ali and --gmm")
            if not (Path(self.gmm_dir) / "graph.npz").exists():
                raise AsrError(f"{self.gmm_dir} has no decoding graph; run asr mkgraph on it first")

    def train_and_decode(self, options: dict, trial_dir: Path, graph_from: Path | None) -> tuple[object, object]:
        if self.kind == "dnn":  # the GMM's graph fits (same tree, lexicon and LM): copied
            model = train_dnn(self.data_dir, self.ali_dir, self.gmm_dir, trial_dir, TrainConfig.from_flat(options))
            make_graph(trial_dir, self.lang_dir, self.graph_opts or {}, self.gmm_dir)
        else:  # compiled for the first trial, copied for the next (same tokens and lexicon)
            from asr.nnet.ctc_train import CtcTrainConfig, train_ctc

            model = train_ctc(self.data_dir, self.lang_dir, trial_dir, CtcTrainConfig.from_flat(options))
            make_graph(trial_dir, self.lang_dir, self.graph_opts or {}, graph_from)
        lo, hi, step = self.lmwt
        counts = decode_data_dir(trial_dir, self.dev_dir, trial_dir / "decode_dev",
                                 grid=lmwt_grid(lo, hi, (0.0,), model.decoder, step), nj=self.nj)
        if counts is None:
            raise AsrError(f"{self.dev_dir} has no text to score the search on")
        return model, counts


def _objective(row: dict) -> float:
    """Dev errors, ties broken by the held-out loss (always < 1 apart)."""
    cv = row["cv_loss"] if math.isfinite(row["cv_loss"]) else 999.0
    return row["dev_errors"] + min(abs(cv), 999.0) / 1000.0


def search(base: dict, space: dict[str, list | Range], data_dir: str | Path, ali_dir: str | Path | None,
           gmm_dir: str | Path | None, dev_dir: str | Path, out_dir: str | Path, num_random: int = 0,
           lmwt: tuple[float, ...] = (7, 17), nj: int = 1, sampler: str | None = None, num_trials: int = 0,
           kind: str = "dnn", lang_dir: str | Path | None = None, graph_opts: dict | None = None,
           seed: int = 0) -> dict:
    """Run (or resume) the search; returns the best trial's row.

    ``sampler`` defaults to ``random`` when ``num_random`` is given, else ``grid``;
    ``num_trials`` (or ``num_random``) is how many trials a non-grid search runs in all.
    """
    import optuna

    out_dir = Path(out_dir)
    sampler = sampler or ("random" if num_random else "grid")
    num_trials = num_trials or num_random
    if sampler == "grid":
        num_trials = math.prod(len(d) for d in space.values() if not isinstance(d, Range))
    elif num_trials <= 0:
        raise AsrError(f"a {sampler} search needs a number of trials (--trials)")
    lo, hi, *step = lmwt
    task = Task(kind, Path(data_dir), Path(dev_dir), Path(ali_dir) if ali_dir else None,
                Path(gmm_dir) if gmm_dir else None, Path(lang_dir) if lang_dir else None, graph_opts,
                (lo, hi, step[0] if step else 1.0), nj)
    out_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out_dir / "study.journal")))
    study = optuna.create_study(study_name="search", storage=storage, direction="minimize", load_if_exists=True)
    finished = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    # A resumed sampler gets a fresh seed: reseeded as before it would redraw the finished trials.
    study.sampler = _sampler(sampler, space, seed + finished, num_trials)
    for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
        # Interrupted: fail it and queue its values again (same dir: training resumes).
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(t.params, skip_if_exists=True)

    def objective(trial) -> float:
        values = {name: _suggest(trial, name, dist) for name, dist in sorted(space.items())}
        trial_dir = _trial_dir(out_dir, values)
        result = trial_dir / "result.json"
        if result.exists() and read_json(result)["values"] == values:
            row = read_json(result)
        else:
            log.info("trial %d: %s", trial.number, values)
            graphs = [p.parent for p in sorted(out_dir.glob("trial_*/graph.npz"))]
            model, counts = task.train_and_decode({**base, **values}, trial_dir, graphs[0] if graphs else None)
            row = {"values": values, "dev_wer": counts.wer, "dev_errors": counts.errors,
                   "cv_loss": model.info["best_cv_loss"], "epochs": model.info["epochs"],
                   "train_seconds": model.info["train_seconds"], "parameters": model.info["parameters"]}
            write_text_atomic(result, json.dumps(row, indent=1) + "\n")
        trial.set_user_attr("dir", trial_dir.name)
        return _objective(row)

    done = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    if done < num_trials:
        study.optimize(objective, n_trials=num_trials - done, catch=())
    rows = []
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        row = read_json(out_dir / t.user_attrs["dir"] / "result.json")
        rows.append({"trial": t.number, "dir": t.user_attrs["dir"], **row})
    best = min(rows, key=_objective)
    best_dir = out_dir / "best"
    if best_dir.exists():
        shutil.rmtree(best_dir)
    shutil.copytree(out_dir / best["dir"], best_dir)
    write_text_atomic(out_dir / "search.md", _table(rows, best, space, base, dev_dir, sampler, task.lmwt, best_dir))
    log.info("search: best trial %d %s, dev %%WER %.2f", best["trial"], best["values"], best["dev_wer"])
    return best


def _table(rows, best, space, base, dev_dir, sampler, lmwt, best_dir) -> str:
    names = sorted(space)
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| trial | " + " | ".join(names) + " | dev %WER | held-out loss | epochs | train s | parameters |",
             "|" + "---|" * (len(names) + 6)]
    for r in sorted(rows, key=lambda r: r["trial"]):
        mark = " **best**" if r is best else ""
        lines.append(f"| {r['trial']}{mark} | " + " | ".join(fmt(r["values"][n]) for n in names)
                     + f" | {r['dev_wer']:.2f} | {r['cv_loss']:.4f} | {r['epochs']} | {r['train_seconds']} | "
                     f"{r['parameters']} |")
    space_txt = ", ".join(f"{n}: {d.kind} [{d.low:g}, {d.high:g}]" if isinstance(d, Range) else f"{n}: {d}"
                          for n, d in sorted(space.items()))
    return (f"# Hyper-parameter search on {dev_dir}\n\nSampler `{sampler}` over {space_txt}. Base options: "
            f"`{json.dumps(base)}`; dev WER = best over LMWT {lmwt[0]:g}..{lmwt[1]:g} (step {lmwt[2]:g}) on the dev "
            f"set only. Best trial copied to `{best_dir}`.\n\n" + "\n".join(lines) + "\n")
