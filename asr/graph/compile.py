"""Static decoding graph from lexicon + LM + HMM (our HCLG), compiled once per model.

Layout, for every LM history state h (Kaldi's arpa2fst states):

    A(h) --eps, -log(1-p_sil)------------------------------> B(h)
    A(h) --SIL HMM (entered with -log p_sil)--------------> B(h)      optional silence
    B(h) --eps, backoff cost------------------------------> B(h')     shorter history
    B(h) --eps, word w, LM cost---------------------------> W(w, h'')  h'' = LM state after w
    W(w, h'') --HMM chain of each pronunciation of w------> A(h'')
    B(h) is final with the LM's cost of </s> after h; the start state is A(<s>).

Emitting nodes are HMM states: an arc *into* one consumes a frame with that node's
pdf. Epsilon arcs never form cycles, so the decoder handles them level by level.
Phones inside a word get their word-internal context (0 at word edges), so the same
compiler serves monophone and context-dependent models.
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
from asr.utils import AsrError, atomic_path

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
        path = Path(path)
        if not path.exists():
            raise AsrError(f"missing decoding graph {path}; run the graph stage (asr mkgraph)")
        with np.load(path) as z:
            d = {f.name: z[f.name] for f in fields(cls)}
        d["start"] = int(d["start"])
        return cls(**d)


class _Builder:
    def __init__(self) -> None:
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

    def hmm_chain(self, entries: list[tuple[int, float]], phones: list[int], trans: TransitionModel, ctx,
                  exit_to: int, word: int = 0) -> None:
        """Emitting nodes for a phone sequence; ``entries`` (node, cost) lead into its first state."""
        prev_exits = [(n, -1, c) for n, c in entries]  # (node, tid, graph cost)
        for k, p in enumerate(phones):
            left = phones[k - 1] if k > 0 else 0
            right = phones[k + 1] if k + 1 < len(phones) else 0
            nodes = [self.node(ctx.pdf_of(left, p, right, s), p, word) for s in range(trans.topo.num_states(p))]
            for n, tid, c in prev_exits:
                self.arc(n, nodes[0], tid=tid, graph=c)
            internal, exits = trans.phone_arcs(p)
            for s, d, tid in internal:
                self.arc(nodes[s], nodes[d], tid=tid)
            prev_exits = [(nodes[s], tid, 0.0) for s, tid in exits]
        for n, tid, c in prev_exits:
            self.arc(n, exit_to, tid=tid, graph=c)


def compile_graph(lexicon: Lexicon, words: SymbolTable, phones: SymbolTable, lm: LmAutomaton,
                  trans: TransitionModel, ctx, silence_phone: str = "SIL", sil_prob: float = 0.5) -> DecodingGraph:
    """Build the decoding graph for a model (see the module docstring for its shape)."""
    b = _Builder()
    sil = phones.id(silence_phone)
    A = [b.node() for _ in range(lm.num_states)]
    B = [b.node() for _ in range(lm.num_states)]
    for h in range(lm.num_states):
        b.arc(A[h], B[h], graph=-math.log1p(-sil_prob))
        b.hmm_chain([(A[h], -math.log(sil_prob))], [sil], trans, ctx, exit_to=B[h])
    for src, dst, cost in lm.backoff_arcs:
        b.arc(B[src], B[dst], lm=cost)
    entry: dict[tuple[int, int], int] = {}
    skipped = set()
    for src, word, dst, cost in lm.word_arcs:
        if word not in lexicon or word not in words:
            skipped.add(word)
            continue
        wid = words.id(word)
        if (wid, dst) not in entry:
            w_node = entry[(wid, dst)] = b.node()
            for pron in lexicon.prons[word]:
                b.hmm_chain([(w_node, 0.0)], [phones.id(p) for p in pron], trans, ctx, exit_to=A[dst], word=wid)
        b.arc(B[src], entry[(wid, dst)], word=wid, lm=cost)
    if skipped:
        log.warning("%d LM word(s) have no pronunciation and are left out of the graph: %s",
                    len(skipped), " ".join(sorted(skipped)[:20]))
    if not entry:
        raise AsrError("no LM word has a pronunciation in the lexicon: the graph would be empty")
    final = np.full(len(b.pdf), np.inf)
    for h, c in lm.final_costs.items():
        final[B[h]] = c
    arcs = sorted(b.arcs, key=lambda a: a[0])
    cols = list(zip(*arcs))
    g = DecodingGraph(
        start=A[lm.start], final_cost=final,
        node_pdf=np.array(b.pdf, dtype=np.int64), node_phone=np.array(b.phone, dtype=np.int64),
        node_word=np.array(b.word, dtype=np.int64),
        arc_src=np.array(cols[0], dtype=np.int64), arc_dst=np.array(cols[1], dtype=np.int64),
        arc_tid=np.array(cols[2], dtype=np.int64), arc_word=np.array(cols[3], dtype=np.int64),
        arc_graph_cost=np.array(cols[4]), arc_lm_cost=np.array(cols[5]))
    log.info("decoding graph: %d states (%d emitting), %d arcs, %d LM states, %d words",
             g.num_states, int((g.node_pdf >= 0).sum()), g.num_arcs, lm.num_states, len(entry))
    return g
