"""Estimate and prune back-off n-gram LMs on arrays (``asr lm``), for corpora of tens of millions of words.

An n-gram is one int64 key: its word ids packed ``bits`` apiece, oldest word in the
highest bits, so sorting keys sorts n-grams by history and then by word, a history is
``key >> bits`` and the suffix (history shortened by its oldest word) ``key & mask``.
Counting is ``np.unique`` over chunks of text, merged; every estimation step is a
vectorised pass over the sorted keys (``searchsorted`` finds lower-order n-grams).

Two smoothing methods, both *interpolated* and then written in back-off form (as SRILM's
``-interpolate`` does), so any ARPA reader, ours and Kaldi's arpa2fst included, reads them:

    p(w | h) = alpha(h w) + gamma(h) * p(w | h')        h' = h without its oldest word

* Kneser-Ney: alpha = max(c(h w) - D, 0) / c(h), gamma = D * N1+(h .) / c(h), with one
  discount per order, D = n1 / (n1 + 2 n2) (Ney's estimate from the count-of-counts);
  lower orders count *continuations* N1+(. w) rather than occurrences (n-grams that begin
  with ``<s>`` have no left context and keep their counts).
* Modified Kneser-Ney (Chen & Goodman 1999; SRILM ``-kndiscount``, KenLM's default): the
  same with three discounts per order, D(c) = D1, D2 or D3+ for counts 1, 2 and 3 or more,
  D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3 with Y = n1 / (n1 + 2 n2), and
  gamma(h) = sum over w of D(c(h w)) / c(h).
* Witten-Bell: alpha = c(h w) / (c(h) + N1+(h .)), gamma = N1+(h .) / (c(h) + N1+(h .)).

The unigram level is interpolated with a uniform distribution over the vocabulary (plus
``</s>``), so every word has a non-zero probability. For an interpolated model the
back-off weight of a history is exactly gamma(h).

With a vocabulary, words outside it become ``<UNK>`` (a word like any other), and every
vocabulary word gets a unigram. Pruning (:func:`prune`) is Stolcke's relative-entropy
pruning (SRILM ``-prune``), with the back-off weights renormalised afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.lang.arpa import BOS, EOS
from asr.utils import AsrError, atomic_open, read_utf8

METHODS = ("kn", "mkn", "wb")
UNK = "<UNK>"
NO_BOW = np.nan  # an n-gram that is no history has no back-off weight


def read_sentences(path: str | Path) -> list[list[str]]:
    """Whitespace-tokenised non-empty lines; ``<s>`` / ``</s>`` in the text are dropped."""
    path = Path(path)
    if not path.exists():
        raise AsrError(f"LM text {path} not found")
    out = [s for s in _sentences(read_utf8(path).splitlines())]
    if not out:
        raise AsrError(f"{path}: no words to estimate an LM from")
    return out


def _sentences(lines: Iterable[str]) -> Iterator[list[str]]:
    for line in lines:
        words = [w for w in line.split() if w not in (BOS, EOS)]
        if words:
            yield words


def iter_text_sentences(paths: list[str | Path]) -> Iterator[list[str]]:
    """Sentences of text files read line by line (memory does not grow with the files)."""
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise AsrError(f"LM text {p} not found")
        try:
            with open(p, encoding="utf-8") as f:
                yield from _sentences(f)
        except UnicodeDecodeError as e:
            raise AsrError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None


@dataclass
class ArrayLM:
    """A back-off LM held as arrays, one entry per order k = 1..order (index k - 1).

    Attributes:
        words: id -> word; 0 is ``<s>``, 1 is ``</s>``.
        bits: bits per word id in a key.
        keys: sorted int64 n-gram keys of each order.
        logp: float64 log10 p(w | h) of each n-gram (``<s>`` as a unigram: -99).
        bow: float64 log10 back-off weight of each n-gram as a history (NaN: none).
    """

    order: int
    words: list[str]
    bits: int
    keys: list[np.ndarray]
    logp: list[np.ndarray]
    bow: list[np.ndarray]

    @property
    def num_ngrams(self) -> int:
        return int(sum(len(k) for k in self.keys))

    def ids(self, key: int, k: int) -> list[int]:
        m = (1 << self.bits) - 1
        return [(key >> (self.bits * (k - 1 - i))) & m for i in range(k)]

    def to_grams(self) -> dict[tuple[str, ...], tuple[float, float | None]]:
        """n-gram -> (log10 p, log10 bow or None); for small models and tests."""
        out = {}
        for k in range(1, self.order + 1):
            for key, p, b in zip(self.keys[k - 1].tolist(), self.logp[k - 1].tolist(), self.bow[k - 1].tolist()):
                out[tuple(self.words[i] for i in self.ids(key, k))] = (p, None if math.isnan(b) else b)
        return out

    def write_arpa(self, path_or_file) -> None:
        """ARPA text: ``\\data\\`` counts, then ``\\k-grams:`` sections of ``log10p words [log10bow]``."""
        def write(f):
            f.write("\\data\\\n")
            for k in range(1, self.order + 1):
                f.write(f"ngram {k}={len(self.keys[k - 1])}\n")
            words = np.array(self.words, dtype=object)
            for k in range(1, self.order + 1):
                f.write(f"\n\\{k}-grams:\n")
                keys, logp, bow = self.keys[k - 1], self.logp[k - 1], self.bow[k - 1]
                m = (1 << self.bits) - 1
                cols = [words[(keys >> (self.bits * (k - 1 - i))) & m] for i in range(k)]
                step = 200_000
                for s in range(0, len(keys), step):
                    text = cols[0][s:s + step]
                    for c in cols[1:]:
                        text = text + " " + c[s:s + step]
                    lines = [f"{p:.6f}\t{t}" if b != b else f"{p:.6f}\t{t}\t{b:.6f}"
                             for p, t, b in zip(logp[s:s + step].tolist(), text.tolist(), bow[s:s + step].tolist())]
                    f.write("\n".join(lines) + "\n")
            f.write("\n\\end\\\n")

        if hasattr(path_or_file, "write"):
            write(path_or_file)
        else:
            with atomic_open(path_or_file, "w") as f:
                write(f)


# -- counting --------------------------------------------------------------------------------
class _Counter:
    """Running n-gram counts of every order, merged chunk by chunk."""

    def __init__(self, order: int, bits: int):
        self.order, self.bits = order, bits
        self.keys = [np.zeros(0, dtype=np.int64) for _ in range(order)]
        self.counts = [np.zeros(0, dtype=np.int64) for _ in range(order)]

    def add(self, seq: np.ndarray, sent: np.ndarray) -> None:
        """seq: (N,) word ids of whole sentences with <s> and </s>; sent: (N,) sentence index."""
        for k in range(1, self.order + 1):
            n = len(seq) - k + 1
            if n <= 0:
                continue
            ok = sent[:n] == sent[k - 1:]
            key = np.zeros(n, dtype=np.int64)
            for i in range(k):
                key = (key << self.bits) | seq[i:i + n]
            key = key[ok]
            if k == 1:
                key = key[key != 0]  # <s> is never predicted
            u, c = np.unique(key, return_counts=True)
            self.keys[k - 1], self.counts[k - 1] = _merge(self.keys[k - 1], self.counts[k - 1], u, c)


def _merge(k1: np.ndarray, c1: np.ndarray, k2: np.ndarray, c2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys = np.concatenate([k1, k2])
    counts = np.concatenate([c1, c2])
    u, inv = np.unique(keys, return_inverse=True)
    return u, np.bincount(inv, weights=counts, minlength=len(u)).astype(np.int64)


def count_ngrams(sentences: Iterable[list[str]], order: int, vocabulary: list[str] | None = None,
                 chunk_words: int = 2_000_000) -> tuple[list[str], _Counter]:
    """Count n-grams of orders 1..``order``; words outside ``vocabulary`` (if given) become <UNK>."""
    if vocabulary is not None:
        words = [BOS, EOS, UNK] + [w for w in dict.fromkeys(vocabulary) if w not in (BOS, EOS, UNK)]
        index = {w: i for i, w in enumerate(words)}
        fixed = True
    else:
        words, index, fixed = [BOS, EOS], {BOS: 0, EOS: 1}, False
    bits = 63 // order
    counter = _Counter(order, bits)
    unk = index.get(UNK, -1)
    buf: list[int] = []
    sent: list[int] = []
    n_sent = 0
    total = 0

    def flush():
        if buf:
            counter.add(np.array(buf, dtype=np.int64), np.array(sent, dtype=np.int64))
            buf.clear()
            sent.clear()

    for words_ in sentences:
        if fixed:
            ids = [index.get(w, unk) for w in words_]
        else:
            ids = []
            for w in words_:
                i = index.get(w)
                if i is None:
                    i = index[w] = len(words)
                    words.append(w)
                ids.append(i)
        buf.append(0)
        buf.extend(ids)
        buf.append(1)
        sent.extend([n_sent] * (len(ids) + 2))
        n_sent += 1
        total += len(ids)
        if len(buf) >= chunk_words:
            flush()
    flush()
    if total == 0:
        raise AsrError("no words to estimate an LM from")
    if len(words) >= 1 << bits:
        raise AsrError(f"{len(words)} words do not fit a {order}-gram key ({bits} bits per word)")
    return words, counter


# -- estimation --------------------------------------------------------------------------------
def _discount(counts: np.ndarray) -> float:
    n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
    if n1 == 0 or n2 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.1), 0.9)


def _mkn_discounts(counts: np.ndarray) -> tuple[float, float, float]:
    """(D1, D2, D3+) of modified Kneser-Ney from one order's count-of-counts n1..n4 (a count
    of counts that is zero, as in tiny texts, falls back to the single KN discount)."""
    n = [int((counts == c).sum()) for c in (1, 2, 3, 4)]
    if min(n) == 0:
        d = _discount(counts)
        return d, d, d
    y = n[0] / (n[0] + 2 * n[1])
    ds = (1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2])
    # each discount stays inside (0, c): an odd count-of-counts never gives a negative alpha
    return tuple(min(max(d, 0.05), c - 0.05) for c, d in zip((1, 2, 3), ds))  # type: ignore[return-value]


def _find(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``query`` in sorted ``keys`` and whether each is there."""
    pos = np.searchsorted(keys, query)
    pos = np.minimum(pos, max(len(keys) - 1, 0))
    found = keys[pos] == query if len(keys) else np.zeros(len(query), dtype=bool)
    return pos, found


