"""Per-utterance training graphs: the HMM-state network of one transcript.

The transcript becomes a small DAG of phone instances (every pronunciation of every
word, optional silence at the start, between words and at the end, Kaldi's L with
``sil_prob``), expanded to the phone contexts the context-dependency model needs, then
to HMM states. Only emitting states remain; word boundaries are folded into arcs, so
each state has a short list of predecessors, which is what the batched aligner
vectorises over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from asr.hmm.topology import TransitionModel
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.utils import AsrError

START, END = -1, -2


@dataclass
class AlignGraph:
    """Emitting-state network of one utterance (S states, up to K predecessors each).

    Attributes:
        pdf, tstate, phone: (S,) per state.
        word_pos: (S,) index of the transcript word the state belongs to, -1 for silence.
        instance: (S,) phone-instance id (tells apart consecutive copies of one phone).
        pred: (S, K) predecessor state, -1 for none.
        pred_tid: (S, K) transition id taken from the predecessor.
        pred_graph: (S, K) graph log-probability of that arc (silence / pronunciation choice).
        init_graph: (S,) log-probability of starting in the state, -inf if it cannot start.
        final_tid: (S,) exit transition id of the state, -1 when it cannot end the utterance.
        final_graph: (S,) graph log-probability of ending there.
        equal_path: state sequence used for the flat-start equal alignment.
    """

    pdf: np.ndarray
    tstate: np.ndarray
    phone: np.ndarray
    word_pos: np.ndarray
    instance: np.ndarray
    pred: np.ndarray
    pred_tid: np.ndarray
    pred_graph: np.ndarray
    init_graph: np.ndarray
    final_tid: np.ndarray
    final_graph: np.ndarray
    equal_path: np.ndarray

    @property
    def num_states(self) -> int:
        return len(self.pdf)


def build_align_graph(words: list[str], lexicon: Lexicon, phones: SymbolTable, trans: TransitionModel,
                      ctx, silence_phone: str = "SIL", sil_prob: float = 0.5, utt: str = "") -> AlignGraph:
    """Compile one transcript into an :class:`AlignGraph` for ``ctx`` (mono or tree)."""
    sil = phones.id(silence_phone)
    # --- phone-instance DAG ---------------------------------------------------------
    inst_phone: list[int] = []
    inst_word: list[int] = []
    edges: dict[tuple[int, int], float] = {}  # (from, to) -> graph log-prob; START / END virtual

    def new_inst(phone: int, word_pos: int) -> int:
        inst_phone.append(phone)
        inst_word.append(word_pos)
        return len(inst_phone) - 1

    def connect(frontier: list[tuple[int, float]], target: int) -> None:
        for node, lp in frontier:
            edges[(node, target)] = max(edges.get((node, target), -math.inf), lp)

    log_sil, log_nosil = math.log(sil_prob), math.log1p(-sil_prob)
    equal_seq: list[int] = []

    def optional_silence(frontier: list[tuple[int, float]]) -> tuple[list[tuple[int, float]], int]:
        s = new_inst(sil, -1)
        connect([(n, lp + log_sil) for n, lp in frontier], s)
        return [(n, lp + log_nosil) for n, lp in frontier] + [(s, 0.0)], s

    frontier: list[tuple[int, float]] = [(START, 0.0)]
    frontier, first_sil = optional_silence(frontier)
    equal_seq.append(first_sil)
    for pos, word in enumerate(words):
        if word not in lexicon:
            raise AsrError(f"utterance {utt}: word {word!r} is not in the lexicon")
        new_frontier = []
        for k, pron in enumerate(lexicon.prons[word]):
            prev = frontier
            for ph in pron:
                if ph not in phones:
                    raise AsrError(f"utterance {utt}: phone {ph!r} of {word!r} is not in the phone set")
                i = new_inst(phones.id(ph), pos)
                if k == 0:
                    equal_seq.append(i)
                connect(prev, i)
                prev = [(i, 0.0)]
            new_frontier += prev
        frontier, s = optional_silence(new_frontier)
    equal_seq.append(s)
    connect(frontier, END)

    # --- context expansion: copies of each instance per (left, right) phone --------
    preds: dict[int, list[int]] = {}
    succs: dict[int, list[int]] = {}
    for (a, b) in edges:
        preds.setdefault(b, []).append(a)
        succs.setdefault(a, []).append(b)

    def ph(i: int) -> int:
        return inst_phone[i] if i >= 0 else 0

    wide = ctx.context_width > 1
    copies: dict[int, list[tuple[int, int]]] = {}
    for i in range(len(inst_phone)):
        lefts = sorted({ph(a) for a in preds.get(i, [])}) if wide else [0]
        rights = sorted({ph(b) for b in succs.get(i, [])}) if wide else [0]
        copies[i] = [(l, r) for l in lefts for r in rights]

    # --- HMM expansion ------------------------------------------------------------------
    pdf, tstate, phone, word_pos, instance = [], [], [], [], []
    first_state: dict[tuple[int, int, int], int] = {}
    exits: dict[tuple[int, int, int], list[tuple[int, int]]] = {}  # copy -> [(state, exit tid)]
    pred_lists: list[list[tuple[int, int, float]]] = []
    for i in range(len(inst_phone)):
        p = inst_phone[i]
        topo = trans.topo.phone_topo[p]
        for (l, r) in copies[i]:
            base = len(pdf)
            for s in range(len(topo)):
                pdf.append(ctx.pdf_of(l, p, r, s))
                tstate.append(trans.tstate(p, s))
                phone.append(p)
                word_pos.append(inst_word[i])
                instance.append(i)
                pred_lists.append([])
            first_state[(i, l, r)] = base
            internal, phone_exits = trans.phone_arcs(p)
            for s, d, tid in internal:
                pred_lists[base + d].append((base + s, tid, 0.0))
            exits[(i, l, r)] = [(base + s, tid) for s, tid in phone_exits]
    S = len(pdf)
    init_graph = np.full(S, -np.inf)
    final_tid = np.full(S, -1, dtype=np.int64)
    final_graph = np.full(S, -np.inf)
    for (a, b), lp in edges.items():
        for (la, ra) in (copies[a] if a >= 0 else [(0, 0)]):
            if wide and a >= 0 and ra != ph(b):
                continue
            for (lb, rb) in (copies[b] if b >= 0 else [(0, 0)]):
                if wide and b >= 0 and lb != ph(a):
                    continue
                if a == START:
                    init_graph[first_state[(b, lb, rb)]] = lp
                elif b == END:
                    for st, tid in exits[(a, la, ra)]:
                        final_tid[st], final_graph[st] = tid, lp
                else:
                    for st, tid in exits[(a, la, ra)]:
                        pred_lists[first_state[(b, lb, rb)]].append((st, tid, lp))
    K = max(len(pl) for pl in pred_lists)
    pred = np.full((S, K), -1, dtype=np.int64)
    pred_tid = np.full((S, K), -1, dtype=np.int64)
    pred_graph = np.full((S, K), -np.inf)
    for j, pl in enumerate(pred_lists):
        for k, (a, tid, lp) in enumerate(pl):
            pred[j, k], pred_tid[j, k], pred_graph[j, k] = a, tid, lp
    # Equal-alignment path: the first context copy of each instance on the simple route.
    equal_path = np.concatenate([
        np.arange(first_state[(i, *copies[i][0])], first_state[(i, *copies[i][0])] + len(trans.topo.phone_topo[inst_phone[i]]))
        for i in equal_seq])
    return AlignGraph(np.array(pdf), np.array(tstate), np.array(phone), np.array(word_pos), np.array(instance),
                      pred, pred_tid, pred_graph, init_graph, final_tid, final_graph, equal_path)


# Arguments of parallel graph compilation (inherited by the forked workers, not pickled).
_COMPILE: dict = {}


def build_align_graphs(texts: dict[str, list[str]], lexicon: Lexicon, phones: SymbolTable, trans: TransitionModel,
                       ctx, silence_phone: str = "SIL", sil_prob: float = 0.5, nj: int = 1) -> dict[str, AlignGraph]:
    """:func:`build_align_graph` of every utterance (utt -> words), in ``nj`` forked processes
    as Kaldi's compile-train-graphs runs per job; the graphs do not depend on nj."""
    utts = list(texts)
    if nj <= 1 or len(utts) < 2 * nj:
        return {u: build_align_graph(texts[u], lexicon, phones, trans, ctx, silence_phone, sil_prob, u) for u in utts}
    from asr.parallel import fork_pool

    _COMPILE.update(args=(lexicon, phones, trans, ctx, silence_phone, sil_prob), texts=texts)
    try:
        with fork_pool(nj) as pool:
            parts = pool.map(_compile_share, [utts[k::nj] for k in range(nj)])
    finally:
        _COMPILE.clear()
    graphs = {u: g for part in parts for u, g in part.items()}
    return {u: graphs[u] for u in utts}


def _compile_share(utts: list[str]) -> dict[str, AlignGraph]:
    lexicon, phones, trans, ctx, silence_phone, sil_prob = _COMPILE["args"]
    return {u: build_align_graph(_COMPILE["texts"][u], lexicon, phones, trans, ctx, silence_phone, sil_prob, u)
            for u in utts}
