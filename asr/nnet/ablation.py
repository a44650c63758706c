"""An ablation: one network per row, trained on the same data, decoded the same way, tabled.

Rows come from a TOML file (``recipes/<corpus>/ablation.toml``)::

    [base]                      # on top of the recipe's [dnn] (or [ctc]) section, every row
    max_epochs = 12
    [[row]]
    name = "sigmoid"            # exp dir name
    group = "activation"        # rows of a group are compared with each other
    set = {activation = "sigmoid"}
    [[row]]
    name = "ctc_gru"
    trainer = "ctc"             # dnn (default) or ctc
    set = {cell = "gru"}
    [[row]]
    name = "seeds3"
    ensemble = ["relu", "relu_seed1", "relu_seed2"]   # posteriors averaged (rows above)
    [[row]]
    name = "vote3"
    vote = ["relu", "tdnn", "cnn"]                    # ROVER over their decodes, best first
    [[row]]
    name = "snapshots"
    snapshots_of = "relu_snap"                        # that row's kept epochs as one ensemble
    [[row]]
    name = "mc_dropout"
    mc_dropout_of = "dropout"
    samples = 8
    [[row]]
    name = "search"
    search = {sampler = "tpe", trials = 8, space = ["learning_rate=log:1e-4:3e-3"]}

Every row is decoded on dev over the LMWT grid and on test *once* with dev's best setting;
the table marks, per group, the row with the best dev WER: choices are made on dev only.
A finished row (``row.json``) is skipped when the ablation is rerun (resumable).
"""

from __future__ import annotations

import json
import logging
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from asr.utils import AsrError, read_json, read_utf8, write_text_atomic

log = logging.getLogger(__name__)

ROW_KINDS = ("set", "ensemble", "vote", "snapshots_of", "mc_dropout_of", "search")


@dataclass
class Setup:
    """The data, alignment and configs every row shares."""

    config: dict  # the recipe's whole TOML
    data: Path  # training data dir (fbank)
    dev: Path
    test: Path
    lang: Path
    out: Path
    ali: Path | None = None
    gmm: Path | None = None
    section: str = "dnn"
    ctc_section: str = "ctc"
    lmwt: tuple[float, float, float] = (7, 17, 1)
    ctc_lmwt: tuple[float, float, float] = (0.25, 2, 0.25)
    base: dict = field(default_factory=dict)
    nj: int = 1


def read_rows(path: str | Path) -> tuple[dict, list[dict]]:
    """(base options, rows) of an ablation file, checked."""
    path = Path(path)
    try:
        doc = tomllib.loads(read_utf8(path))
    except tomllib.TOMLDecodeError as e:
        raise AsrError(f"{path}: {e}") from None
    rows = doc.get("row", [])
    if not rows:
        raise AsrError(f"{path}: no [[row]] entries")
    names = set()
    for r in rows:
        name = r.get("name")
        if not name or "/" in name or name in names:
            raise AsrError(f"{path}: every row needs a unique name without '/' (got {name!r})")
        kinds = [k for k in ROW_KINDS if k in r]
        if len(kinds) > 1:
            raise AsrError(f"{path}: row {name} mixes {', '.join(kinds)}")
        for ref in r.get("ensemble", []) + r.get("vote", []) + [r.get("snapshots_of"), r.get("mc_dropout_of")]:
            if ref is not None and ref not in names:
                raise AsrError(f"{path}: row {name} refers to {ref!r}, which is not a row above it")
        names.add(name)
    return doc.get("base", {}), rows


def _decode(setup: Setup, model: str, row_dir: Path, ctc: bool, mc_samples: int = 0):
    """Dev over the grid, then test once with dev's best setting: (dev, test) error counts."""
    from asr.decode.run import decode_data_dir, lmwt_grid

    from asr.acoustic import model_dirs

    meta = read_json(model_dirs(model)[0] / "model.json")
    from asr.decode.config import DecoderConfig

    base = DecoderConfig.from_dict(meta.get("decoder", {}))
    lo, hi, step = setup.ctc_lmwt if ctc else setup.lmwt
    dev = decode_data_dir(model, setup.dev, row_dir / "decode_dev", grid=lmwt_grid(lo, hi, (0.0, 0.5, 1.0), base, step),
                          nj=setup.nj, mc_samples=mc_samples)
    test = decode_data_dir(model, setup.test, row_dir / "decode_test", tune_on=row_dir / "decode_dev", nj=setup.nj,
                           mc_samples=mc_samples)
    return dev, test


