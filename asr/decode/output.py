"""How ``asr decode`` prints a transcript: text, JSON lines, or Kaldi CTM with confidences."""

from __future__ import annotations

import json

from asr.decode.run import Hypothesis

FORMATS = ("text", "json", "ctm")


def format_hypothesis(key: str, hyp: Hypothesis, fmt: str, with_key: bool = True) -> str:
    """One file's result (no trailing newline).

    text: ``[key] WORD WORD ...`` | json: one object per line with word times (s) and
    confidences | ctm: ``key 1 start duration word confidence`` per word.
    """
    shift = hyp.frame_shift
    conf = hyp.confidence or [1.0] * len(hyp.ctm)
    if fmt == "text":
        return f"{key} {' '.join(hyp.words)}".rstrip() if with_key else " ".join(hyp.words)
    if fmt == "ctm":
        return "\n".join(f"{key} 1 {b * shift:.2f} {(e - b + 1) * shift:.2f} {w} {c:.2f}"
                         for (w, b, e), c in zip(hyp.ctm, conf))
    if fmt == "json":
        words = [{"word": w, "start": round(b * shift, 3), "end": round((e + 1) * shift, 3), "confidence": round(c, 3)}
                 for (w, b, e), c in zip(hyp.ctm, conf)]
        return json.dumps({"key": key, "text": " ".join(hyp.words), "words": words})
    raise ValueError(f"unknown format {fmt!r}")


def format_nbest(key: str, nbest: list[tuple[list[str], float]], fmt: str) -> str:
    """N-best lists of a graph-free CTC search: Kaldi-style ``key-1 ... key-N`` text lines (with
    the log-probability) or one JSON object."""
    if fmt == "json":
        return json.dumps({"key": key, "nbest": [{"text": " ".join(u), "log_prob": round(lp, 4)} for u, lp in nbest]})
    return "\n".join(f"{key}-{i + 1} {lp:.4f} {' '.join(u)}".rstrip() for i, (u, lp) in enumerate(nbest))
