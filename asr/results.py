"""Results tables: every decoded system of an experiment folder, as Markdown."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

from asr.utils import AsrError, read_json, read_utf8, write_text_atomic

SYSTEM_ORDER = ["mono", "tri1", "dnn", "ctc"]


def collect(exp_dir: str | Path) -> list[dict]:
    """One row per ``<system>/decode_<set>`` folder that has a decode_info.json."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise AsrError(f"{exp_dir}: no such experiment folder")
    rows = []
    for info_path in sorted(exp_dir.glob("*/decode_*/decode_info.json")):
        info = read_json(info_path)
        system = info_path.parent.parent.name
        model_info = {}
        mj = info_path.parent.parent / "model.json"
        if mj.exists():
            model_info = read_json(mj).get("info", {})
        wer_path = info_path.parent / "wer.txt"
        rows.append({
            "system": system, "set": info_path.parent.name[len("decode_"):],
            "wer_line": read_utf8(wer_path).splitlines()[0] if wer_path.exists() else "",
            "info": info, "model": model_info,
        })
    rank = {s: i for i, s in enumerate(SYSTEM_ORDER)}

    def natural(name: str) -> list:
        """tri1_500leaves before tri1_1000leaves: numbers compare as numbers."""
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]

    rows.sort(key=lambda r: (rank.get(r["system"], 99), natural(r["system"]), r["set"]))
    return rows


def _seed_threads(model_info: dict) -> str:
    """How a neural row can be reproduced: its seed and torch thread count ("-" for GMMs,
    whose training draws no random numbers)."""
    if "seed" not in model_info:
        return "-"
    return f"{model_info['seed']} / {model_info.get('threads', '?')}"


def _label_texts(system: str, labels: list[str]) -> list[str]:
    """The TEXTs of the ``SYSTEM=TEXT`` labels that match ``system`` (``SYSTEM`` may end in ``*``)."""
    out = []
    for item in labels:
        pattern, sep, text = item.partition("=")
        if not sep or not pattern or not text:
            raise AsrError(f"--label expects SYSTEM=TEXT (SYSTEM may end in *), got {item!r}")
        if system.startswith(pattern[:-1]) if pattern.endswith("*") else system == pattern:
            out.append(text)
    return out


def apply_labels(rows: list[dict], labels: list[str]) -> None:
    """Append ``TEXT`` to the "chosen how" of every row whose system matches ``SYSTEM=TEXT``:
    how a recipe says that a row rests on a choice not made on dev (e.g. "test-tuned: ...")."""
    for r in rows:
        for text in _label_texts(r["system"], labels):
            r["info"]["selection"] = f"{r['info'].get('selection', '')}; {text}".lstrip("; ")


