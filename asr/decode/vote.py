"""Majority vote over the hypotheses of several systems (ROVER, Fiscus 1997, without confidences).

The systems' word sequences are aligned into one word transition network (a sausage of
slots): the first system's words start it, and each further hypothesis is aligned to the
slots by edit distance (matching a slot costs 0 when the slot already holds that word,
otherwise 1; skipping a slot or inserting a new one costs 1). Each slot then elects the word
most systems put there, an empty vote (the system had no word there) included; ties go to
the earliest system in the list, so list the systems best first (by dev WER).
"""

from __future__ import annotations

import json
from pathlib import Path

from asr.utils import AsrError, ensure_dir, write_text_atomic

Slot = list  # one entry per system so far: a word, or None


def _align(slots: list[Slot], hyp: list[str]) -> list[tuple[int | None, str | None]]:
    """Edit-distance alignment of ``hyp`` to the slots: (slot index or None, word or None) pairs."""
    n, m = len(slots), len(hyp)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    back = [[None] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0
    words = [set(w for w in s if w is not None) for s in slots]
    for i in range(n + 1):
        for j in range(m + 1):
            c = cost[i][j]
            if c == inf:
                continue
            if i < n and j < m:
                step = c + (0 if hyp[j] in words[i] else 1)
                if step < cost[i + 1][j + 1]:
                    cost[i + 1][j + 1], back[i + 1][j + 1] = step, "match"
            if i < n:  # this hypothesis has no word in slot i
                step = c + (1 if words[i] else 0)
                if step < cost[i + 1][j]:
                    cost[i + 1][j], back[i + 1][j] = step, "skip"
            if j < m:  # a word no slot holds: a new slot
                step = c + 1
                if step < cost[i][j + 1]:
                    cost[i][j + 1], back[i][j + 1] = step, "insert"
    pairs: list[tuple[int | None, str | None]] = []
    i, j = n, m
    while i or j:
        op = back[i][j]
        if op == "match":
            i, j = i - 1, j - 1
            pairs.append((i, hyp[j]))
        elif op == "skip":
            i -= 1
            pairs.append((i, None))
        else:
            j -= 1
            pairs.append((None, hyp[j]))
    return pairs[::-1]


def vote(hyps: list[list[str]]) -> list[str]:
    """The majority word sequence of several systems' hypotheses of one utterance (best system first)."""
    if not hyps:
        raise AsrError("a vote needs at least one hypothesis")
    slots: list[Slot] = [[w] for w in hyps[0]]
    for k, hyp in enumerate(hyps[1:], start=1):
        merged: list[Slot] = []
        for slot_idx, word in _align(slots, hyp):
            if slot_idx is None:
                merged.append([None] * k + [word])
            else:
                merged.append(slots[slot_idx] + [word])
        slots = merged
    out = []
    for slot in slots:
        counts: dict[str | None, int] = {}
        for w in slot:
            counts[w] = counts.get(w, 0) + 1
        best = max(counts.values())
        winner = next(w for w in slot if counts[w] == best)  # ties: the earliest system's entry
        if winner is not None:
            out.append(winner)
    return out


def read_hypotheses(decode_dir: Path) -> dict[str, list[str]]:
    path = decode_dir / "hyp.txt"
    if not path.exists():
        raise AsrError(f"{decode_dir}: no hyp.txt (decode the data dir with that system first)")
    from asr.score import read_text

    return read_text(path)


def vote_decode_dirs(decode_dirs: list[str | Path], data_dir: str | Path | None, out_dir: str | Path):
    """Vote over decode dirs of the same data (each with hyp.txt) into ``out_dir``: hyp.txt, and
    wer.txt when ``data_dir`` has a reference text. Returns the error counts (or None)."""
    from asr.decode.run import write_decode_outputs
    from asr.score import read_text, score_texts

    if len(decode_dirs) < 2:
        raise AsrError("a vote needs at least two decode dirs")
    dirs = [Path(d) for d in decode_dirs]
    systems = [read_hypotheses(d) for d in dirs]
    utts = set(systems[0])
    for d, h in zip(dirs[1:], systems[1:]):
        if set(h) != utts:
            raise AsrError(f"{d}: its hyp.txt covers other utterances than {dirs[0]}")
    hyp = {u: vote([h[u] for h in systems]) for u in sorted(utts)}
    out_dir = Path(out_dir)
    ensure_dir(out_dir)
    counts, per_utt = None, []
    if data_dir is not None and (Path(data_dir) / "text").exists():
        counts, per_utt = score_texts(read_text(Path(data_dir) / "text"), hyp)
    info = {"vote_of": [str(d) for d in dirs], "data": str(data_dir) if data_dir else None,
            "selection": "majority vote (ROVER, ties to the first system)"}
    write_decode_outputs(out_dir, hyp, counts, per_utt, info, [f"# majority vote of {' '.join(map(str, dirs))}"])
    write_text_atomic(out_dir / "vote_of.json", json.dumps(info["vote_of"], indent=1) + "\n")
    return counts