def _groups(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted history keys: start index of each run, and the run index of each entry."""
    starts = np.flatnonzero(np.concatenate([[True], hist[1:] != hist[:-1]])) if len(hist) else np.zeros(0, int)
    run = np.cumsum(np.concatenate([[True], hist[1:] != hist[:-1]])) - 1 if len(hist) else np.zeros(0, int)
    return starts, run


class _Model:
    """Natural-probability arrays during estimation and pruning."""

    def __init__(self, order: int, bits: int, uniform: float):
        self.order, self.bits, self.uniform = order, bits, uniform
        self.keys: list[np.ndarray] = []
        self.prob: list[np.ndarray] = []
        self.hist_keys: list[np.ndarray] = []  # per order k: histories (k-1 words) with a gamma
        self.gamma: list[np.ndarray] = []

    def lookup(self, k: int, keys: np.ndarray) -> np.ndarray:
        """p(w | h) for k-gram keys, backing off through shorter histories (ARPA rule)."""
        out = np.empty(len(keys))
        pos, found = _find(self.keys[k - 1], keys)
        out[found] = self.prob[k - 1][pos[found]]
        miss = ~found
        if miss.any():
            if k == 1:
                raise AsrError("a word has no unigram probability")
            q = keys[miss]
            hist = q >> self.bits
            hp, hf = _find(self.hist_keys[k - 1], hist)
            g = np.where(hf, self.gamma[k - 1][hp], 1.0) if len(self.gamma[k - 1]) else np.ones(len(q))
            out[miss] = g * self.lookup(k - 1, q & ((1 << (self.bits * (k - 1))) - 1))
        return out


def estimate(sentences: Iterable[list[str]], order: int = 3, method: str = "kn",
             vocabulary: list[str] | None = None) -> ArrayLM:
    """Estimate an interpolated KN, modified KN or WB model of orders 1..``order`` (see the module docstring)."""
    if order < 1:
        raise AsrError(f"LM order must be >= 1, got {order}")
    if method not in METHODS:
        raise AsrError(f"LM smoothing must be one of {', '.join(METHODS)}, got {method!r}")
    words, counter = count_ngrams(sentences, order, vocabulary)
    bits = counter.bits
    raw_keys, raw_counts = counter.keys, counter.counts
    # Counts each order is estimated from (KN: continuation counts below the top order).
    keys = [None] * order
    counts = [None] * order
    keys[order - 1], counts[order - 1] = raw_keys[order - 1], raw_counts[order - 1]
    for k in range(1, order):
        if method in ("kn", "mkn"):
            mask = (1 << (bits * k)) - 1
            suffix, cont = np.unique(raw_keys[k] & mask, return_counts=True)
            bos = (raw_keys[k - 1] >> (bits * (k - 1))) == 0 if k > 1 else np.zeros(len(raw_keys[0]), bool)
            kk = np.concatenate([suffix, raw_keys[k - 1][bos]])
            cc = np.concatenate([cont, raw_counts[k - 1][bos]])
            o = np.argsort(kk, kind="stable")
            keys[k - 1], counts[k - 1] = kk[o], cc[o]
        else:
            keys[k - 1], counts[k - 1] = raw_keys[k - 1], raw_counts[k - 1]
    if vocabulary is not None:  # every vocabulary word (and </s>, <UNK>) gets a unigram
        allw = np.arange(1, len(words), dtype=np.int64)
        missing = allw[~np.isin(allw, keys[0])]
        kk = np.concatenate([keys[0], missing])
        cc = np.concatenate([counts[0], np.zeros(len(missing), dtype=np.int64)])
        o = np.argsort(kk)
        keys[0], counts[0] = kk[o], cc[o]
    vocab_size = len(keys[0]) if vocabulary is None else len(words) - 1  # without <s>
    model = _Model(order, bits, 1.0 / vocab_size)
    for k in range(1, order + 1):
        kk, cc = keys[k - 1], counts[k - 1].astype(np.float64)
        hist = kk >> bits
        starts, run = _groups(hist)
        total = np.add.reduceat(cc, starts) if len(starts) else np.zeros(0)
        types = np.add.reduceat((cc > 0).astype(np.float64), starts) if len(starts) else np.zeros(0)
        if method == "kn":
            D = _discount(counts[k - 1][counts[k - 1] > 0])
            gamma = D * types / total
            alpha = np.maximum(cc - D, 0.0) / total[run]
        elif method == "mkn":
            d1, d2, d3 = _mkn_discounts(counts[k - 1][counts[k - 1] > 0])
            d = np.select([cc >= 3, cc == 2, cc == 1], [d3, d2, d1], 0.0)
            gamma = np.add.reduceat(d, starts) / total if len(starts) else np.zeros(0)
            alpha = (cc - d) / total[run]
        else:
            gamma = types / (total + types)
            alpha = cc / (total + types)[run]
        lower = np.full(len(kk), model.uniform) if k == 1 else model.lookup(k - 1, kk & ((1 << (bits * (k - 1))) - 1))
        model.keys.append(kk)
        model.prob.append(alpha + gamma[run] * lower)
        model.hist_keys.append(hist[starts])
        model.gamma.append(gamma)
    return _to_array_lm(model, words)


def _to_array_lm(model: _Model, words: list[str]) -> ArrayLM:
    """Log10 arrays; the back-off weight of an n-gram is the gamma of it as a history."""
    keys, logp, bow = [], [], []
    for k in range(1, model.order + 1):
        kk = model.keys[k - 1]
        lp = np.log10(np.maximum(model.prob[k - 1], 1e-99))
        b = np.full(len(kk), NO_BOW)
        if k < model.order:
            pos, found = _find(model.hist_keys[k], kk)
            b[found] = np.log10(model.gamma[k][pos[found]])
        if k == 1:  # <s>: never predicted, but a history
            g = model.gamma[1][_find(model.hist_keys[1], np.array([0]))[0]] if model.order > 1 else None
            kk = np.concatenate([[0], kk])
            lp = np.concatenate([[-99.0], lp])
            b = np.concatenate([[np.log10(g[0]) if g is not None and len(g) else NO_BOW], b])
        keys.append(kk)
        logp.append(lp)
        bow.append(b)
    return ArrayLM(model.order, words, model.bits, keys, logp, bow)


# -- pruning -----------------------------------------------------------------------------------
def _from_array_lm(lm: ArrayLM) -> _Model:
    """Back to natural probabilities, with histories (and their back-off weights as gammas)."""
    m = _Model(lm.order, lm.bits, 0.0)
    for k in range(1, lm.order + 1):
        kk, lp = lm.keys[k - 1], lm.logp[k - 1]
        if k == 1:
            kk, lp = kk[1:], lp[1:]  # <s> is kept aside
        m.keys.append(kk)
        m.prob.append(10.0 ** lp)
    for k in range(1, lm.order + 1):
        if k == 1:
            m.hist_keys.append(np.zeros(1, dtype=np.int64))
            m.gamma.append(np.ones(1))
        else:
            b = lm.bow[k - 2]
            has = ~np.isnan(b)
            m.hist_keys.append(lm.keys[k - 2][has])
            m.gamma.append(10.0 ** b[has])
    return m


def _renormalise(m: _Model) -> None:
    """Back-off weight of every history: the mass its n-grams leave over, divided by the
    lower-order mass of the same words (histories without n-grams keep no weight)."""
    for k in range(2, m.order + 1):
        kk = m.keys[k - 1]
        hist = kk >> m.bits
        starts, run = _groups(hist)
        if not len(starts):
            m.hist_keys[k - 1] = np.zeros(0, dtype=np.int64)
            m.gamma[k - 1] = np.zeros(0)
            continue
        seen = np.add.reduceat(m.prob[k - 1], starts)
        lower = np.add.reduceat(m.lookup(k - 1, kk & ((1 << (m.bits * (k - 1))) - 1)), starts)
        m.hist_keys[k - 1] = hist[starts]
        m.gamma[k - 1] = np.maximum(1.0 - seen, 1e-12) / np.maximum(1.0 - lower, 1e-12)


def _history_probs(m: _Model, k: int, hist: np.ndarray) -> np.ndarray:
    """P(h) of (k-1)-word histories: p(h1) p(h2 | h1) ... (<s> counts as probability 1)."""
    bits = m.bits
    out = np.ones(len(hist))
    n = k - 1
    for i in range(n):  # word i of the history given the words before it
        length = i + 1
        sub = hist >> (bits * (n - length))  # the first i + 1 words
        w0 = sub >> (bits * i) if i else sub
        if i == 0:
            p = np.where(w0 == 0, 1.0, m.lookup(1, np.where(w0 == 0, 1, w0)))
        else:
            p = m.lookup(length, sub)
        out *= p
    return out


def prune(lm: ArrayLM, threshold: float | None = None, max_ngrams: int | None = None) -> ArrayLM:
    """Relative-entropy pruning of every order above 1 (Stolcke 1998; SRILM ``-prune``).

    An n-gram whose removal (backing off to the shorter history, with the history's
    back-off weight recomputed) changes the model's relative entropy by less than
    ``threshold`` is dropped, unless it is the history of an n-gram that stays. With
    ``max_ngrams`` the threshold is chosen to keep at most that many n-grams in all.
    Back-off weights are renormalised afterwards, so every history stays normalised.
    """
    if (threshold is None) == (max_ngrams is None):
        raise AsrError("give a pruning threshold or a target number of n-grams (one of them)")
    m = _from_array_lm(lm)
    bits = m.bits
    delta = [None] * (m.order + 1)
    for k in range(2, m.order + 1):
        kk, p = m.keys[k - 1], m.prob[k - 1]
        hist = kk >> bits
        starts, run = _groups(hist)
        p_lo = m.lookup(k - 1, kk & ((1 << (bits * (k - 1))) - 1))
        seen = np.add.reduceat(p, starts)[run]
        seen_lo = np.add.reduceat(p_lo, starts)[run]
        left, left_lo = np.maximum(1.0 - seen, 1e-12), np.maximum(1.0 - seen_lo, 1e-12)
        bow = left / left_lo
        bow_new = (left + p) / (left_lo + p_lo)
        ph = _history_probs(m, k, hist)
        delta[k] = -ph * (p * (np.log(p_lo) + np.log(bow_new) - np.log(p)) + left * (np.log(bow_new) - np.log(bow)))

    def kept(theta: float) -> list[np.ndarray]:
        keep = [None] * (m.order + 1)
        for k in range(m.order, 1, -1):
            keep[k] = delta[k] >= theta
            if k < m.order:  # histories of kept longer n-grams stay
                pos, found = _find(m.keys[k - 1], np.unique((m.keys[k] >> bits)[keep[k + 1]]))
                keep[k][pos[found]] = True
        return keep

    if threshold is None:
        base = len(m.keys[0]) + 1
        if max_ngrams <= base:
            raise AsrError(f"cannot prune to {max_ngrams} n-grams: the unigrams alone are {base}")
        lo, hi = 0.0, float(max(d.max() for d in delta[2:] if len(d))) + 1.0
        for _ in range(60):  # bisection on the threshold
            mid = (lo + hi) / 2
            n = base + sum(int(x.sum()) for x in kept(mid)[2:])
            lo, hi = (lo, mid) if n <= max_ngrams else (mid, hi)
        threshold = hi
    keep = kept(threshold)
    for k in range(2, m.order + 1):
        m.keys[k - 1] = m.keys[k - 1][keep[k]]
        m.prob[k - 1] = m.prob[k - 1][keep[k]]
    _renormalise(m)
    return _to_array_lm(m, lm.words)
