"""The dict-of-tuples n-gram estimator asr shipped before the array one (``asr.lang.ngram``,
whose docstring gives the formulas): the reference the tests compare with."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

from asr.lang.arpa import BOS, EOS
from asr.utils import AsrError, read_utf8

METHODS = ("kn", "mkn", "wb")


def read_sentences(path: str | Path) -> list[list[str]]:
    """Whitespace-tokenised non-empty lines; ``<s>`` / ``</s>`` in the text are dropped."""
    path = Path(path)
    if not path.exists():
        raise AsrError(f"LM text {path} not found")
    out = []
    for line in read_utf8(path).splitlines():
        words = [w for w in line.split() if w not in (BOS, EOS)]
        if words:
            out.append(words)
    if not out:
        raise AsrError(f"{path}: no words to estimate an LM from")
    return out


def _discount(counts: Counter) -> float:
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    if n1 == 0 or n2 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.1), 0.9)


def _mkn_discounts(counts: Counter) -> tuple[float, float, float]:
    n = [sum(1 for c in counts.values() if c == k) for k in (1, 2, 3, 4)]
    if min(n) == 0:
        d = _discount(counts)
        return d, d, d
    y = n[0] / (n[0] + 2 * n[1])
    ds = (1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2])
    return tuple(min(max(d, 0.05), c - 0.05) for c, d in zip((1, 2, 3), ds))


def estimate(sentences: list[list[str]], order: int = 3, method: str = "kn") -> dict[tuple[str, ...], tuple[float, float | None]]:
    """n-gram -> (log10 probability, log10 back-off weight or None), all orders 1..``order``."""
    if order < 1:
        raise AsrError(f"LM order must be >= 1, got {order}")
    if method not in METHODS:
        raise AsrError(f"LM smoothing must be one of {', '.join(METHODS)}, got {method!r}")
    raw: list[Counter] = [Counter() for _ in range(order + 1)]  # raw[k]: k-gram counts
    for words in sentences:
        seq = [BOS] + words + [EOS]
        for k in range(1, order + 1):
            for i in range(len(seq) - k + 1):
                gram = tuple(seq[i:i + k])
                if gram != (BOS,):
                    raw[k][gram] += 1
    # Counts each order is estimated from (KN: continuation counts below the top order).
    counts = [Counter() for _ in range(order + 1)]
    counts[order] = raw[order]
    for k in range(1, order):
        if method in ("kn", "mkn"):
            for gram in raw[k + 1]:
                counts[k][gram[1:]] += 1
            for gram, c in raw[k].items():
                if gram[0] == BOS:
                    counts[k][gram] = c
        else:
            counts[k] = raw[k]
    vocab = sorted({g[0] for g in raw[1]} - {BOS})  # includes </s>
    probs: list[dict[tuple[str, ...], float]] = [dict() for _ in range(order + 1)]
    gammas: list[dict[tuple[str, ...], float]] = [dict() for _ in range(order + 1)]
    for k in range(1, order + 1):
        by_hist: dict[tuple[str, ...], dict[str, int]] = defaultdict(dict)
        for gram, c in counts[k].items():
            by_hist[gram[:-1]][gram[-1]] = c
        D = _discount(counts[k]) if method == "kn" else 0.0
        D123 = _mkn_discounts(Counter({g: c for g, c in counts[k].items() if c > 0})) if method == "mkn" else None
        for h, nexts in by_hist.items():
            total, types = sum(nexts.values()), len(nexts)
            if method == "kn":
                gamma = D * types / total
                alpha = {w: max(c - D, 0.0) / total for w, c in nexts.items()}
            elif method == "mkn":
                disc = {w: 0.0 if c == 0 else D123[min(c, 3) - 1] for w, c in nexts.items()}
                gamma = sum(disc.values()) / total
                alpha = {w: (c - disc[w]) / total for w, c in nexts.items()}
            else:
                gamma = types / (total + types)
                alpha = {w: c / (total + types) for w, c in nexts.items()}
            gammas[k][h] = gamma
            for w, a in alpha.items():
                lower = 1.0 / len(vocab) if k == 1 else _prob(probs, gammas, h[1:], w)
                probs[k][h + (w,)] = a + gamma * lower
    out: dict[tuple[str, ...], tuple[float, float | None]] = {}
    for k in range(1, order + 1):
        for gram, p in probs[k].items():
            bow = gammas[k + 1].get(gram) if k < order else None  # only histories of longer n-grams have one
            out[gram] = (math.log10(p), math.log10(bow) if bow else None)
    out[(BOS,)] = (-99.0, math.log10(gammas[2][(BOS,)]) if order > 1 else None)
    return out


def _prob(probs, gammas, h: tuple[str, ...], w: str) -> float:
    """p(w | h) of the orders estimated so far, backing off to shorter histories."""
    k = len(h) + 1
    if h + (w,) in probs[k]:
        return probs[k][h + (w,)]
    if not h:
        raise AsrError(f"word {w!r} has no unigram probability")
    return gammas[k].get(h, 1.0) * _prob(probs, gammas, h[1:], w)


def write_arpa(path_or_file, grams: dict[tuple[str, ...], tuple[float, float | None]]) -> None:
    """ARPA text: ``\\data\\`` counts, then ``\\k-grams:`` sections of ``log10p words [log10bow]``."""
    order = max(len(g) for g in grams)
    lines = ["\\data\\"] + [f"ngram {k}={sum(1 for g in grams if len(g) == k)}" for k in range(1, order + 1)]
    for k in range(1, order + 1):
        lines += ["", f"\\{k}-grams:"]
        for gram in sorted(g for g in grams if len(g) == k):
            p, bow = grams[gram]
            lines.append(f"{p:.6f}\t{' '.join(gram)}" + (f"\t{bow:.6f}" if bow is not None else ""))
    lines += ["", "\\end\\", ""]
    text = "\n".join(lines)
    if hasattr(path_or_file, "write"):
        path_or_file.write(text)
    else:
        from asr.utils import write_text_atomic

        write_text_atomic(path_or_file, text)
