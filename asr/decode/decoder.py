"""Token-passing decoder over HCLG that makes lattices (Kaldi's lattice-faster-decoder).

The decoder only sees per-frame acoustic log-scores ``(T, num_pdfs)``: GMM
log-likelihoods, DNN scaled log-likelihoods (log posterior - log prior) and CTC
log-posteriors go through the same code.

Per frame it keeps tokens for live graph states only (a state -> token map that is reset
for the states touched, never swept): every token within ``beam`` of the frame's best
(and among the ``max_active`` best) expands its emitting arcs into the next frame, whose
tokens then follow epsilon arcs in the graph's epsilon order (``DecodingGraph.eps_rank``)
so each is expanded once, after all its epsilon predecessors. The cost of a frame grows
with the number of live tokens and their arcs, not with the graph. The loop is compiled
with numba.

Every expansion that comes within ``lattice_beam`` of the best way into its token is kept
as a forward link (source token, destination token, graph label, word, graph cost,
acoustic cost). A link worse than the best into its token by more than the lattice beam
can never lie on a path within the lattice beam of the best path, so dropping it early
loses nothing. At the end, links outside the lattice beam (forward + backward cost) are
pruned and the rest is the utterance's state-level lattice (``asr.decode.lattice``).

Cost of a link = graph cost (HCLG weight + transition_scale * -log p(tid)) + word_penalty
on word links + acoustic_scale * acoustic cost (-log-score). The lattice keeps the graph
and acoustic costs apart, unscaled by the acoustic scale, so LMWT and penalty can be
changed afterwards without decoding again.
"""

from __future__ import annotations

import copy

import logging
from dataclasses import dataclass

import numba
import numpy as np

from asr.decode.lattice import Lattice, lattice_from_tokens
from asr.graph.compile import DecodingGraph
from asr.decode.config import DecoderConfig
from asr.utils import AsrError

log = logging.getLogger(__name__)


@dataclass
class DecodeResult:
    """Best path and the lattice around it.

    Attributes:
        word_ids: word ids of the best path, in order.
        tids: (T,) transition id taken at each frame.
        pdfs: (T,) pdf scored at each frame.
        cost: total cost of the best path (at the search's scales).
        reached_final: False when no final state was alive at the last frame (the best
            partial path is returned).
        lattice: the pruned state-level lattice.
        path: arc indices of the best path in ``lattice``.
    """

    word_ids: list[int]
    tids: np.ndarray
    pdfs: np.ndarray
    cost: float
    reached_final: bool
    lattice: Lattice
    path: np.ndarray