def markdown_table(rows: list[dict]) -> str:
    head = ("| system | set | %WER | errors (Kaldi line) | %SER | chosen how | RTF | train s | pdfs | Gaussians "
            "| NN params | seed / threads |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        i, m = r["info"], r["model"]
        wer = f"{i['wer']:.2f}" if "wer" in i else "-"
        if "wer" in i and i.get("unit", "word") != "word":
            wer += " (PER)" if i["unit"] == "phone" else f" ({i['unit']} ER)"
        ser = f"{i['ser']:.2f}" if "ser" in i else "-"
        lines.append(f"| {r['system']} | {r['set']} | {wer} | `{r['wer_line']}` | {ser} | {i.get('selection', '')} | "
                     f"{i.get('rtf', '-')} | {m.get('train_seconds', '-')} | {m.get('num_pdfs', '-')} | "
                     f"{m.get('gaussians', '-')} | {m.get('parameters', '-')} | {_seed_threads(m)} |")
    return head + "\n".join(lines) + "\n"


_SEED_COPY = re.compile(r"^(?P<base>.+)_seed\d+$")


def seed_table(rows: list[dict]) -> str:
    """Mean and range of each system's WER over its seed copies (``<sys>`` trained with the
    default seed plus ``<sys>_seed<k>`` with ``--set seed=k``, everything else equal), per
    set; empty when no system has copies."""
    groups: dict[tuple[str, str], list[tuple[int, float]]] = {}
    names = {r["system"] for r in rows}
    for r in rows:
        m = _SEED_COPY.match(r["system"])
        base = m.group("base") if m and m.group("base") in names else r["system"]
        if "wer" in r["info"] and "seed" in r["model"]:
            groups.setdefault((base, r["set"]), []).append((r["model"]["seed"], r["info"]["wer"]))
    lines = []
    for (base, dset), runs in sorted(groups.items()):
        if len(runs) < 2:
            continue
        wers = [w for _, w in sorted(runs)]
        lines.append(f"| {base} | {dset} | {', '.join(str(k) for k, _ in sorted(runs))} | {sum(wers) / len(wers):.2f} "
                     f"| {min(wers):.2f} - {max(wers):.2f} | {', '.join(f'{w:.2f}' for w in wers)} |")
    if not lines:
        return ""
    return ("\n### Across seeds\n\n| system | set | seeds | mean %WER | range | per seed |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n")


def write_results(exp_dir: str | Path, out: str | Path, title: str = "", commands: str = "",
                  notes: str | Path | None = None, labels: list[str] | None = None) -> str:
    """Write the Markdown results table (plus a recipe's hand-written notes, if given) to ``out``."""
    rows = collect(exp_dir)
    if not rows:
        raise AsrError(f"{exp_dir}: nothing decoded yet (no */decode_*/decode_info.json)")
    apply_labels(rows, labels or [])
    text = f"# Results: {title or Path(exp_dir).name}\n\n"
    text += f"Generated {datetime.date.today().isoformat()} by `asr results {exp_dir}`"
    text += f" after `{commands}`.\n\n" if commands else ".\n\n"
    text += markdown_table(rows)
    text += seed_table(rows)
    text += ("\nRTF = search seconds per second of audio, one lattice-generating pass (2-core CPU; "
             "a grid of settings is scored from the lattices). "
             "(PER) = phone error rate of a CTC model's greedy output, without lexicon or LM. "
             "\"best of grid\" = Kaldi's best_wer over LMWT x insertion penalty on that set; "
             "\"tuned on\" = the setting chosen on a dev set, applied once.\n")
    # Paths relative to the repository root (exp/<corpus> sits two levels below it).
    text = text.replace(f"{Path(exp_dir).resolve().parent.parent}/", "")
    if notes is not None and Path(notes).exists():
        text += "\n" + read_utf8(Path(notes))
    write_text_atomic(out, text)
    return text


def _wer(line: str) -> str:
    m = re.match(r"%WER\s+([0-9.]+)", line or "")
    return m.group(1) if m else "-"


def cross_table(exp_dir: str | Path, labels: list[str] | None = None) -> str:
    """Markdown: one row per system of a cross-corpus folder (``<corpus>_<system>/decode_<target>_<set>``),
    one column per target: its test WER with the dev WER its setting was read on, and the
    system's WER on its own corpus's test set (``<model>/decode_test``) for comparison.
    ``labels`` (``<corpus>_<system>=TEXT``) are added to the model's name, e.g. "not chosen on dev"."""
    rows = collect(exp_dir)
    if not rows:
        raise AsrError(f"{exp_dir}: nothing decoded yet (no */decode_*/decode_info.json)")
    cells: dict[str, dict[str, dict[str, str]]] = {}
    own: dict[str, str] = {}
    for r in rows:
        target, _, split = r["set"].rpartition("_")
        cells.setdefault(r["system"], {}).setdefault(target, {})[split] = _wer(r["wer_line"])
        own_wer = Path(r["info"].get("model", "")) / "decode_test" / "wer.txt"
        if r["system"] not in own and own_wer.is_file():
            own[r["system"]] = _wer(read_utf8(own_wer).splitlines()[0])
    targets = sorted({t for per in cells.values() for t in per})
    head = "| model | own test | " + " | ".join(f"{t} test (dev)" for t in targets) + " |\n"
    head += "|---|---|" + "---|" * len(targets) + "\n"
    body = ""
    for system in sorted(cells, key=lambda s: (s.split("_")[0], s)):
        corpus, _, name = system.partition("_")
        label = "".join(f" ({t})" for t in _label_texts(system, labels or []))
        row = [f"{corpus} {name}{label}", own.get(system, "-")]
        for t in targets:
            c = cells[system].get(t)
            row.append(f"{c.get('test', '-')} ({c.get('dev', '-')})" if c else "")
        body += "| " + " | ".join(row) + " |\n"
    return head + body


def write_cross_results(exp_dir: str | Path, out: str | Path, notes: str | Path | None = None,
                        labels: list[str] | None = None) -> str:
    """Write the cross-corpus table (:func:`cross_table`) and a recipe's notes to ``out``."""
    text = "# Results: cross-corpus\n\n"
    text += (f"Generated {datetime.date.today().isoformat()} by `asr results --cross {exp_dir}` after "
             "`make -C recipes/cross`. %WER of each model (rows) on other corpora's test sets (columns), "
             "with the target set's grammar; LMWT and penalty read on the target corpus's dev set (in "
             "parentheses: that dev WER, best of grid), test decoded once.\n\n")
    text += cross_table(exp_dir, labels)
    text = text.replace(f"{Path(exp_dir).resolve().parent.parent}/", "")
    if notes is not None and Path(notes).exists():
        text += "\n" + read_utf8(Path(notes))
    write_text_atomic(out, text)
    return text
