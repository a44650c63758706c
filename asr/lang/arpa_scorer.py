"""An ARPA LM as sorted arrays over a word table, for compiled per-word lookups.

Used by lattice rescoring (``asr.decode.lm_rescore``) and for perplexity (``asr lm-eval``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numba
import numpy as np

from asr.lang.arpa import BOS, EOS, LN10, read_arpa
from asr.lang.lexicon import SymbolTable
from asr.utils import AsrError

BITS = 21  # bits per word id in an n-gram key (2M words; 3 words fit an int64)


class ArpaScorer:
    """An ARPA LM as sorted key arrays over a word table's ids, for compiled lookups.

    Word ids are ``words.txt``'s; ``<s>`` and ``</s>`` get the two ids after the last word.
    n-grams with a word outside the table are dropped: no lattice path can use them, and
    the back-off weights of the histories that remain do not depend on them.

    Attributes:
        order: highest n.
        keys, cost, bow: per order (index k - 1): sorted int64 keys, -ln p, -ln back-off (0: none).
    """

    def __init__(self, path: str | Path, words: SymbolTable | None = None):
        path = Path(path)
        if not path.exists():
            raise AsrError(f"missing language model {path}")
        # Without a word table the LM's own unigrams are numbered (<s> 1, </s> 2, words from 3).
        if words is None:
            self.bos, self.eos = 1, 2
            ids = {BOS: 1, EOS: 2}
        else:
            self.bos, self.eos = len(words), len(words) + 1
            ids = {w: i for i, w in enumerate(words.symbols)}
            ids[BOS], ids[EOS] = self.bos, self.eos
        lm = read_arpa(path)  # the one ARPA reader: its checks (counts, histories) apply here too
        if words is None:
            for w in lm.probs.get((), {}):
                ids.setdefault(w, len(ids) + 1)
        rows: dict[int, tuple[list[int], list[float], list[float]]] = {k: ([], [], []) for k in range(1, lm.order + 1)}
        for h, dist in lm.probs.items():
            try:
                hkey = 0
                for w in h:
                    hkey = (hkey << BITS) | ids[w]
            except KeyError:
                continue  # a history with a word outside the table: no lattice path reaches it
            r = rows[len(h) + 1]
            for w, logp in dist.items():
                wid = ids.get(w)
                if wid is None:
                    continue
                r[0].append((hkey << BITS) | wid)
                r[1].append(-logp)
                r[2].append(-lm.backoffs.get(h + (w,), 0.0))
        if not any(r[0] for r in rows.values()):
            raise AsrError(f"{path}: no n-grams over the word table")
        self.order = lm.order
        if self.order > 3:
            raise AsrError(f"{path}: rescoring supports LMs up to 3-grams, this one is a {self.order}-gram")
        self.keys, self.cost, self.bow = [], [], []
        for k in range(1, self.order + 1):
            kk, cc, bb = (np.array(x) for x in rows.get(k, ([], [], [])))
            o = np.argsort(kk.astype(np.int64), kind="stable")
            self.keys.append(kk.astype(np.int64)[o])
            self.cost.append(cc.astype(np.float64)[o])
            self.bow.append(bb.astype(np.float64)[o])
        while len(self.keys) < 3:  # pad to three orders for the compiled lookup
            self.keys.append(np.zeros(0, dtype=np.int64))
            self.cost.append(np.zeros(0))
            self.bow.append(np.zeros(0))
        if not np.isin(self.eos, self.keys[0]):
            raise AsrError(f"{path}: no unigram for </s>")
        self.index = ids  # word -> id

    def arrays(self):
        return (self.keys[0], self.cost[0], self.bow[0], self.keys[1], self.cost[1], self.bow[1],
                self.keys[2], self.cost[2])

    def sentence_cost(self, word_ids: list[int]) -> float:
        """-ln P(words </s> | <s>) (for tests and checks)."""
        h1, h2, total = self.bos, -1, 0.0
        for w in list(word_ids) + [self.eos]:
            total += _word_cost(*self.arrays(), h2, h1, w)
            h2, h1 = h1, w
        return total


@numba.njit(cache=True)
def _find(keys, key):
    i = np.searchsorted(keys, key)
    if i < len(keys) and keys[i] == key:
        return i
    return -1


@numba.njit(cache=True)
def _word_cost(k1, c1, b1, k2, c2, b2, k3, c3, h2, h1, w):
    """-ln p(w | h2 h1) by the ARPA back-off rule (h2 = -1: a one-word history)."""
    cost = 0.0
    if h2 >= 0 and len(k3):
        i = _find(k3, (h2 << (2 * 21)) | (h1 << 21) | w)
        if i >= 0:
            return c3[i]
        j = _find(k2, (h2 << 21) | h1)
        if j >= 0:
            cost += b2[j]
    if h1 >= 0 and len(k2):
        i = _find(k2, (h1 << 21) | w)
        if i >= 0:
            return cost + c2[i]
        j = _find(k1, h1)
        if j >= 0:
            cost += b1[j]
    i = _find(k1, w)
    if i < 0:
        return np.inf
    return cost + c1[i]




def token_costs(lm: ArpaScorer, words: list[str], unk: str = "<UNK>") -> np.ndarray:
    """(n + 1,) -ln p of each word of a sentence given the ones before it, and of ``</s>``
    (a word the LM lacks is scored as ``unk``; without one it costs inf)."""
    unk_id = lm.index.get(unk)
    arrays = lm.arrays()
    out = np.empty(len(words) + 1)
    h2, h1 = -1, lm.bos
    for k, w in enumerate(list(words) + [EOS]):
        wid = lm.index.get(w, unk_id)
        if wid is None:
            out[k] = np.inf
            h2, h1 = -1, -1
            continue
        out[k] = _word_cost(*arrays, h2, h1, wid)
        h2, h1 = h1, wid
    return out


def perplexity(lm: ArpaScorer, sentences, unk: str = "<UNK>") -> dict:
    """Perplexity of an LM on sentences (lists of words), ``</s>`` included, as SRILM's ``ppl``.

    Words the LM does not know are OOVs: mapped to ``unk`` when the LM has it (and then
    scored like any word), otherwise skipped, the history starting again after them.
    Returns sentences, words, oovs, oov_rate (%), logprob (log10) and ppl.
    """
    unk_id = lm.index.get(unk)
    arrays = lm.arrays()
    total = 0.0
    n_sent = n_words = n_oov = n_scored = 0
    for words in sentences:
        n_sent += 1
        h2, h1 = -1, lm.bos
        for w in list(words) + [EOS]:
            if w != EOS:
                n_words += 1
            wid = lm.index.get(w)
            if wid is None:
                n_oov += 1
                if unk_id is None:
                    h2, h1 = -1, -1  # skipped: the next word starts afresh
                    continue
                wid = unk_id
            cost = _word_cost(*arrays, h2, h1, wid)
            if not math.isfinite(cost):
                raise AsrError(f"the LM gives no probability to {w!r}")
            total += cost
            n_scored += 1
            h2, h1 = h1, wid
    if n_scored == 0:
        raise AsrError("no words to compute a perplexity on")
    return {"sentences": n_sent, "words": n_words, "oovs": n_oov, "oov_rate": 100.0 * n_oov / max(n_words, 1),
            "logprob": -total / LN10, "ppl": math.exp(total / n_scored)}
