"""ARPA n-gram language models: reading, writing a word-loop unigram, and the LM as an automaton.

The automaton follows Kaldi's arpa2fst: one state per history that the model can extend,
word arcs to the longest known suffix history, backoff arcs (epsilon) to the history
with its first word dropped, and ``</s>`` as a final weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from asr.utils import AsrError, write_text_atomic

LN10 = math.log(10.0)
BOS, EOS = "<s>", "</s>"


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
    lines = path.read_text(errors="replace").splitlines()
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
            k, v = line[6:].split("=")
            counts[int(k)] = int(v)
            continue
        if line == "\\end\\":
            break
        if line.startswith("\\") and line.endswith("-grams:"):
            n = int(line[1:-7])
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
    return lm


def write_unigram_arpa(path: str | Path, words: list[str]) -> None:
    """Write a uniform unigram (a word loop) over ``words`` plus ``</s>``."""
    vocab = sorted(set(words) - {BOS, EOS})
    logp = -math.log10(len(vocab) + 1)
    lines = ["\\data\\", f"ngram 1={len(vocab) + 2}", "", "\\1-grams:",
             f"{logp:.6f}\t{EOS}", f"-99\t{BOS}\t0"]
    lines += [f"{logp:.6f}\t{w}" for w in vocab]
    lines += ["", "\\end\\", ""]
    write_text_atomic(path, "\n".join(lines))


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
    """Build Kaldi arpa2fst's automaton; words outside ``vocabulary`` (if given) are dropped."""
    # States: every history we can be in, i.e. any n-gram (n < order) with a continuation or backoff.
    histories = {()}
    for h in lm.probs:
        histories.add(h)
    for h in lm.backoffs:
        if len(h) < lm.order:
            histories.add(h)
    histories = sorted(histories, key=lambda h: (len(h), h))
    state_of = {h: i for i, h in enumerate(histories)}

    def suffix_state(h: tuple[str, ...]) -> int:
        while h not in state_of:
            h = h[1:]
        return state_of[h]

    def dest(h: tuple[str, ...]) -> int:
        return suffix_state(h[-(lm.order - 1):] if lm.order > 1 else ())

    word_arcs, finals = [], {}
    for h, dist in lm.probs.items():
        src = state_of[h]
        for w, logp in dist.items():
            if w == EOS:
                finals[src] = -logp
            elif w == BOS or (vocabulary is not None and w not in vocabulary):
                continue
            else:
                word_arcs.append((src, w, dest(h + (w,)), -logp))
    backoff_arcs = [(state_of[h], suffix_state(h[1:]), -lm.backoffs.get(h, 0.0)) for h in histories if h]
    start = state_of[(BOS,)] if (BOS,) in state_of else state_of[()]
    return LmAutomaton(len(histories), start, word_arcs, backoff_arcs, finals)
