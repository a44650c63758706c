"""Static decoding graph from lexicon + LM + HMM (our HCLG), compiled once per model.

Context dependency is cross-word, as in training: a phone's pdfs depend on the phone
before and after it even across word boundaries (the same contexts the alignment graphs
see, so a triphone model is decoded with the contexts it was trained on). Layout, for
every LM history state h:

    C(h, l, r)  "next comes a word starting with phone r, after phone l"   (non-emitting)
    C(h, l, r) --word w (first phone r), LM cost--> E(w, h', left group of l)
    E --first phone of w in context l--> ... --last phone in context r'--> continuation
    continuation of (h', last phone p, right context r'):
        r' = SIL:          silence HMM of h' (cost -log p_sil), then C(h', SIL, *) or final
        r' = 0 (the end):  F(h'), final with the LM's cost of </s> (cost -log(1-p_sil))
        r' = a phone:      C(h', p, r') (cost -log(1-p_sil))
    C(h, l, r) and F(h) have epsilon back-off arcs to the shorter history.

Copies of a word's first (last) phone are made only per *group* of left (right)
contexts that the tree maps to different pdfs, so the graph grows with the number of
distinct tied states, not with the phone set squared. Silence is context-independent
(its tree roots are not split). A monophone model is the special case where every
context is the wildcard 0: one C(h) per LM state and no copies. The C nodes number
LM states x word-final phones x word-initial phones, which suits the task-sized LMs
here (unigram / small n-gram); a large n-gram LM would want an on-the-fly composition.

Emitting nodes are HMM states: an arc *into* one consumes a frame with that node's
pdf. Epsilon arcs never form cycles, so the decoder handles them level by level.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from asr.hmm.topology import TransitionModel
from asr.lang.arpa import LmAutomaton
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.utils import AsrError, atomic_path, one_line

log = logging.getLogger(__name__)


@dataclass
class DecodingGraph:
    """Arrays of the graph; arcs are sorted by source state.

    Attributes:
        start: start state.
        final_cost: (N,) cost of ending in a state (inf: not final).
        node_pdf: (N,) pdf of an emitting state, -1 for non-emitting ones.
        node_phone: (N,) phone id of an emitting state, 0 otherwise.
        node_word: (N,) word id whose pronunciation the state belongs to, 0 for silence.
        arc_src, arc_dst: (E,) endpoints.
        arc_tid: (E,) HMM transition id on the arc, -1 for none.
        arc_word: (E,) output word id, 0 for none.
        arc_graph_cost: (E,) pronunciation / silence cost.
        arc_lm_cost: (E,) language-model cost.
    """

    start: int
    final_cost: np.ndarray
    node_pdf: np.ndarray
    node_phone: np.ndarray
    node_word: np.ndarray
    arc_src: np.ndarray
    arc_dst: np.ndarray
    arc_tid: np.ndarray
    arc_word: np.ndarray
    arc_graph_cost: np.ndarray
    arc_lm_cost: np.ndarray
    model_fingerprint: str = ""  # asr.model_dir.fingerprint() of the model compiled for

    @property
    def num_states(self) -> int:
        return len(self.node_pdf)

    @property
    def num_arcs(self) -> int:
        return len(self.arc_src)

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            np.savez(tmp, **{f.name: np.asarray(getattr(self, f.name)) for f in fields(self)})

    @classmethod
    def load(cls, path: str | Path) -> "DecodingGraph":
        """Read and check a saved graph (an AsrError naming ``path`` if it is not one)."""
        path = Path(path)
        if not path.exists():
            raise AsrError(f"missing decoding graph {path}; run the graph stage (asr mkgraph)")
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {f.name: z[f.name] for f in fields(cls) if f.name in z or f.name != "model_fingerprint"}
        except KeyError as e:
            raise AsrError(f"{path}: not a decoding graph (no {e.args[0]!r} array)") from None
        except Exception as e:  # truncated zip, not a zip, pickled objects
            raise AsrError(f"{path}: not a readable decoding graph ({one_line(e)})") from None
        d["start"] = int(d["start"])
        d["model_fingerprint"] = str(d.get("model_fingerprint", ""))
        graph = cls(**d)
        graph._check(path)
        return graph

    def _check(self, path: Path) -> None:
        """Shapes and indices consistent, so a damaged file fails here, not as an IndexError."""
        n, e = self.num_states, self.num_arcs
        ok = (len(self.final_cost) == n and len(self.node_phone) == n and len(self.node_word) == n
              and all(len(getattr(self, a)) == e for a in ("arc_dst", "arc_tid", "arc_word", "arc_graph_cost",
                                                          "arc_lm_cost"))
              and 0 <= self.start < n and (e == 0 or (self.arc_src.min() >= 0 and self.arc_src.max() < n
                                                      and self.arc_dst.min() >= 0 and self.arc_dst.max() < n)))
        if not ok:
            raise AsrError(f"{path}: damaged decoding graph (inconsistent arrays); rerun asr mkgraph")


class _Builder:
    def __init__(self, trans: TransitionModel, ctx) -> None:
        self.trans, self.ctx = trans, ctx
        self.pdf: list[int] = []
        self.phone: list[int] = []
        self.word: list[int] = []
        self.arcs: list[tuple[int, int, int, int, float, float]] = []

    def node(self, pdf: int = -1, phone: int = 0, word: int = 0) -> int:
        self.pdf.append(pdf)
        self.phone.append(phone)
        self.word.append(word)
        return len(self.pdf) - 1

    def arc(self, src: int, dst: int, tid: int = -1, word: int = 0, graph: float = 0.0, lm: float = 0.0) -> None:
        self.arcs.append((src, dst, tid, word, graph, lm))

    def pdfs(self, left: int, phone: int, right: int) -> tuple[int, ...]:
        return tuple(self.ctx.pdf_of(left, phone, right, s) for s in range(self.trans.topo.num_states(phone)))

    def phone_hmm(self, left: int, phone: int, right: int, word: int = 0) -> tuple[int, list[tuple[int, int]]]:
        """Emitting nodes of one phone in context: (first node, [(exit node, exit tid)])."""
        nodes = [self.node(pdf, phone, word) for pdf in self.pdfs(left, phone, right)]
        internal, exits = self.trans.phone_arcs(phone)
        for s, d, tid in internal:
            self.arc(nodes[s], nodes[d], tid=tid)
        return nodes[0], [(nodes[s], tid) for s, tid in exits]


def _group(labels: list[int], signature) -> list[list[int]]:
    """Partition ``labels`` by ``signature(label)`` (contexts the tree cannot tell apart)."""
    groups: dict = {}
    for lab in labels:
        groups.setdefault(signature(lab), []).append(lab)
    return list(groups.values())


def compile_graph(lexicon: Lexicon, words: SymbolTable, phones: SymbolTable, lm: LmAutomaton,
                  trans: TransitionModel, ctx, silence_phone: str = "SIL", sil_prob: float = 0.5) -> DecodingGraph:
    """Build the decoding graph for a model (see the module docstring for its shape)."""
    b = _Builder(trans, ctx)
    sil = phones.id(silence_phone)
    if not ctx.context_independent(sil):
        raise AsrError(f"silence phone {silence_phone} must be context-independent to be decoded")
    cost_sil, cost_nosil = -math.log(sil_prob), -math.log1p(-sil_prob)
    skipped = sorted({w for _, w, _, _ in lm.word_arcs if w not in lexicon or w not in words})
    if skipped:
        log.warning("%d LM word(s) have no pronunciation and are left out of the graph: %s",
                    len(skipped), " ".join(skipped[:20]))
    prons = {w: [[phones.id(p) for p in pron] for pron in lexicon.prons[w]]
             for _, w, _, _ in lm.word_arcs if w not in skipped}
    if not prons:
        raise AsrError("no LM word has a pronunciation in the lexicon: the graph would be empty")
    wide = ctx.context_width > 1
    needs_separator = getattr(ctx, "needs_separator", None)

    def exits_to(exits: list[tuple[int, int]], prev: int, nxt: int) -> list[tuple[int, int]]:
        """Exits of phone ``prev`` that may lead straight into phone ``nxt``: all of them, except
        that a CTC model must pass through blank (pdf 0) between two equal tokens."""
        if needs_separator is None or nxt in (0, sil) or not needs_separator(prev, nxt):
            return exits
        return [(n, tid) for n, tid in exits if b.pdf[n] == 0]

    # Context labels: real phone ids for a context-dependent model, the wildcard 0 otherwise.
    if wide:
        firsts = sorted({p[0] for ps in prons.values() for p in ps})
        lefts = sorted({p[-1] for ps in prons.values() for p in ps} | {sil, 0})
        rights = firsts + [sil, 0]
    else:
        firsts, lefts, rights = [0], [0], [0]
    label = (lambda p: p) if wide else (lambda p: 0)
    H = lm.num_states
    C = {(h, l, r): b.node() for h in range(H) for l in lefts for r in firsts}
    F = [b.node() for _ in range(H)]
    sil_entry = [b.node() for _ in range(H)]

    def continuations(h: int, last: int, right: int) -> list[tuple[int, float]]:
        """Where a word ending in ``last`` goes when followed by context ``right``."""
        out = []
        if not wide or right == sil:
            out.append((sil_entry[h], cost_sil))
        if not wide or right == 0:
            out.append((F[h], cost_nosil))
        if not wide or right not in (sil, 0):
            out.append((C[(h, label(last), right)], cost_nosil))
        return out

    for h in range(H):  # optional silence, context-independent
        first, exits = b.phone_hmm(0, sil, 0)
        b.arc(sil_entry[h], first)
        after = [C[(h, label(sil), r)] for r in firsts] + [F[h]]
        for n, tid in exits:
            for dst in after:
                b.arc(n, dst, tid=tid)
    for src, dst, cost in lm.backoff_arcs:
        for l in lefts:
            for r in firsts:
                b.arc(C[(src, l, r)], C[(dst, l, r)], lm=cost)
        b.arc(F[src], F[dst], lm=cost)
    start = b.node()
    b.arc(start, sil_entry[lm.start], graph=cost_sil)
    for r in firsts:
        b.arc(start, C[(lm.start, 0, r)], graph=cost_nosil)

    def word_entries(wid: int, h: int, pron: list[int]) -> dict[int, int]:
        """Emitting states of one pronunciation ending in LM state h: left label -> entry node."""
        entry: dict[int, int] = {}
        last = pron[-1]
        if len(pron) == 1:
            p = pron[0]
            for lgroup in _group(lefts, lambda l: tuple(b.pdfs(l, p, r) for r in rights)):
                e = b.node()
                for l in lgroup:
                    entry[l] = e
                for rgroup in _group(rights, lambda r: b.pdfs(lgroup[0], p, r)):
                    first, exits = b.phone_hmm(lgroup[0], p, rgroup[0], wid)
                    b.arc(e, first)
                    for r in rgroup:
                        for n, tid in exits_to(exits, p, r):
                            for dst, c in continuations(h, last, r):
                                b.arc(n, dst, tid=tid, graph=c)
            return entry
        merge = b.node()
        for lgroup in _group(lefts, lambda l: b.pdfs(l, pron[0], pron[1])):
            e = b.node()
            for l in lgroup:
                entry[l] = e
            first, exits = b.phone_hmm(lgroup[0], pron[0], pron[1], wid)
            b.arc(e, first)
            for n, tid in exits_to(exits, pron[0], pron[1]):
                b.arc(n, merge, tid=tid)
        prev = [(merge, -1)]
        for k in range(1, len(pron) - 1):
            first, exits = b.phone_hmm(pron[k - 1], pron[k], pron[k + 1], wid)
            for n, tid in prev:
                b.arc(n, first, tid=tid)
            prev = exits_to(exits, pron[k], pron[k + 1])
        for rgroup in _group(rights, lambda r: b.pdfs(pron[-2], last, r)):
            first, exits = b.phone_hmm(pron[-2], last, rgroup[0], wid)
            for n, tid in prev:
                b.arc(n, first, tid=tid)
            for r in rgroup:
                for n, tid in exits_to(exits, last, r):
                    for dst, c in continuations(h, last, r):
                        b.arc(n, dst, tid=tid, graph=c)
        return entry

    entries: dict[tuple[int, int, int], dict[int, int]] = {}
    for src, word, dst, cost in lm.word_arcs:
        if word in skipped:
            continue
        wid = words.id(word)
        for k, pron in enumerate(prons[word]):
            if (wid, dst, k) not in entries:
                entries[(wid, dst, k)] = word_entries(wid, dst, pron)
            for l in lefts:
                b.arc(C[(src, l, label(pron[0]))], entries[(wid, dst, k)][l], word=wid, lm=cost)
    final = np.full(len(b.pdf), np.inf)
    for h, c in lm.final_costs.items():
        final[F[h]] = c
    arcs = sorted(b.arcs, key=lambda a: a[0])
    cols = list(zip(*arcs))
    g = DecodingGraph(
        start=start, final_cost=final,
        node_pdf=np.array(b.pdf, dtype=np.int64), node_phone=np.array(b.phone, dtype=np.int64),
        node_word=np.array(b.word, dtype=np.int64),
        arc_src=np.array(cols[0], dtype=np.int64), arc_dst=np.array(cols[1], dtype=np.int64),
        arc_tid=np.array(cols[2], dtype=np.int64), arc_word=np.array(cols[3], dtype=np.int64),
        arc_graph_cost=np.array(cols[4]), arc_lm_cost=np.array(cols[5]))
    log.info("decoding graph: %d states (%d emitting), %d arcs, %d LM states, %d words%s",
             g.num_states, int((g.node_pdf >= 0).sum()), g.num_arcs, lm.num_states, len(prons),
             ", cross-word context" if wide else "")
    return g