class Decoder:
    """Decode utterances against one graph with fixed options."""

    def __init__(self, graph: DecodingGraph, trans_log_probs: np.ndarray, cfg: DecoderConfig | None = None):
        self.g = graph
        self.cfg = c = cfg or DecoderConfig()
        self.trans_log_probs = tlp = np.asarray(trans_log_probs, dtype=np.float64)
        if len(graph.label_tid) > 1 and graph.label_tid[1:].max() >= len(tlp):
            raise AsrError("decoding graph uses transition ids the model does not have; rerun asr mkgraph")
        label_cost = np.zeros(len(graph.label_tid))
        label_cost[1:] = -tlp[graph.label_tid[1:]]
        self.arc_graph_cost = (graph.weight.astype(np.float64) + c.transition_scale * label_cost[graph.ilabel])
        # States with epsilon arcs: the only tokens the per-frame epsilon closure must visit.
        self.has_eps = np.zeros(graph.num_states, dtype=bool)
        self.has_eps[np.repeat(np.arange(graph.num_states), np.diff(graph.arc_start))[graph.ilabel == 0]] = True
        # Per graph, not per utterance: the search leaves its state -> token map all -1 when
        # it returns, so one map (and one float64 copy of the final costs) serves every call.
        self.final = graph.final.astype(np.float64)
        self.tok_of_state = np.full(graph.num_states, -1, dtype=np.int64)
        # The search's token, link and heap arrays, kept between utterances (no regrowth)
        self._bufs = (np.empty(1024, dtype=np.int32), np.empty(1024, dtype=np.int32), np.empty(1024),
                      np.empty((4096, 6)), np.empty(1024, dtype=np.int64), np.empty(1024, dtype=np.int64))
        self.max_pdf = int(graph.label_pdf[1:].max()) if len(graph.label_pdf) > 1 else -1

    def with_config(self, cfg: DecoderConfig) -> "Decoder":
        """The same graph with other search options; the per-graph arrays are shared (a new
        build only when the transition scale, baked into the arc costs, differs)."""
        if cfg.transition_scale != self.cfg.transition_scale:
            return Decoder(self.g, self.trans_log_probs, cfg)
        other = copy.copy(self)
        other.cfg = cfg
        return other

    def decode(self, scores: np.ndarray) -> DecodeResult:
        """Best path and lattice for one utterance.

        Args:
            scores: (T, num_pdfs) acoustic log-scores.
        """
        g, c = self.g, self.cfg
        scores = np.asarray(scores, dtype=np.float32)
        T = scores.shape[0]
        if T == 0:
            raise AsrError("cannot decode an utterance with no frames")
        if scores.ndim != 2 or self.max_pdf >= scores.shape[1]:
            raise AsrError(f"acoustic scores have {scores.shape[-1]} pdfs, fewer than the graph uses")
        if not np.isfinite(scores).all():
            bad = int(np.flatnonzero(~np.isfinite(scores).all(axis=1))[0])
            raise AsrError(f"acoustic scores are NaN or infinite from frame {bad} on (a damaged model or input)")
        status, n_tok, n_link, self._bufs = _search(
            g.arc_start, g.ilabel, g.olabel, self.arc_graph_cost, g.dst, self.final, g.eps_rank, self.has_eps,
            self.tok_of_state, g.start, g.label_pdf, scores, c.acoustic_scale, c.beam, c.max_active, c.lattice_beam,
            c.word_penalty, self._bufs)
        tok_state, tok_frame, _, links, _, _ = self._bufs
        if status >= 0:
            self.tok_of_state[:] = -1  # defensive: the map must be clean for the next call
            raise AsrError(f"all tokens died at frame {status}; the graph has no way forward")
        lat, reached = lattice_from_tokens(tok_state[:n_tok], tok_frame[:n_tok], links[:n_link], self.final,
                                           g.eps_rank, g.label_tid, g.label_pdf, T, c.acoustic_scale,
                                           c.word_penalty, c.lattice_beam)
        return result_from_lattice(lat, c.acoustic_scale, c.word_penalty, reached)


def result_from_lattice(lat: Lattice, acoustic_scale: float, word_penalty: float,
                        reached_final: bool = True) -> DecodeResult:
    """The best path of a lattice at these scales, as a :class:`DecodeResult`."""
    path = lat.best_path(acoustic_scale, word_penalty)
    emitting = path[lat.ilabel[path] > 0]
    pdfs = lat.pdf[emitting] if lat.pdf is not None else np.full(len(emitting), -1, dtype=np.int32)
    return DecodeResult(lat.words(path), lat.ilabel[emitting] - 1, pdfs,
                        lat.path_cost(path, acoustic_scale, word_penalty), reached_final, lat, path)


# -- the compiled search ---------------------------------------------------------------------
# Links are rows of a float64 (n, 6) array: src token, dst token, ilabel, olabel, graph cost,
# acoustic cost. Capacity is reserved before each pass (a token's arcs bound what it can
# create), so the inner loops write straight into the arrays: helpers that take and return
# arrays cost numba a reference-count round trip per call, which was most of the search time.
@numba.njit(cache=True)
def _grow_int(a, n):
    b = np.empty(max(n, 2 * len(a)), dtype=a.dtype)
    b[:len(a)] = a
    return b


@numba.njit(cache=True)
def _grow_rows(a, n):
    b = np.empty((max(n, 2 * a.shape[0]), a.shape[1]), dtype=a.dtype)
    b[:a.shape[0]] = a
    return b


