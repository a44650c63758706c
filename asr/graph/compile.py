"""HCLG with OpenFst, as Kaldi's mkgraph.sh builds it.

    LG   = min(det(L o G))                    L with disambiguation symbols, G from the LM
    CLG  = C o LG                             cross-word context (kaldifst.compose_context)
    HCLG = min(rmdisambig(det(H o CLG)))      H: each context window's HMM

One graph path serves every model: monophone (context width 1), triphone (width 3,
central position 1) and CTC (width 3 too, because a token followed by the same token
must pass through blank, which depends on the next phone; see ``asr.hmm.ctc_topology``).

Input labels of HCLG are *graph labels*: 1..num_labels, each one (transition id, pdf)
pair, where the pdf is that of the HMM state the transition leaves (Kaldi's convention:
a frame is consumed on the way out of a state). 0 is epsilon. Output labels are word ids.
Arc weights hold the LM and silence costs; transition log-probabilities are looked up
per label at decode time (``label_tid``), so the transition scale stays a decode option.

Where this departs from Kaldi, and why: H carries the HMM self-loops *before*
determinization (Kaldi adds them afterwards with add-self-loops). Determinization is a
little slower on the larger machine, but no transition-state bookkeeping is needed
afterwards; the result accepts the same paths with the same weights.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numba
import numpy as np

from asr.graph.fst import Fst
from asr.graph.lang_fst import grammar_fst, lexicon_fst
from asr.hmm.topology import TransitionModel
from asr.lang.arpa import LmAutomaton
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.utils import AsrError, atomic_path, one_line

log = logging.getLogger(__name__)


@dataclass
class DecodingGraph(Fst):
    """HCLG as an :class:`~asr.graph.fst.Fst` (input labels are graph labels, 0 = epsilon
    consuming no frame; output labels word ids; weights LM, pronunciation and silence
    costs), plus what the decoder needs to score its labels.

    Attributes:
        label_tid: (num_labels + 1,) int32 transition id of each label (-1 for label 0).
        label_pdf: (num_labels + 1,) int32 pdf scored by each label (-1 for label 0).
        eps_rank: (N,) int32 rank of each state in an order where every epsilon arc goes
            forward (the decoder expands a frame's epsilon arcs in this order, so each
            token is expanded once, after all its epsilon predecessors).
        model_fingerprint: asr.model_dir.fingerprint() of the model the graph is for.
        inputs_fingerprint: what the graph is made of (tree, lexicon, LM, options; see
            :mod:`asr.graph.mkgraph`): models with the same one can share the graph, as a
            SAT GMM and the DNN on its tied states do in Kaldi. Empty in older files.
    """

    label_tid: np.ndarray = None
    label_pdf: np.ndarray = None
    eps_rank: np.ndarray = None
    model_fingerprint: str = ""
    inputs_fingerprint: str = ""

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
                d = {f.name: z[f.name] for f in fields(cls) if f.name != "inputs_fingerprint"}
                d["inputs_fingerprint"] = str(z["inputs_fingerprint"]) if "inputs_fingerprint" in z.files else ""
        except KeyError as e:
            raise AsrError(f"{path}: not a decoding graph of this asr version (no {e.args[0]!r} array); "
                           "rerun asr mkgraph") from None
        except Exception as e:  # truncated zip, not a zip, pickled objects
            raise AsrError(f"{path}: not a readable decoding graph ({one_line(e)})") from None
        d["start"] = int(d["start"])
        d["model_fingerprint"] = str(d["model_fingerprint"])
        graph = cls(**d)
        graph._check(path)
        return graph

    def _check(self, path: Path) -> None:
        """Shapes and indices consistent, so a damaged file fails here, not as an IndexError."""
        n, e, nl = self.num_states, self.num_arcs, len(self.label_tid)
        ok = (len(self.arc_start) == n + 1 and len(self.eps_rank) == n and self.arc_start[0] == 0
              and self.arc_start[-1] == e and bool(np.all(np.diff(self.arc_start) >= 0))
              and all(len(getattr(self, a)) == e for a in ("ilabel", "olabel", "weight"))
              and len(self.label_pdf) == nl and 0 <= self.start < n
              and (e == 0 or (self.dst.min() >= 0 and self.dst.max() < n
                              and self.ilabel.min() >= 0 and self.ilabel.max() < nl)))
        if not ok:
            raise AsrError(f"{path}: damaged decoding graph (inconsistent arrays); rerun asr mkgraph")


# -- H ---------------------------------------------------------------------------------------
def _h_fst(windows: list[list[int]], trans: TransitionModel, ctx, central: int) -> tuple[Fst, np.ndarray, np.ndarray, int]:
    """H: graph labels -> context windows (CLG's input labels), self-loops included.

    Returns (H, label_tid, label_pdf, num_labels); labels above ``num_labels`` are H's
    disambiguation symbols (one per disambiguation window), removed after determinization.
    """
    needs_separator = getattr(ctx, "needs_separator", None)
    label_of: dict[tuple[int, int], int] = {}
    src, dst, il, ol = [], [], [], []
    n = 1  # state 0: start and final; each window's HMM states follow
    disambig_windows = []
    for k, win in enumerate(windows):
        if k == 0:
            continue  # epsilon
        if len(win) <= 1 and (not win or win[0] <= 0):
            disambig_windows.append(k)  # [0] is compose_context's "#-1", [-x] a phone #x
            continue
        phone = win[central]
        left = win[central - 1] if central > 0 else 0
        right = win[central + 1] if central + 1 < len(win) else 0
        if phone not in trans.topo.phone_topo:
            raise AsrError(f"phone {phone} of the lexicon has no HMM in the model's topology")
        num = trans.topo.num_states(phone)
        pdfs = [ctx.pdf_of(left, phone, right, s) for s in range(num)]
        first = n
        n += num
        src.append(0), dst.append(first), il.append(0), ol.append(k)
        separate = needs_separator is not None and right > 0 and needs_separator(phone, right)
        for s in range(num):
            for tid, d in trans.arcs(trans.tstate(phone, s)):
                if d == num and separate and pdfs[s] != 0:
                    continue  # CTC: the same token again must come after a blank
                lab = label_of.setdefault((tid, pdfs[s]), len(label_of) + 1)
                src.append(first + s), dst.append(first + d if d < num else 0), il.append(lab), ol.append(0)
    num_labels = len(label_of)
    for m, k in enumerate(disambig_windows):
        src.append(0), dst.append(0), il.append(num_labels + 1 + m), ol.append(k)
    label_tid = np.full(num_labels + 1, -1, dtype=np.int32)
    label_pdf = np.full(num_labels + 1, -1, dtype=np.int32)
    for (tid, pdf), lab in label_of.items():
        label_tid[lab], label_pdf[lab] = tid, pdf
    h = Fst.from_arcs(n, 0, src, dst, il, ol, np.zeros(len(src)), {0: 0.0})
    return h, label_tid, label_pdf, num_labels


# -- the pipeline ------------------------------------------------------------------------------
def _det_min(fst, what: str, use_log: bool = True):
    import kaldifst

    t0 = time.time()
    if kaldifst.determinize_star(fst, use_log=use_log):
        raise AsrError(f"determinization of {what} stopped early")
    kaldifst.minimize_encoded(fst)
    log.info("%s: %d states after det+min (%.1f s)", what, fst.num_states, time.time() - t0)
    return fst


def _compose(a, b, what: str):
    import kaldifst

    kaldifst.arcsort(a, sort_type="olabel")
    kaldifst.arcsort(b, sort_type="ilabel")
    out = kaldifst.compose(a, b)
    if out.num_states == 0:
        raise AsrError(f"{what} is empty: no path of the lexicon and LM survives the composition")
    return out


def compile_graph(lexicon: Lexicon, words: SymbolTable, phones: SymbolTable, lm: LmAutomaton,
                  trans: TransitionModel, ctx, silence_phone: str = "SIL", sil_prob: float = 0.5) -> DecodingGraph:
    """Build HCLG for a model (see the module docstring)."""
    import kaldifst

    t0 = time.time()
    lm_words = sorted({w for _, w, _, _ in lm.word_arcs})
    skipped = [w for w in lm_words if w not in lexicon or w not in words]
    if skipped:
        log.warning("%d LM word(s) have no pronunciation and are left out of the graph: %s",
                    len(skipped), " ".join(skipped[:20]))
    vocabulary = [w for w in lm_words if w in lexicon and w in words]
    if not vocabulary:
        raise AsrError("no LM word has a pronunciation in the lexicon: the graph would be empty")
    if silence_phone not in phones:
        raise AsrError(f"silence phone {silence_phone} is not in the phone table")
    L, dis = lexicon_fst(lexicon, words, phones, vocabulary, silence_phone, sil_prob)
    G = grammar_fst(lm, words, dis, set(vocabulary))
    LG = _det_min(_compose(L.to_kaldifst(), G.to_kaldifst(), "L o G"), "LG")
    width = int(ctx.context_width)
    central = 1 if width == 3 else 0
    if width not in (1, 3):
        raise AsrError(f"context width {width} is not supported (1 or 3)")
    CLG, windows = kaldifst.compose_context(dis.phone_labels, width, central, LG)
    H, label_tid, label_pdf, num_labels = _h_fst(windows, trans, ctx, central)
    hclg = _compose(H.to_kaldifst(), CLG, "H o CLG")
    if kaldifst.determinize_star(hclg, use_log=True):
        raise AsrError("determinization of HCLG stopped early")
    arrays = Fst.from_kaldifst(hclg, "HCLG")
    arrays.ilabel[arrays.ilabel > num_labels] = 0  # H's disambiguation symbols become epsilon
    hclg = arrays.to_kaldifst()
    kaldifst.minimize_encoded(hclg)
    kaldifst.connect(hclg)
    g = Fst.from_kaldifst(hclg, "HCLG")
    graph = DecodingGraph(start=g.start, final=g.final, arc_start=g.arc_start, ilabel=g.ilabel, olabel=g.olabel,
                          weight=g.weight, dst=g.dst, label_tid=label_tid, label_pdf=label_pdf,
                          eps_rank=epsilon_rank(g.arc_start, g.ilabel, g.dst))
    log.info("HCLG: %d states, %d arcs, %d graph labels, %d words, context width %d (%.1f s)",
             graph.num_states, graph.num_arcs, num_labels, len(vocabulary), width, time.time() - t0)
    return graph


def epsilon_rank(arc_start: np.ndarray, ilabel: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(N,) rank of each state in a topological order of the epsilon arcs (an AsrError on a cycle)."""
    rank = _eps_rank(arc_start, ilabel, dst)
    if rank[0] < 0 and len(rank):
        raise AsrError("decoding graph has an epsilon cycle")
    return rank


@numba.njit(cache=True)
def _eps_rank(arc_start, ilabel, dst):
    n = len(arc_start) - 1
    indeg = np.zeros(n, dtype=np.int64)
    for a in range(len(dst)):
        if ilabel[a] == 0:
            indeg[dst[a]] += 1
    order = np.empty(n, dtype=np.int64)
    head = 0
    tail = 0
    for s in range(n):
        if indeg[s] == 0:
            order[tail] = s
            tail += 1
    while head < tail:
        s = order[head]
        head += 1
        for a in range(arc_start[s], arc_start[s + 1]):
            if ilabel[a] == 0:
                d = dst[a]
                indeg[d] -= 1
                if indeg[d] == 0:
                    order[tail] = d
                    tail += 1
    rank = np.empty(n, dtype=np.int32)
    if tail < n:
        rank[:] = -1
        return rank
    for i in range(n):
        rank[order[i]] = i
    return rank
