"""ARPA n-gram language models: reading, writing a word-loop unigram, and the LM as an automaton.

The automaton follows Kaldi's arpa2fst: one state per history that has n-grams of its own,
word arcs to the longest known suffix history, backoff arcs (epsilon) to the history
with its first word dropped, and ``</s>`` as a final weight.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from asr.utils import AsrError, read_utf8, write_text_atomic

LN10 = math.log(10.0)
BOS, EOS = "<s>", "</s>"

log = logging.getLogger(__name__)


@dataclass
class NgramLM:
    """An n-gram model. Probabilities and backoffs are natural-log values.

    Attributes:
        order: the highest n.
        probs: history tuple -> {word: log P(word | history)}.
        backoffs: history tuple -> log backoff weight.
    """

    order: int
    probs: dict[tuple[str, ...], dict[str, float]] = field(default_factory=dict)
    backoffs: dict[tuple[str, ...], float] = field(default_factory=dict)

    def vocabulary(self) -> set[str]:
        return {w for d in self.probs.values() for w in d}


def read_arpa(path: str | Path) -> NgramLM:
    """Read an ARPA file (text before ``\\data\\`` is ignored, as in AN4's an4.ug.lm)."""
    path = Path(path)
    if not path.exists():
        raise AsrError(f"missing language model {path}")
    lines = read_utf8(path).splitlines()
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() == "\\data\\")
    except StopIteration:
        raise AsrError(f"{path}: not an ARPA file (no \\data\\ line)") from None
    counts: dict[int, int] = {}
    lm = NgramLM(order=0)
    n = 0
    for lineno in range(start + 1, len(lines)):
        line = lines[lineno].strip()
        if not line:
            continue
        if line.startswith("ngram "):
            k, _, v = line[6:].partition("=")
            if not (k.strip().isascii() and k.strip().isdigit() and v.strip().isascii() and v.strip().isdigit()):
                raise AsrError(f"{path}:{lineno + 1}: malformed count line {line!r} (expected 'ngram N=COUNT')")
            counts[int(k)] = int(v)
            continue
        if line == "\\end\\":
            break
        if line.startswith("\\") and line.endswith("-grams:"):
            order = line[1:-7]
            if not (order.isascii() and order.isdigit() and int(order) >= 1):
                raise AsrError(f"{path}:{lineno + 1}: malformed section header {line!r}")
            n = int(order)
            lm.order = max(lm.order, n)
            continue
        parts = line.split()
        if n == 0 or len(parts) < n + 1:
            raise AsrError(f"{path}:{lineno + 1}: malformed n-gram line {line!r}")
        try:
            logp = float(parts[0]) * LN10
            bow = float(parts[n + 1]) * LN10 if len(parts) > n + 1 else None
        except ValueError:
            raise AsrError(f"{path}:{lineno + 1}: malformed n-gram line {line!r}") from None
        words = tuple(parts[1:n + 1])
        lm.probs.setdefault(words[:-1], {})[words[-1]] = logp
        if bow is not None:
            lm.backoffs[words] = bow
    if lm.order == 0:
        raise AsrError(f"{path}: no n-grams found")
    for h in lm.probs:
        # Every history must itself be an n-gram of the order below: its back-off weight
        # lives there, and an LM without it cannot say how to back off from it.
        if h and h[-1] not in lm.probs.get(h[:-1], {}):
            w = " ".join(h)
            example = next(iter(lm.probs[h]))
            raise AsrError(f"{path}: the {len(h) + 1}-gram '{w} {example}' has no {len(h)}-gram '{w}' "
                           f"(its history, which holds the back-off weight); the ARPA file is incomplete")
    return lm


def unigram_arpa_text(words: list[str]) -> str:
    """ARPA text of a uniform unigram (a word loop) over ``words`` plus ``</s>``."""
    vocab = sorted(set(words) - {BOS, EOS})
    logp = -math.log10(len(vocab) + 1)
    lines = ["\\data\\", f"ngram 1={len(vocab) + 2}", "", "\\1-grams:",
             f"{logp:.6f}\t{EOS}", f"-99\t{BOS}\t0"]
    lines += [f"{logp:.6f}\t{w}" for w in vocab]
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def write_unigram_arpa(path: str | Path, words: list[str]) -> None:
    """Write a uniform unigram (a word loop) over ``words`` plus ``</s>``."""
    write_text_atomic(path, unigram_arpa_text(words))


@dataclass
class LmAutomaton:
    """The LM as a weighted automaton over word ids (costs = -log prob).

    Attributes:
        num_states: states 0..num_states-1; ``start`` is the ``<s>`` history.
        word_arcs: (src, word, dst, cost).
        backoff_arcs: (src, dst, cost) epsilon arcs; they only lead to shorter histories.
        final_costs: state -> cost of ``</s>`` from that state.
    """

    num_states: int
    start: int
    word_arcs: list[tuple[int, str, int, float]]
    backoff_arcs: list[tuple[int, int, float]]
    final_costs: dict[int, float]


def lm_to_automaton(lm: NgramLM, vocabulary: set[str] | None = None) -> LmAutomaton:
    """Build Kaldi arpa2fst's automaton; words outside ``vocabulary`` (if given) are dropped.

    A history with no n-gram of its own (only a back-off weight) gets no state: an arc
    that would enter it goes straight to its back-off state with the back-off cost added,
    which scores every continuation exactly as the back-off arc would. This keeps, e.g.,
    a unigram LM written as a bigram file (AN4's) at one state instead of one per word.
    """
    histories = sorted({()} | set(lm.probs), key=lambda h: (len(h), h))
    state_of = {h: i for i, h in enumerate(histories)}

    def backoff_to_state(h: tuple[str, ...]) -> tuple[int, float]:
        """The state scoring what follows history ``h``, and the back-off cost of getting there."""
        cost = 0.0
        while h not in state_of:
            cost -= lm.backoffs.get(h, 0.0)
            h = h[1:]
        return state_of[h], cost

    word_arcs, finals = [], {}
    for h, dist in lm.probs.items():
        src = state_of[h]
        for w, logp in dist.items():
            if w == EOS:
                finals[src] = -logp
            elif w == BOS or (vocabulary is not None and w not in vocabulary):
                continue
            else:
                nxt = (h + (w,))[-(lm.order - 1):] if lm.order > 1 else ()
                dst, extra = backoff_to_state(nxt)
                word_arcs.append((src, w, dst, -logp + extra))
    backoff_arcs = []
    for h in histories:
        if h:
            dst, extra = backoff_to_state(h[1:])
            backoff_arcs.append((state_of[h], dst, -lm.backoffs.get(h, 0.0) + extra))
    start, start_cost = backoff_to_state((BOS,))
    if start_cost:
        # The start has no state of its own; its back-off weight (rarely non-zero) is a
        # constant on every path and does not change the best one.
        log.debug("LM start <s> backs off with cost %.3f", start_cost)
    return LmAutomaton(len(histories), start, word_arcs, backoff_arcs, finals)
