"""Viterbi beam search over a static :class:`DecodingGraph`.

The decoder only sees per-frame acoustic log-scores ``(T, num_pdfs)``: GMM
log-likelihoods and DNN scaled log-likelihoods (log posterior - log prior) go through
the same code.

The token set of a frame is a dense cost vector over all graph states (inf = no token)
and arcs are stored by destination, so one frame is a handful of numpy operations:
gather the predecessors' costs, add arc and acoustic costs, keep the best (and its
back-pointer) per state, prune everything outside ``beam`` of the best (and beyond
``max_active``), then follow epsilon arcs level by level (the graph has no epsilon
cycles). Arcs into emitting states (in-degree a few) are padded into a matrix; arcs into
non-emitting states (word entries and context nodes with in-degrees in the hundreds)
are kept as sorted segments and reduced with ``minimum.reduceat``, so their cost is the
number of arcs, not states x largest in-degree. For the task-sized graphs this project builds
(up to ~1e5 states) this beats a sparse token list, whose cost is dominated by numpy
call overhead per frame rather than by the number of live tokens.

Cost of an arc = transition_scale * -log p(tid) + graph cost + lm_weight * LM cost
+ word_penalty (on word arcs); acoustic cost = -acoustic_scale * log-score.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from asr.graph.compile import DecodingGraph
from asr.utils import AsrError, Config

log = logging.getLogger(__name__)


@dataclass
class DecoderConfig(Config):
    """Search options (Kaldi's gmm-latgen-faster names and defaults)."""

    beam: float = 13.0
    max_active: int = 7000
    acoustic_scale: float = 0.1
    transition_scale: float = 0.1
    lm_weight: float = 1.0
    word_penalty: float = 0.0

    def __post_init__(self) -> None:
        # Options come from flags, recipe TOML and model.json alike: check them once here.
        for name in ("beam", "acoustic_scale", "transition_scale", "lm_weight", "word_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise AsrError(f"decoder option {name} must be a finite number, got {value!r}")
        if self.beam <= 0 or self.acoustic_scale <= 0:
            raise AsrError(f"decoder beam and acoustic_scale must be > 0, got {self.beam} and {self.acoustic_scale}")
        if isinstance(self.max_active, bool) or not isinstance(self.max_active, int) or self.max_active < 1:
            raise AsrError(f"decoder option max_active must be an integer >= 1, got {self.max_active!r}")


@dataclass
class WordHyp:
    word: int
    start: int  # first frame
    end: int  # last frame (inclusive)


@dataclass
class DecodeResult:
    """Best path: words with frame spans, the emitting state per frame, and its cost."""

    words: list[WordHyp]
    states: np.ndarray
    cost: float
    reached_final: bool


def _in_arc_segments(dst: np.ndarray, src: np.ndarray, cost: np.ndarray, word: np.ndarray,
                     targets: np.ndarray, dummy: int) -> dict[str, np.ndarray]:
    """Incoming arcs of ``targets`` sorted by destination row (every target has at least one)."""
    pos = np.full(dummy + 1, -1, dtype=np.int64)
    pos[targets] = np.arange(len(targets))
    m = pos[dst] >= 0
    order = np.argsort(pos[dst[m]], kind="stable")
    row = pos[dst[m]][order]
    starts = np.searchsorted(row, np.arange(len(targets)))
    if len(targets) and np.any(np.diff(np.append(starts, len(row))) == 0):
        raise AsrError("decoding graph has a non-emitting state without incoming arcs at a non-zero level")
    return {"states": targets, "row": row, "starts": starts, "src": src[m][order], "cost": cost[m][order],
            "word": word[m][order]}


def _in_arcs(dst: np.ndarray, src: np.ndarray, cost: np.ndarray, word: np.ndarray, targets: np.ndarray,
             dummy: int) -> dict[str, np.ndarray]:
    """Incoming arcs of ``targets`` padded into (len(targets), K) matrices (dummy source: no arc)."""
    pos = np.full(dummy + 1, -1, dtype=np.int64)
    pos[targets] = np.arange(len(targets))
    m = pos[dst] >= 0
    dst, src, cost, word = dst[m], src[m], cost[m], word[m]
    order = np.argsort(pos[dst], kind="stable")
    dst, src, cost, word = dst[order], src[order], cost[order], word[order]
    row = pos[dst]
    counts = np.bincount(row, minlength=len(targets))
    K = max(int(counts.max()) if len(counts) else 1, 1)
    col = np.arange(len(row)) - (np.cumsum(counts) - counts)[row]
    out = {"states": targets, "src": np.full((len(targets), K), dummy, dtype=np.int64),
           "cost": np.full((len(targets), K), np.inf), "word": np.zeros((len(targets), K), dtype=np.int64)}
    out["src"][row, col] = src
    out["cost"][row, col] = cost
    out["word"][row, col] = word
    return out


class ViterbiDecoder:
    """Decode utterances against one graph with fixed options."""

    def __init__(self, graph: DecodingGraph, trans_log_probs: np.ndarray, cfg: DecoderConfig | None = None):
        self.g = graph
        self.cfg = c = cfg or DecoderConfig()
        tid_cost = np.where(graph.arc_tid >= 0, -trans_log_probs[np.maximum(graph.arc_tid, 0)], 0.0)
        cost = (c.transition_scale * tid_cost + graph.arc_graph_cost + c.lm_weight * graph.arc_lm_cost
                + c.word_penalty * (graph.arc_word > 0))
        N = graph.num_states
        self.dummy = N  # cost vectors have one extra, always-inf entry that padded arcs read
        emitting = graph.node_pdf >= 0
        self.level = self._levels(emitting)
        self.emit = _in_arcs(graph.arc_dst, graph.arc_src, cost, graph.arc_word, np.flatnonzero(emitting), N)
        self.emit_pdf = graph.node_pdf[self.emit["states"]]
        self.emit_src_cols = np.ascontiguousarray(self.emit["src"].T)
        self.emit_cost_cols = np.ascontiguousarray(self.emit["cost"].T)
        self.levels = [_in_arc_segments(graph.arc_dst, graph.arc_src, cost, graph.arc_word,
                                         np.flatnonzero(self.level == lv), N)
                       for lv in range(1, int(self.level.max()) + 1)]
        # Row of each state in its in-arc matrix, for the traceback.
        self.emit_pos = np.full(N, -1, dtype=np.int64)
        self.emit_pos[self.emit["states"]] = np.arange(len(self.emit["states"]))
        self.level_pos = np.full(N, -1, dtype=np.int64)
        for lv in self.levels:
            self.level_pos[lv["states"]] = np.arange(len(lv["states"]))

    def _levels(self, emitting: np.ndarray) -> np.ndarray:
        """Longest epsilon-path depth of each state (emitting states: 0); fails on epsilon cycles."""
        g = self.g
        eps = ~emitting[g.arc_dst]
        src, dst = g.arc_src[eps], g.arc_dst[eps]
        level = np.zeros(g.num_states, dtype=np.int64)
        for _ in range(g.num_states + 1):
            new = level.copy()
            np.maximum.at(new, dst, level[src] + 1)
            if np.array_equal(new, level):
                return level
            level = new
        raise AsrError("decoding graph has an epsilon cycle")

    def _closure(self, cost: np.ndarray, threshold: float) -> list[np.ndarray]:
        """Follow epsilon arcs in place; returns the back-pointer arc chosen per level (-1: kept)."""
        bps = []
        for lv in self.levels:
            cand = cost[lv["src"]] + lv["cost"]
            best = np.minimum.reduceat(cand, lv["starts"])
            winners = np.flatnonzero(cand == best[lv["row"]])
            k = np.empty(len(best), dtype=np.int64)
            k[lv["row"][winners[::-1]]] = winners[::-1]  # the first best arc of each row
            old = cost[lv["states"]]
            keep_old = old <= best
            best = np.where(keep_old, old, best)
            best[best > threshold] = np.inf
            cost[lv["states"]] = best
            bps.append(np.where(keep_old, -1, k).astype(np.int32))
        return bps

    def decode(self, scores: np.ndarray) -> DecodeResult:
        """Best path for one utterance.

        Args:
            scores: (T, num_pdfs) acoustic log-scores.
        """
        g, c = self.g, self.cfg
        scores = np.asarray(scores, dtype=np.float64)
        T = scores.shape[0]
        if T == 0:
            raise AsrError("cannot decode an utterance with no frames")
        em = self.emit
        # Column j of the padded in-arc matrix, contiguous: a loop over K columns with
        # element-wise minimum is several times faster than argmin over a (N, K) matrix.
        src_cols, cost_cols = self.emit_src_cols, self.emit_cost_cols
        if not np.isfinite(scores).all():
            bad = int(np.flatnonzero(~np.isfinite(scores).all(axis=1))[0])
            raise AsrError(f"acoustic scores are NaN or infinite from frame {bad} on (a damaged model or input)")
        acoustic = -c.acoustic_scale * scores[:, self.emit_pdf]
        cost = np.full(g.num_states + 1, np.inf)
        cost[g.start] = 0.0
        level_bps = [self._closure(cost, np.inf)]
        emit_bps = []
        offset = 0.0  # costs are renormalised each frame; offset keeps the true total
        for t in range(T):
            new = cost[src_cols[0]] + cost_cols[0]
            k = np.zeros(len(new), dtype=np.int16)
            for j in range(1, len(src_cols)):
                cand = cost[src_cols[j]] + cost_cols[j]
                better = cand < new
                k[better] = j
                np.minimum(new, cand, out=new)
            new += acoustic[t]
            best = new.min()
            if not np.isfinite(best):
                raise AsrError(f"all tokens died at frame {t}; the graph has no way forward")
            new -= best
            offset += best
            new[new > c.beam] = np.inf
            live = np.flatnonzero(np.isfinite(new))
            if len(live) > c.max_active:
                cut = np.partition(new[live], c.max_active)[c.max_active]
                new[new >= cut] = np.inf
            cost = np.full(g.num_states + 1, np.inf)
            cost[em["states"]] = new
            emit_bps.append(k)
            level_bps.append(self._closure(cost, c.beam))
        final = cost[:-1] + g.final_cost
        reached = bool(np.isfinite(final).any())
        end = int(np.argmin(final)) if reached else int(np.argmin(cost[:-1]))
        total = float((final if reached else cost[:-1])[end]) + offset
        return self._traceback(end, T, total, reached, emit_bps, level_bps)

    def _traceback(self, state: int, T: int, cost: float, reached: bool, emit_bps, level_bps) -> DecodeResult:
        g, em = self.g, self.emit
        emit_pos, level_pos = self.emit_pos, self.level_pos
        states = np.full(T, -1, dtype=np.int64)
        starts: list[tuple[int, int]] = []
        t = T - 1  # frame of the current state's token
        while True:
            if g.node_pdf[state] >= 0:
                r = emit_pos[state]
                states[t] = state
                state = int(em["src"][r, emit_bps[t][r]])
                t -= 1
                continue
            lv_idx = int(self.level[state]) - 1
            if lv_idx < 0:
                break  # a level-0 non-emitting state: only the start state can be one
            r = level_pos[state]
            k = int(level_bps[t + 1][lv_idx][r])
            if k < 0:
                break  # the token began here: the start state
            w = int(self.levels[lv_idx]["word"][k])
            if w > 0:
                starts.append((w, t + 1))
            state = int(self.levels[lv_idx]["src"][k])
        starts.reverse()
        words = []
        for n, (w, s) in enumerate(starts):
            e = (starts[n + 1][1] if n + 1 < len(starts) else T) - 1
            while e > s and g.node_word[states[e]] != w:
                e -= 1
            words.append(WordHyp(w, s, e))
        return DecodeResult(words, states, cost, reached)