def _load_finished(row_dir: Path) -> dict:
    """A finished row's result (completed with its error counts if written without them)."""
    result = read_json(row_dir / "row.json")
    if "dev_errors" not in result:
        _add_counts(result, row_dir)
        write_text_atomic(row_dir / "row.json", json.dumps(result, indent=1) + "\n")
    return result


def _add_counts(result: dict, row_dir: Path) -> None:
    """%WER, errors and reference words of the row's dev and test decodes."""
    for part in ("dev", "test"):
        info = read_json(row_dir / f"decode_{part}" / "decode_info.json")
        result[f"{part}_wer"], result[f"{part}_errors"], result[f"{part}_words"] = (info["wer"], info["errors"],
                                                                                    info["ref_words"])


def _row_options(setup: Setup, row: dict, ctc: bool) -> dict:
    """A row's trainer options: the recipe's section, then [base], then the row's ``set``."""
    return {**setup.config.get(setup.ctc_section if ctc else setup.section, {}), **setup.base, **row.get("set", {})}


def _train(setup: Setup, row: dict, row_dir: Path) -> dict:
    from asr.graph.mkgraph import make_graph

    ctc = row.get("trainer", "dnn") == "ctc"
    opts = _row_options(setup, row, ctc)
    if ctc:
        from asr.nnet.ctc_train import CtcTrainConfig, train_ctc

        model = train_ctc(setup.data, setup.lang, row_dir, CtcTrainConfig.from_flat(opts))
        make_graph(row_dir, setup.lang, setup.config.get("graph", {}), _first_graph(setup, ctc=True))
    else:
        from asr.nnet.train import TrainConfig, train_dnn

        if setup.ali is None or setup.gmm is None:
            raise AsrError("DNN rows need the alignment and its GMM (--ali, --gmm)")
        model = train_dnn(setup.data, setup.ali, setup.gmm, row_dir, TrainConfig.from_flat(opts))
        make_graph(row_dir, setup.lang, setup.config.get("graph", {}), setup.gmm)
    return {"model": str(row_dir), "ctc": ctc, "options": row.get("set", {}), **_train_figures(row_dir)}


def _first_graph(setup: Setup, ctc: bool) -> Path | None:
    """A CTC row's graph depends on the tokens and lexicon only: reuse an earlier row's."""
    for info in sorted(setup.out.glob("*/row.json")):
        r = read_json(info)
        if r.get("ctc") == ctc and (Path(r["model"]) / "graph.npz").exists():
            return Path(r["model"])
    return None


def _train_figures(model_dir: Path) -> dict:
    info = read_json(model_dir / "model.json").get("info", {})
    log_rows = read_json(model_dir / "train_log.json") if (model_dir / "train_log.json").exists() else []
    kept = [r for r in log_rows if r.get("accepted", True)]
    best = min(kept, key=lambda r: r["cv_loss"]) if kept else {}
    return {"epochs": info.get("epochs"), "train_seconds": info.get("train_seconds"),
            "parameters": info.get("parameters"), "cv_acc": best.get("cv_acc"), "cv_ter": best.get("cv_ter"),
            "cv_loss": info.get("best_cv_loss")}


