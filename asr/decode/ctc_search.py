"""Search over CTC outputs without a graph: greedy best path, prefix beam search, forced alignment.

All functions take ``(T, V)`` token log-posteriors with the blank at index 0. The
lexicon + LM constrained search is not here: it is the hybrid Viterbi decoder on a graph
with the CTC topology (:mod:`asr.hmm.ctc_topology`).
"""

from __future__ import annotations

import numpy as np

from asr.utils import AsrError

NEG_INF = -np.inf


def collapse(path: list[int] | np.ndarray, blank: int = 0) -> list[int]:
    """CTC's many-to-one map: merge runs of the same token, then drop blanks."""
    out, prev = [], None
    for t in path:
        t = int(t)
        if t != prev and t != blank:
            out.append(t)
        prev = t
    return out


def greedy_search(log_probs: np.ndarray) -> list[int]:
    """Best path decoding: the most likely token per frame, collapsed."""
    return collapse(np.asarray(log_probs).argmax(axis=-1))


def prefix_beam_search(log_probs: np.ndarray, beam: int = 8, token_beam: float = 12.0) -> list[int]:
    """The most probable labelling found by :func:`prefix_beam_nbest`."""
    return prefix_beam_nbest(log_probs, beam, token_beam)[0][0]


def prefix_beam_nbest(log_probs: np.ndarray, beam: int = 8, token_beam: float = 12.0) -> list[tuple[list[int], float]]:
    """CTC prefix beam search (Graves 2012; Hannun et al. 2014), no language model: the
    final beam as ``(labelling, log-probability)``, best first.

    Each prefix keeps two log-probabilities: of all paths so far ending in a blank and
    ending in its last token, so paths that collapse to the same prefix are summed. Per
    frame only tokens within ``token_beam`` of the frame's best are tried.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 2 or lp.shape[0] == 0:
        raise AsrError("prefix beam search needs (T, V) log-probabilities with T >= 1")
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}  # prefix -> (blank, non-blank)
    for frame in lp:
        cand = np.flatnonzero(frame >= frame.max() - token_beam)
        nxt: dict[tuple[int, ...], list[float]] = {}

        def add(prefix: tuple[int, ...], b: float, nb: float) -> None:
            cur = nxt.setdefault(prefix, [NEG_INF, NEG_INF])
            cur[0] = np.logaddexp(cur[0], b)
            cur[1] = np.logaddexp(cur[1], nb)

        for prefix, (pb, pnb) in beams.items():
            total = np.logaddexp(pb, pnb)
            last = prefix[-1] if prefix else None
            for c in cand:
                c = int(c)
                p = frame[c]
                if c == 0:
                    add(prefix, total + p, NEG_INF)
                elif c == last:
                    add(prefix, NEG_INF, pnb + p)  # the same token continues
                    add(prefix + (c,), NEG_INF, pb + p)  # a new copy after a blank
                else:
                    add(prefix + (c,), NEG_INF, total + p)
        ranked = sorted(nxt.items(), key=lambda kv: -np.logaddexp(*kv[1]))[:beam]
        beams = {k: (v[0], v[1]) for k, v in ranked}
    ranked = sorted(((list(k), float(np.logaddexp(*v))) for k, v in beams.items()), key=lambda kv: -kv[1])
    return ranked


def forced_align(log_probs: np.ndarray, tokens: list[int], utt: str = "") -> list[tuple[int, int, int]]:
    """Viterbi alignment of a token sequence: ``(token, first frame, last frame)`` per token.

    The path runs over ``blank t1 blank t2 ... tL blank``; a blank may be skipped between
    different tokens but not between two equal ones.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    T = lp.shape[0]
    L = len(tokens)
    if L == 0:
        return []
    need = L + sum(a == b for a, b in zip(tokens, tokens[1:]))
    if T < need:
        raise AsrError(f"utterance {utt}: {T} output frames cannot hold {L} tokens ({need} frames needed)")
    labels = np.zeros(2 * L + 1, dtype=np.int64)
    labels[1::2] = tokens
    S = len(labels)
    skip = np.zeros(S, dtype=bool)  # may come from s - 2
    skip[3::2] = labels[3::2] != labels[1:-2:2]
    score = np.full(S, NEG_INF)
    score[0] = lp[0, labels[0]]
    score[1] = lp[0, labels[1]]
    back = np.zeros((T, S), dtype=np.int8)  # 0: stay, 1: from s-1, 2: from s-2
    for t in range(1, T):
        stay = score
        prev1 = np.concatenate([[NEG_INF], score[:-1]])
        prev2 = np.where(skip, np.concatenate([[NEG_INF, NEG_INF], score[:-2]]), NEG_INF)
        choices = np.stack([stay, prev1, prev2])
        back[t] = choices.argmax(axis=0)
        score = choices.max(axis=0) + lp[t, labels]
    s = S - 1 if score[S - 1] >= score[S - 2] else S - 2
    if not np.isfinite(score[s]):
        raise AsrError(f"utterance {utt}: no CTC alignment of the transcript fits")
    path = np.empty(T, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        path[t] = s
        s -= int(back[t, s])
    spans = []
    for k in range(L):
        frames = np.flatnonzero(path == 2 * k + 1)
        spans.append((int(tokens[k]), int(frames[0]), int(frames[-1])))
    return spans