@numba.njit(cache=True, inline="always")
def _heap_push(keys, vals, size, key, val):
    i = size
    keys[i] = key
    vals[i] = val
    while i > 0:
        p = (i - 1) // 2
        if keys[p] <= keys[i]:
            break
        keys[p], keys[i] = keys[i], keys[p]
        vals[p], vals[i] = vals[i], vals[p]
        i = p
    return size + 1


@numba.njit(cache=True, inline="always")
def _heap_pop(keys, vals, size):
    val = vals[0]
    size -= 1
    keys[0] = keys[size]
    vals[0] = vals[size]
    i = 0
    while True:
        l = 2 * i + 1
        if l >= size:
            break
        m = l
        if l + 1 < size and keys[l + 1] < keys[l]:
            m = l + 1
        if keys[i] <= keys[m]:
            break
        keys[m], keys[i] = keys[i], keys[m]
        vals[m], vals[i] = vals[i], vals[m]
        i = m
    return val, size


@numba.njit(cache=True)
def _search(arc_start, ilabel, olabel, arc_gc, dst, final, eps_rank, has_eps, tok_of_state, start, label_pdf, scores,
            acoustic_scale, beam, max_active, lattice_beam, word_penalty, bufs):
    # Per arc, once: the pdf it scores (-1: epsilon) and its graph cost with the word
    # penalty, so the emitting loop makes one lookup of each.
    arc_pdf = np.empty(len(ilabel), dtype=np.int64)
    arc_cost = np.empty(len(ilabel), dtype=np.float64)
    for a in range(len(ilabel)):
        arc_pdf[a] = label_pdf[ilabel[a]] if ilabel[a] != 0 else -1
        arc_cost[a] = arc_gc[a] + (word_penalty if olabel[a] > 0 else 0.0)
    T = scores.shape[0]
    # Work arrays from the last call (grown as needed, handed back for the next one)
    tok_state, tok_frame, tok_cost, links, heap_keys, heap_vals = bufs
    n_link = 0

    # frame 0: the start state and its epsilon closure
    tok_state[0], tok_frame[0], tok_cost[0] = start, 0, 0.0
    n_tok = 1
    tok_of_state[start] = 0
    lo = 0
    cutoff = beam
    for t in range(T + 1):
        # -- epsilon closure of frame t (tokens lo..n_tok), in the graph's epsilon order
        hsize = 0
        if len(heap_keys) < n_tok - lo:
            heap_keys = np.empty(2 * (n_tok - lo), dtype=np.int64)
            heap_vals = np.empty(2 * (n_tok - lo), dtype=np.int64)
        for k in range(lo, n_tok):
            if has_eps[tok_state[k]]:  # most states have no epsilon arcs: nothing to expand
                hsize = _heap_push(heap_keys, heap_vals, hsize, eps_rank[tok_state[k]], k)
        while hsize > 0:
            k, hsize = _heap_pop(heap_keys, heap_vals, hsize)
            cost = tok_cost[k]
            if cost > cutoff:
                continue
            s = tok_state[k]
            a0, a1 = arc_start[s], arc_start[s + 1]
            # room for everything this token's arcs can create
            if n_tok + (a1 - a0) > len(tok_state):
                tok_state = _grow_int(tok_state, n_tok + (a1 - a0))
                tok_frame = _grow_int(tok_frame, n_tok + (a1 - a0))
                tok_cost = _grow_int(tok_cost, n_tok + (a1 - a0))
            if n_link + (a1 - a0) > links.shape[0]:
                links = _grow_rows(links, n_link + (a1 - a0))
            if hsize + (a1 - a0) > len(heap_keys):
                heap_keys = _grow_int(heap_keys, hsize + (a1 - a0))
                heap_vals = _grow_int(heap_vals, hsize + (a1 - a0))
            for a in range(a0, a1):
                if ilabel[a] != 0:
                    continue
                gc = arc_gc[a]
                new = cost + gc + (word_penalty if olabel[a] > 0 else 0.0)
                if new > cutoff:
                    continue
                d = dst[a]
                j = tok_of_state[d]
                if j < 0:
                    j = n_tok
                    tok_state[j], tok_frame[j], tok_cost[j] = d, t, new
                    tok_of_state[d] = j
                    n_tok += 1
                    if has_eps[d]:
                        hsize = _heap_push(heap_keys, heap_vals, hsize, eps_rank[d], j)
                elif new < tok_cost[j]:
                    tok_cost[j] = new
                if new <= tok_cost[j] + lattice_beam:
                    links[n_link, 0], links[n_link, 1], links[n_link, 2] = k, j, 0
                    links[n_link, 3], links[n_link, 4], links[n_link, 5] = olabel[a], gc, 0.0
                    n_link += 1
        hi = n_tok
        for k in range(lo, hi):
            tok_of_state[tok_state[k]] = -1
        if t == T:
            break
        # -- prune frame t: beam around the best, then max_active
        best = np.inf
        for k in range(lo, hi):
            if tok_cost[k] < best:
                best = tok_cost[k]
        if not best < np.inf:
            return t, n_tok, n_link, (tok_state, tok_frame, tok_cost, links, heap_keys, heap_vals)
        cutoff = best + beam
        if hi - lo > max_active:
            c = np.sort(tok_cost[lo:hi])[max_active - 1]
            if c < cutoff:
                cutoff = c
        # -- emitting arcs into frame t + 1; the next cutoff tightens as better tokens appear
        need = 0
        for k in range(lo, hi):
            if tok_cost[k] <= cutoff:
                need += arc_start[tok_state[k] + 1] - arc_start[tok_state[k]]
        if n_tok + need > len(tok_state):
            tok_state = _grow_int(tok_state, n_tok + need)
            tok_frame = _grow_int(tok_frame, n_tok + need)
            tok_cost = _grow_int(tok_cost, n_tok + need)
        if n_link + need > links.shape[0]:
            links = _grow_rows(links, n_link + need)
        # A first estimate of the next frame's cutoff from the best token's arcs (Kaldi's
        # trick): later tokens then skip hopeless arcs before creating anything.
        next_cutoff = np.inf
        frame = scores[t]
        for k in range(lo, hi):
            if tok_cost[k] == best:
                s = tok_state[k]
                for a in range(arc_start[s], arc_start[s + 1]):
                    lab = ilabel[a]
                    if lab != 0:
                        new = (best + arc_gc[a] - acoustic_scale * frame[label_pdf[lab]]
                               + (word_penalty if olabel[a] > 0 else 0.0) + beam)
                        if new < next_cutoff:
                            next_cutoff = new
                break
        for k in range(lo, hi):
            cost = tok_cost[k]
            if cost > cutoff:
                continue
            s = tok_state[k]
            for a in range(arc_start[s], arc_start[s + 1]):
                pdf = arc_pdf[a]
                if pdf < 0:
                    continue  # an epsilon arc
                ac = -frame[pdf]
                new = cost + arc_cost[a] + acoustic_scale * ac
                if new > next_cutoff:
                    continue
                lab = ilabel[a]
                gc = arc_gc[a]
                if new + beam < next_cutoff:
                    next_cutoff = new + beam
                d = dst[a]
                j = tok_of_state[d]
                if j < 0:
                    j = n_tok
                    tok_state[j], tok_frame[j], tok_cost[j] = d, t + 1, new
                    tok_of_state[d] = j
                    n_tok += 1
                elif new < tok_cost[j]:
                    tok_cost[j] = new
                if new <= tok_cost[j] + lattice_beam:
                    links[n_link, 0], links[n_link, 1], links[n_link, 2] = k, j, lab
                    links[n_link, 3], links[n_link, 4], links[n_link, 5] = olabel[a], gc, ac
                    n_link += 1
        if hi == n_tok:
            return t, n_tok, n_link, (tok_state, tok_frame, tok_cost, links, heap_keys, heap_vals)
        lo = hi
        cutoff = next_cutoff
    return -1, n_tok, n_link, (tok_state, tok_frame, tok_cost, links, heap_keys, heap_vals)