def run_row(setup: Setup, row: dict) -> dict:
    name = row["name"]
    row_dir = setup.out / name
    done = row_dir / "row.json"
    if done.exists():
        return _load_finished(row_dir)
    t0 = time.time()
    rows_done = {p.parent.name: read_json(p) for p in setup.out.glob("*/row.json")}
    mc = 0
    if "ensemble" in row:
        members = [rows_done[m] for m in row["ensemble"]]
        model = ",".join(m["model"] for m in members)
        result = {"model": model, "ctc": members[0]["ctc"], "members": row["ensemble"],
                  "parameters": sum(m.get("parameters") or 0 for m in members),
                  "train_seconds": round(sum(m.get("train_seconds") or 0 for m in members), 1)}
    elif "snapshots_of" in row:
        src = rows_done[row["snapshots_of"]]
        snaps = sorted((Path(src["model"]) / "snapshots").glob("epoch*"))
        if len(snaps) < 2:
            raise AsrError(f"row {name}: {src['model']} kept fewer than two snapshots (train it with snapshots = N)")
        from asr.graph.mkgraph import make_graph

        for s in snaps:
            make_graph(s, setup.lang, setup.config.get("graph", {}), setup.gmm)
        model = ",".join(str(s) for s in snaps)
        result = {"model": model, "ctc": False, "members": [s.name for s in snaps],
                  "parameters": (src.get("parameters") or 0) * len(snaps), "train_seconds": src.get("train_seconds")}
    elif "mc_dropout_of" in row:
        src = rows_done[row["mc_dropout_of"]]
        mc = int(row.get("samples", 8))
        model = src["model"]
        result = {**{k: src.get(k) for k in ("ctc", "epochs", "train_seconds", "parameters", "cv_acc")},
                  "model": model, "mc_samples": mc}
    elif "vote" in row:
        from asr.decode.vote import vote_decode_dirs

        members = [rows_done[m] for m in row["vote"]]
        dirs = [setup.out / m for m in row["vote"]]
        vote_decode_dirs([d / "decode_dev" for d in dirs], setup.dev, row_dir / "decode_dev")
        vote_decode_dirs([d / "decode_test" for d in dirs], setup.test, row_dir / "decode_test")
        result = {"members": row["vote"],
                  "parameters": sum(m.get("parameters") or 0 for m in members),
                  "train_seconds": round(sum(m.get("train_seconds") or 0 for m in members), 1)}
    elif "search" in row:
        from asr.nnet.search import parse_space, search

        s = row["search"]
        ctc = row.get("trainer", "dnn") == "ctc"
        opts = _row_options(setup, row, ctc)
        search(opts, parse_space(s["space"]), setup.data, setup.ali, setup.gmm, setup.dev, row_dir / "trials",
               lmwt=setup.ctc_lmwt if ctc else setup.lmwt, nj=setup.nj, sampler=s.get("sampler", "tpe"),
               num_trials=s.get("trials", 8), kind="ctc" if ctc else "dnn", lang_dir=setup.lang,
               graph_opts=setup.config.get("graph", {}), seed=s.get("seed", 0))
        best = row_dir / "trials" / "best"
        result = {"model": str(best), "ctc": ctc, "options": read_json(best / "result.json")["values"],
                  **_train_figures(best)}
        result["train_seconds"] = sum(read_json(p)["train_seconds"] for p in (row_dir / "trials").glob("trial_*/result.json"))
    else:
        result = _train(setup, row, row_dir)
    if "vote" not in row:
        _decode(setup, result["model"], row_dir, bool(result.get("ctc")), mc)
    _add_counts(result, row_dir)
    result.update(name=name, group=_groups(row), note=row.get("note", ""),
                  wall_seconds=round(time.time() - t0, 1))
    row_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(done, json.dumps(result, indent=1) + "\n")
    log.info("ablation row %s: dev %.2f test %.2f", name, result["dev_wer"], result["test_wer"])
    return result


def run_ablation(setup: Setup, rows_file: str | Path, table: str | Path | None = None, only: list[str] | None = None,
                 title: str = "") -> list[dict]:
    """Run every row (or those in ``only``) and write the Markdown table to ``table``."""
    base, rows = read_rows(rows_file)
    setup.base = {**base, **setup.base}
    results = []
    for row in rows:
        if only and row["name"] not in only:
            continue
        results.append(run_row(setup, row))
    finished = [_load_finished(setup.out / r["name"]) for r in rows if (setup.out / r["name"] / "row.json").exists()]
    if table:
        table = Path(table)
        text = ablation_table(finished, rows, title)
        done = {r["name"]: r for r in finished}
        notes = tomllib.loads(read_utf8(Path(rows_file))).get("notes", "")
        if notes:  # the rows file's own discussion of the results
            text += "\n## Notes\n\n" + notes.strip() + "\n"
        for plot in read_plots(rows_file):
            have = [n for n in plot["rows"] if n in done and "model" in done[n]]
            if len(have) >= 2:
                from asr.plot import plot_training_curves

                png = table.with_name(f"{table.stem}_{plot['name']}.png")
                plot_training_curves({n: Path(done[n]["model"]) for n in have}, png, plot.get("title", plot["name"]))
                text += f"\n![{plot.get('title', plot['name'])}]({png.name})\n"
        write_text_atomic(table, text)
    return results


