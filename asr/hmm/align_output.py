"""Forced-alignment results as users read them: CTM, JSON, or Praat TextGrid.

An alignment here is a set of named tiers ("words", "phones", or "tokens" for CTC), each
a list of ``(label, start s, end s)`` intervals in time order. A TextGrid tier must
cover the whole file, so the gaps (silence) become intervals with an empty label, as the
Montreal Forced Aligner writes them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from asr.utils import AsrError, read_utf8

Tier = list[tuple[str, float, float]]
FORMATS = ("ctm", "json", "textgrid")


def to_ctm(key: str, tiers: dict[str, Tier], tier: str = "words") -> str:
    """Kaldi CTM lines ``key 1 start duration label`` of one tier."""
    return "".join(f"{key} 1 {b:.3f} {e - b:.3f} {lab}\n" for lab, b, e in tiers[tier])


def to_json(key: str, tiers: dict[str, Tier], duration: float) -> str:
    return json.dumps({"key": key, "duration": round(duration, 3),
                       **{name: [{"label": lab, "start": round(b, 3), "end": round(e, 3)} for lab, b, e in t]
                          for name, t in tiers.items()}}) + "\n"


def _filled(tier: Tier, duration: float) -> Tier:
    """The tier with its gaps as empty intervals, from 0 to ``duration``."""
    out, t = [], 0.0
    for lab, b, e in tier:
        b, e = max(b, t), min(max(e, b), duration)
        if b > t + 1e-9:
            out.append(("", t, b))
        if e > b:
            out.append((lab, b, e))
            t = e
    if duration > t + 1e-9:
        out.append(("", t, duration))
    return out


def to_textgrid(tiers: dict[str, Tier], duration: float) -> str:
    """Praat TextGrid (long text format) with one IntervalTier per tier."""
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {duration:.3f}",
             "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for n, (name, tier) in enumerate(tiers.items(), 1):
        intervals = _filled(tier, duration)
        lines += [f"    item [{n}]:", '        class = "IntervalTier"', f'        name = "{name}"', "        xmin = 0",
                  f"        xmax = {duration:.3f}", f"        intervals: size = {len(intervals)}"]
        for k, (lab, b, e) in enumerate(intervals, 1):
            text = lab.replace('"', '""')
            lines += [f"        intervals [{k}]:", f"            xmin = {b:.3f}", f"            xmax = {e:.3f}",
                      f'            text = "{text}"']
    return "\n".join(lines) + "\n"


def read_textgrid(path: str | Path) -> dict[str, Tier]:
    """IntervalTiers of a long-format TextGrid (empty intervals included)."""
    text = read_utf8(Path(path))
    if 'Object class = "TextGrid"' not in text:
        raise AsrError(f"{path}: not a TextGrid")
    tiers: dict[str, Tier] = {}
    for block in re.split(r"\n\s*item \[\d+\]:\n", text)[1:]:
        name = re.search(r'name = "(.*)"', block).group(1)
        tiers[name] = [(t.replace('""', '"'), float(b), float(e)) for b, e, t in
                       re.findall(r'xmin = ([\d.]+)\s*\n\s*xmax = ([\d.]+)\s*\n\s*text = "((?:[^"]|"")*)"', block)]
    return tiers
