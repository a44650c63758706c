"""L and G as FSTs (Kaldi's prepare_lang L_disambig.fst and arpa2fst G.fst).

Label spaces:
    phones: ``phones.txt`` ids, then disambiguation symbols ``#0, #1, ...`` numbered after
        the last phone (``Disambig.phone(k)``);
    words: ``words.txt`` ids, then one word-side ``#0`` (``Disambig.word0``) that G puts on
        its back-off arcs and L passes through with a ``#0:#0`` self-loop.

Disambiguation symbols make L o G determinizable: a pronunciation that is a prefix of
another (or shared by homophones) ends in its own ``#k``, and G's back-off arcs read
``#0``, so no two paths with the same phone string remain unresolved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from asr.graph.fst import Fst
from asr.lang.arpa import LmAutomaton
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.utils import AsrError


HOMOPHONE_TIE = 0.01  # nats, ten times the 1/1024 grid minimization quantizes weights to (see lexicon_fst)


@dataclass
class Disambig:
    """Where the disambiguation symbols live in the phone and word label spaces."""

    num_phones: int  # len(phones.txt): #k is phone label num_phones + k
    count: int  # #0 .. #(count-1)
    word0: int  # word label of #0

    def phone(self, k: int) -> int:
        return self.num_phones + k

    @property
    def phone_labels(self) -> list[int]:
        return [self.phone(k) for k in range(self.count)]


def _pron_disambig(prons: list[tuple[str, tuple[int, ...]]], silence: int) -> list[int]:
    """Kaldi's add_lex_disambig: the ``#k`` (k >= 1; 0 = none) each pronunciation ends with.

    A pronunciation needs one if it also occurs as another entry or as a proper prefix of
    another entry's pronunciation. The optional silence between words counts as an entry
    too: a word pronounced as silence (AN4's ``<UNK> SIL``) would otherwise read the same
    phones as the silence after a word, and L o G would not be determinizable.
    """
    count: dict[tuple[int, ...], int] = {(silence,): 1}
    prefixes: set[tuple[int, ...]] = set()
    for _, p in prons:
        count[p] = count.get(p, 0) + 1
        for k in range(1, len(p)):
            prefixes.add(p[:k])
    next_k: dict[tuple[int, ...], int] = {}
    out = []
    for _, p in prons:
        if count[p] > 1 or p in prefixes:
            # each entry of one phone string gets its own number; numbers repeat across strings
            k = next_k.get(p, 0) + 1
            next_k[p] = k
            out.append(k)
        else:
            out.append(0)
    return out


def lexicon_fst(lexicon: Lexicon, words: SymbolTable, phones: SymbolTable, vocabulary: list[str],
                silence_phone: str, sil_prob: float) -> tuple[Fst, Disambig]:
    """L with optional silence between words (Kaldi's make_lexicon_fst.py --sil-prob).

    States: 0 start, 1 the word loop (final), 2 the silence state. Every word leaves the
    loop and returns to it either directly (cost -log(1 - sil_prob)) or through the silence
    state and the silence phone (cost -log sil_prob); the start likewise begins with or
    without silence.

    Args:
        vocabulary: the words to include (those of G that have a pronunciation).
    Returns:
        (L, disambiguation symbols).
    """
    if not 0.0 < sil_prob < 1.0:
        raise AsrError(f"sil_prob must be between 0 and 1 (exclusive), got {sil_prob}")
    sil = phones.id(silence_phone)
    entries = []
    for w in vocabulary:
        for pron in lexicon.prons[w]:
            entries.append((w, tuple(phones.id(p) for p in pron)))
    dis = _pron_disambig(entries, sil)
    # Homophones (AN4's O and OH) tie exactly when the LM gives them the same probability;
    # without a rule, float noise in the pushed weights would pick one. As the old
    # decoder did, the word listed first wins: each later homophone of a pronunciation
    # costs HOMOPHONE_TIE more per place, far below any real cost difference.
    place: dict[tuple[int, ...], int] = {}
    tie = []
    for _, p in entries:
        tie.append(HOMOPHONE_TIE * place.get(p, 0))
        place[p] = place.get(p, 0) + 1
    num_dis = max(dis, default=0) + 1
    d = Disambig(len(phones), num_dis, len(words))
    c_sil, c_nosil = -math.log(sil_prob), -math.log1p(-sil_prob)
    src, dst, il, ol, wt = [], [], [], [], []

    def arc(s, t, i, o, w=0.0):
        src.append(s), dst.append(t), il.append(i), ol.append(o), wt.append(w)

    # One silence state shared by every word (Kaldi's sil_state): a state per word would make
    # the states after each word distinct, and determinization would rebuild the whole
    # prefix tree of the following words once per preceding word.
    start, loop, after_word_sil = 0, 1, 2
    n = 3
    arc(start, loop, 0, 0, c_nosil)
    arc(start, after_word_sil, 0, 0, c_sil)
    arc(after_word_sil, loop, sil, 0, 0.0)
    for (w, pron), k, extra in zip(entries, dis, tie):
        labels = list(pron) + ([d.phone(k)] if k else [])
        wid = words.id(w)
        prev = loop
        for j, lab in enumerate(labels[:-1]):
            arc(prev, n, lab, wid if j == 0 else 0, extra if j == 0 else 0.0)
            prev, n = n, n + 1
        first_out, first_cost = (wid, extra) if len(labels) == 1 else (0, 0.0)
        arc(prev, loop, labels[-1], first_out, c_nosil + first_cost)
        arc(prev, after_word_sil, labels[-1], first_out, c_sil + first_cost)
    arc(loop, loop, d.phone(0), d.word0)  # G's back-off #0 passes through
    return Fst.from_arcs(n, start, src, dst, il, ol, wt, {loop: 0.0}), d


def grammar_fst(lm: LmAutomaton, words: SymbolTable, disambig: Disambig, vocabulary: set[str]) -> Fst:
    """G: word arcs ``w:w`` with LM costs, back-off arcs ``#0:<eps>``, ``</s>`` as final cost."""
    src, dst, il, ol, wt = [], [], [], [], []
    for s, w, t, c in lm.word_arcs:
        if w in vocabulary:
            wid = words.id(w)
            src.append(s), dst.append(t), il.append(wid), ol.append(wid), wt.append(c)
    for s, t, c in lm.backoff_arcs:
        src.append(s), dst.append(t), il.append(disambig.word0), ol.append(0), wt.append(c)
    if not lm.final_costs:
        raise AsrError("the LM gives no probability to </s>: no sentence can end")
    return Fst.from_arcs(lm.num_states, lm.start, src, dst, il, ol, wt, dict(lm.final_costs))