def read_plots(path: str | Path) -> list[dict]:
    """The ``[[plot]]`` entries (name, rows, title): training curves of those rows overlaid."""
    return tomllib.loads(read_utf8(Path(path))).get("plot", [])


def _groups(row: dict) -> list[str]:
    """A row's groups: ``group`` is one name or a list (the baseline belongs to many)."""
    g = row.get("group", "")
    return list(g) if isinstance(g, list) else [g]


def _fmt(v, spec: str = "") -> str:
    if v is None:
        return "-"
    return format(v, spec) if spec else str(v)


def ablation_table(results: list[dict], rows: list[dict], title: str = "") -> str:
    """Markdown: one line per finished row, grouped, the best dev WER of each group in bold."""
    by_name = {r["name"]: r for r in results}
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["name"] in by_name:
            for g in _groups(row):
                groups.setdefault(g, []).append({**row, **by_name[row["name"]]})
    lines = [f"# {title or 'Ablation'}", "",
             "Each row trains one variant on the same data and alignment and decodes it the same way. "
             "**dev** is the best %WER (errors) of the LMWT x penalty grid on dev; **test** is decoded once with "
             "the dev-chosen setting. Within each group the row chosen on dev is in bold: the lowest dev WER, "
             "ties broken by the held-out cross-entropy (training utterances the network never saw), never by "
             "test. held-out acc / CE: frame accuracy and cross-entropy of the hybrid networks on those "
             "utterances at the best epoch (CTC rows: the held-out token error rate). train s is wall-clock on "
             "a shared 2-core machine, so only a rough guide.", "",
             "| group | row | what changes | dev %WER (errors) | test %WER (errors) | held-out acc (or TER) | "
             "held-out CE | epochs | train s | parameters |", "|---|---|---|---|---|---|---|---|---|---|"]

    def key(r: dict) -> tuple:
        cv = r.get("cv_loss")
        return (r["dev_wer"], cv if cv is not None and "ctc" not in str(r.get("trainer", "")) else float("inf"))

    def wer(r: dict, part: str) -> str:
        e = r.get(f"{part}_errors")
        return f"{r[f'{part}_wer']:.2f}" + (f" ({e})" if e is not None else "")

    for group, members in groups.items():
        best = min(members, key=key)
        for r in members:
            what = r.get("note") or _describe(r)
            acc = (f"{r['cv_acc']:.3f}" if r.get("cv_acc") is not None else
                   f"TER {100 * r['cv_ter']:.1f}%" if r.get("cv_ter") is not None else "-")
            ce = f"{r['cv_loss']:.4f}" if r.get("cv_loss") is not None and r.get("cv_acc") is not None else "-"
            name = f"**{r['name']}**" if r is best and len(members) > 1 else r["name"]
            train_s = r.get("train_seconds")
            lines.append(f"| {group} | {name} | {what} | {wer(r, 'dev')} | {wer(r, 'test')} | {acc} | {ce} | "
                         f"{_fmt(r.get('epochs'))} | {_fmt(round(train_s) if train_s else None)} | "
                         f"{_fmt(r.get('parameters'))} |")
    return "\n".join(lines) + "\n"


def _describe(r: dict) -> str:
    if "ensemble" in r:
        return "posterior average of " + ", ".join(r["ensemble"])
    if "vote" in r:
        return "majority vote (ROVER) of " + ", ".join(r["vote"])
    if "snapshots_of" in r:
        return f"snapshot ensemble of {r['snapshots_of']} ({len(r.get('members', []))} epochs)"
    if "mc_dropout_of" in r:
        return f"{r['mc_dropout_of']} decoded with MC dropout ({r.get('mc_samples')} draws)"
    if "search" in r:
        return "search best: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in r.get("options", {}).items())
    opts = r.get("set", {})
    prefix = "CTC: " if r.get("trainer") == "ctc" else ""
    return prefix + (", ".join(f"{k}={v}" for k, v in opts.items()) or "the recipe's network")
