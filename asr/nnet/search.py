"""Hyper-parameter search for the hybrid network, scored by WER on a dev set (never test).

Each trial trains a model with one configuration (the base options plus the trial's
values), decodes the dev data dir with it (the GMM's decoding graph fits every trial:
same tree, same HMMs) over an LMWT grid, and records the best dev WER. Trials are a
full grid over the given values or ``num_random`` random draws from it. The best trial
is copied to ``out/best`` and a Markdown table of every trial is written to
``out/search.md``. Finished trials are skipped when the search is rerun (resumable).
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import shutil
from pathlib import Path

from asr.decode.run import decode_data_dir, lmwt_grid
from asr.nnet.train import TrainConfig, train_dnn
from asr.utils import AsrError, read_json, write_text_atomic

log = logging.getLogger(__name__)


def parse_space(items: list[str]) -> dict[str, list]:
    """``["hidden_dim=256,512", "optimizer=adam,sgd"]`` -> {name: [values]} (values parsed as TOML)."""
    import tomllib

    space: dict[str, list] = {}
    for item in items:
        if "=" not in item:
            raise AsrError(f"search space entries look like name=v1,v2; got {item!r}")
        name, values = item.split("=", 1)
        parsed = []
        for v in values.split(","):
            try:
                parsed.append(tomllib.loads(f"v = {v}")["v"])
            except tomllib.TOMLDecodeError:
                parsed.append(v)
        space[name.strip()] = parsed
    return space


def trials(space: dict[str, list], num_random: int = 0, seed: int = 0) -> list[dict]:
    """Every combination of the space, or ``num_random`` distinct random ones."""
    names = sorted(space)
    combos = [dict(zip(names, vals)) for vals in itertools.product(*(space[n] for n in names))]
    if num_random and num_random < len(combos):
        combos = random.Random(seed).sample(combos, num_random)
    return combos


def search(base: dict, space: dict[str, list], data_dir: str | Path, ali_dir: str | Path, gmm_dir: str | Path,
           dev_dir: str | Path, out_dir: str | Path, num_random: int = 0, lmwt: tuple[int, int] = (7, 17),
           nj: int = 1) -> dict:
    """Run the search; returns the best trial's row."""
    out_dir, gmm_dir = Path(out_dir), Path(gmm_dir)
    graph = gmm_dir / "graph.npz"
    if not graph.exists():
        raise AsrError(f"{gmm_dir} has no decoding graph; run asr mkgraph on it first")
    rows = []
    for k, values in enumerate(trials(space, num_random)):
        trial_dir = out_dir / f"trial{k:02d}"
        result = trial_dir / "result.json"
        if result.exists() and read_json(result)["values"] == values:
            rows.append(read_json(result))
            continue
        log.info("trial %d: %s", k, values)
        model = train_dnn(data_dir, ali_dir, gmm_dir, trial_dir, TrainConfig.from_flat({**base, **values}))
        shutil.copyfile(graph, trial_dir / "graph.npz")
        counts = decode_data_dir(trial_dir, dev_dir, trial_dir / "decode_dev",
                                 grid=lmwt_grid(lmwt[0], lmwt[1], (0.0,), model.decoder),
                                 nj=nj)
        if counts is None:
            raise AsrError(f"{dev_dir} has no text to score the search on")
        row = {"trial": k, "values": values, "dev_wer": counts.wer, "dev_errors": counts.errors,
               "cv_loss": model.info["best_cv_loss"], "epochs": model.info["epochs"],
               "train_seconds": model.info["train_seconds"], "parameters": model.info["parameters"]}
        write_text_atomic(result, json.dumps(row, indent=1) + "\n")
        rows.append(row)
    best = min(rows, key=lambda r: (r["dev_errors"], r["cv_loss"]))
    best_dir = out_dir / "best"
    if best_dir.exists():
        shutil.rmtree(best_dir)
    shutil.copytree(out_dir / f"trial{best['trial']:02d}", best_dir)
    names = sorted(space)
    table = ["| trial | " + " | ".join(names) + " | dev %WER | held-out CE | epochs | train s | parameters |",
             "|" + "---|" * (len(names) + 6)]
    for r in rows:
        mark = " **best**" if r is best else ""
        table.append(f"| {r['trial']}{mark} | " + " | ".join(str(r["values"][n]) for n in names)
                     + f" | {r['dev_wer']:.2f} | {r['cv_loss']:.4f} | {r['epochs']} | {r['train_seconds']} | "
                     f"{r['parameters']} |")
    text = (f"# Hyper-parameter search on {dev_dir}\n\nBase options: `{json.dumps(base)}`; "
            f"dev WER = best over LMWT {lmwt[0]}..{lmwt[1]}. Best trial copied to `{best_dir}`.\n\n"
            + "\n".join(table) + "\n")
    write_text_atomic(out_dir / "search.md", text)
    log.info("search: best trial %d %s, dev %%WER %.2f", best["trial"], best["values"], best["dev_wer"])
    return best
