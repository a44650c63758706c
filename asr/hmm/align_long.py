"""Forced alignment of recordings too long for exact Viterbi (an hour of audio, thousands of words).

Exact alignment (:mod:`asr.hmm.align`) holds a (T, S) matrix of emissions and one of
back-pointers: for a 2-hour file and its 20k-word transcript that is ~10^11 cells. Here:

- frames arrive in blocks of ``(Tc, P)`` pdf scores (features are scored block by block);
- only states within ``beam`` of the best survive a frame (Kaldi's align beam), and the
  next frame evaluates only the states reachable from them, so a frame costs its band's
  width, not S;
- back-pointers are kept per frame for the band only, and every block the paths of all
  surviving states are traced back: where they have merged into one state (they do, within
  a second or two of speech), everything before is final and its back-pointers are freed
  (partial traceback, as online decoders do).

Memory is then the graph, the block being scored, the back-pointers since the paths last
merged, and the committed path ((T,) ints), instead of T x S. With a beam wide enough the
result is the exact Viterbi path (tested against :func:`asr.hmm.align.viterbi_batch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numba
import numpy as np

from asr.hmm.align import Alignment, best_predecessor
from asr.hmm.align_graph import AlignGraph
from asr.utils import AsrError

NEG_INF = float("-inf")
_DONE, _TOO_WIDE, _FULL = 0, 1, 2  # why _band_block returned (compiled in as constants)


@dataclass
class _Block:
    """Back-pointers of frames ``t0 .. t0 + len(lows) - 1`` (each frame's band only)."""

    t0: int
    lows: np.ndarray    # (Tc,) first state of each frame's band
    offs: np.ndarray    # (Tc + 1,) offsets of each frame's band into ``slots``
    slots: np.ndarray   # (sum of widths,) predecessor slot k of each band state


@dataclass
class StreamingViterbi:
    """Beam-pruned Viterbi over one :class:`AlignGraph`, fed pdf scores block by block.

    Args:
        graph: the utterance's training graph (S states).
        arc: (S, K) arc log-scores (transition and graph), -inf where there is no arc.
        final: (S,) end-of-utterance log-scores.
        state_col: (S,) column of each state's pdf in the score blocks.
        state_bonus: (S,) added to each state's emission (boosted silence), already scaled.
        beam: states further than this below the frame's best are dropped.
        max_width: a frame's band (highest minus lowest live state) may not exceed this.
    """

    graph: AlignGraph
    arc: np.ndarray
    final: np.ndarray
    state_col: np.ndarray
    state_bonus: np.ndarray
    beam: float = 30.0
    max_width: int = 200_000
    frames: int = field(default=0, init=False)  # frames consumed so far
    _delta: np.ndarray = field(init=False, repr=False)
    _blocks: list[_Block] = field(default_factory=list, init=False, repr=False)
    _committed_states: list[np.ndarray] = field(default_factory=list, init=False, repr=False)
    _committed_ks: list[np.ndarray] = field(default_factory=list, init=False, repr=False)
    _commit_end: int = field(default=0, init=False)  # frames [0, commit_end) are final
    peak_backpointers: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        g = self.graph
        S = g.num_states
        self._pred = g.pred.astype(np.int64)
        self._arc = np.asarray(self.arc, dtype=np.float64)
        self._col = np.asarray(self.state_col, dtype=np.int64)
        self._bonus = np.asarray(self.state_bonus, dtype=np.float64)
        self._succ_lo, self._succ_hi = _successor_range(self._pred)
        self._delta = np.full(S, NEG_INF)
        self._scratch = np.full(S, NEG_INF)
        self._lo, self._hi = S, -1

    def feed(self, scores: np.ndarray) -> None:
        """Advance over one block of (Tc, P) scaled pdf scores."""
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        if len(scores) == 0:
            return
        start = 0
        if self.frames == 0:  # the first frame enters through the graph's initial states
            self._delta[:] = self.graph.init_graph + scores[0, self._col] + self._bonus
            self._lo, self._hi = _prune(self._delta, 0, len(self._delta) - 1, self.beam)
            start = 1
            self.frames = 1
            self._check_alive()
        while start < len(scores):
            block = scores[start:]
            n = len(block)
            # room for the band's back-pointers: grows when it has to, at least one frame's worth
            width = self._hi - self._lo + 1
            cap = min(max(n * 2 * (width + 64), 1 << 16), 1 << 26)
            cap = max(cap, min(self.max_width, len(self._delta)))
            lows = np.zeros(n, dtype=np.int64)
            offs = np.zeros(n + 1, dtype=np.int64)
            slots = np.empty(cap, dtype=np.int8)
            lo, hi, done, status = _band_block(self._pred, self._arc, self._col, self._bonus, self._succ_lo,
                                               self._succ_hi, block, self._delta, self._scratch, self._lo,
                                               self._hi, self.beam, self.max_width, lows, offs, slots)
            if done:
                self._blocks.append(_Block(self.frames, lows[:done].copy(), offs[:done + 1].copy(),
                                          slots[:offs[done]].copy()))
            self.frames += done
            start += done
            self._lo, self._hi = lo, hi
            self._check_alive()
            if status == _TOO_WIDE:
                raise AsrError(f"alignment band wider than {self.max_width} states at frame {self.frames}: "
                               "lower the align beam")
        self._commit_merged()

    def _check_alive(self) -> None:
        if self._hi < 0:
            raise AsrError(f"no path within the beam survives frame {self.frames} (audio and transcript do not "
                           "match there, or the beam is too narrow)")

    def _commit_merged(self) -> None:
        """Trace all surviving states back; where they have merged, make the path final."""
        band = np.arange(self._lo, self._hi + 1)
        states = band[np.isfinite(self._delta[band])]
        for b in range(len(self._blocks) - 1, -1, -1):
            blk = self._blocks[b]
            states, merged_at, s = _trace_set(states, blk.lows, blk.offs, blk.slots, self._pred, blk.t0,
                                              max(self._commit_end - blk.t0 + 1, 0))
            if merged_at >= 0:
                self._commit_path(s, merged_at)
                return
            if blk.t0 <= self._commit_end:
                return

    def _commit_path(self, state: int, frame: int) -> None:
        """Make final frames [commit_end, frame], whose path ends in ``state`` at ``frame``."""
        states, ks = self._trace_path(state, frame)
        self._committed_states.append(states)
        self._committed_ks.append(ks)
        self._commit_end = frame + 1
        # back-pointers into frames <= frame are no longer needed
        self._blocks = [b for b in self._blocks if b.t0 + len(b.lows) - 1 > frame]
        self.peak_backpointers = max(self.peak_backpointers, self.backpointers())

    def _trace_path(self, state: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """States and predecessor slots of frames [commit_end, frame] on the path to ``state``."""
        n = frame - self._commit_end + 1
        states = np.zeros(n, dtype=np.int64)
        ks = np.zeros(n, dtype=np.int64)
        cur = state
        for blk in reversed(self._blocks):
            if blk.t0 > frame:
                continue
            cur = _trace_one(cur, blk.lows, blk.offs, blk.slots, self._pred, blk.t0, frame, self._commit_end,
                             states, ks)
            if blk.t0 <= self._commit_end:
                break
        if self._commit_end == 0:
            states[0] = cur  # frame 0 has no back-pointer
        return states, ks

    def backpointers(self) -> int:
        """Back-pointers held now (one byte each)."""
        return int(sum(len(b.slots) for b in self._blocks))

    def finish(self) -> Alignment | None:
        """The best path ending in a final state, or None when no surviving state may end."""
        self.peak_backpointers = max(self.peak_backpointers, self.backpointers())
        if self.frames == 0:
            return None
        end = self._delta + self.final
        last = int(np.argmax(end))
        if not np.isfinite(end[last]):
            return None
        states, ks = self._trace_path(last, self.frames - 1)
        all_states = np.concatenate(self._committed_states + [states])
        all_ks = np.concatenate(self._committed_ks + [ks])
        g = self.graph
        T = len(all_states)
        tids = np.full(T + 1, -1, dtype=np.int64)
        tids[1:T] = g.pred_tid[all_states[1:], all_ks[1:]]
        tids[T] = g.final_tid[all_states[-1]]
        return Alignment(all_states, tids, float(end[last]))


def viterbi_streaming(graph: AlignGraph, blocks: Iterable[np.ndarray], arc: np.ndarray, final: np.ndarray,
                      state_col: np.ndarray, state_bonus: np.ndarray | None = None, beam: float = 30.0
                      ) -> tuple[Alignment | None, int]:
    """Align one graph to a stream of (Tc, P) pdf-score blocks; returns the alignment (None
    when no path ends in a final state) and the peak number of back-pointers held."""
    sv = StreamingViterbi(graph, arc, final, state_col,
                          np.zeros(graph.num_states) if state_bonus is None else state_bonus, beam)
    for block in blocks:
        sv.feed(block)
    return sv.finish(), sv.peak_backpointers


def _successor_range(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S,) lowest and highest state each state has an arc into (its own index at least)."""
    S = len(pred)
    lo = np.arange(S)
    hi = np.arange(S)
    dst = np.repeat(np.arange(S), pred.shape[1])
    src = pred.reshape(-1)
    ok = src >= 0
    np.minimum.at(lo, src[ok], dst[ok])
    np.maximum.at(hi, src[ok], dst[ok])
    return lo, hi


@numba.njit(cache=True)
def _prune(delta, lo, hi, beam):  # pragma: no cover - compiled
    """Drop states of delta[lo..hi] below best - beam; returns the surviving band (hi < 0: none)."""
    best = -np.inf
    for j in range(lo, hi + 1):
        if delta[j] > best:
            best = delta[j]
    nlo, nhi = len(delta), -1
    if best == -np.inf:
        return nlo, nhi
    thr = best - beam
    for j in range(lo, hi + 1):
        if delta[j] < thr:
            delta[j] = -np.inf
        elif delta[j] > -np.inf:
            if j < nlo:
                nlo = j
            nhi = j
    return nlo, nhi


@numba.njit(cache=True)
def _band_block(pred, arc, col, bonus, succ_lo, succ_hi, emit, delta, scratch, lo, hi, beam, max_width,
                lows, offs, slots):  # pragma: no cover - compiled
    """Advance delta (-inf outside [lo, hi]) over the frames of ``emit``, recording each frame's
    band and predecessor slots. Returns (band lo, band hi (< 0: every path died), frames done,
    why it stopped: _DONE (all frames, or every path died), _TOO_WIDE, _FULL (slots used up))."""
    n = emit.shape[0]
    S = len(delta)
    for t in range(n):
        nlo, nhi = S, -1
        for p in range(lo, hi + 1):
            if delta[p] > -np.inf:
                if succ_lo[p] < nlo:
                    nlo = succ_lo[p]
                if succ_hi[p] > nhi:
                    nhi = succ_hi[p]
        width = nhi - nlo + 1
        if width > max_width:
            return lo, hi, t, _TOO_WIDE
        base = offs[t]
        if base + width > len(slots):
            return lo, hi, t, _FULL
        for j in range(nlo, nhi + 1):
            best, arg = best_predecessor(pred, arc, delta, j)
            if best > -np.inf:
                best += emit[t, col[j]] + bonus[j]
            scratch[j] = best
            slots[base + j - nlo] = arg
        lows[t] = nlo
        offs[t + 1] = base + width
        for p in range(lo, hi + 1):
            delta[p] = -np.inf
        for j in range(nlo, nhi + 1):
            delta[j] = scratch[j]
            scratch[j] = -np.inf
        lo, hi = _prune(delta, nlo, nhi, beam)
        if hi < 0:
            return lo, hi, t + 1, _DONE
    return lo, hi, n, _DONE


@numba.njit(cache=True)
def _trace_set(states, lows, offs, slots, pred, t0, stop):  # pragma: no cover - compiled
    """Map a set of states at the block's last frame back, frame by frame, to local frame
    ``stop``. Returns (the set there, the absolute frame where it first became one state or -1,
    that state)."""
    cur = states.copy()
    for i in range(len(lows) - 1, stop - 1, -1):
        nxt = np.empty(len(cur), dtype=np.int64)
        for m in range(len(cur)):
            j = cur[m]
            nxt[m] = pred[j, slots[offs[i] + j - lows[i]]]
        cur = np.unique(nxt)
        if len(cur) == 1:
            return cur, t0 + i - 1, cur[0]
    return cur, -1, -1


@numba.njit(cache=True)
def _trace_one(state, lows, offs, slots, pred, t0, frame, commit_end, states, ks):  # pragma: no cover
    """Follow one state back from ``frame`` through this block's frames down to ``commit_end``,
    filling states/ks (indexed from commit_end). Returns the state at the block's first frame
    reached (or at commit_end)."""
    cur = state
    top = min(frame, t0 + len(lows) - 1)
    for t in range(top, max(t0, commit_end) - 1, -1):
        states[t - commit_end] = cur
        if t == 0:
            break
        i = t - t0
        k = slots[offs[i] + cur - lows[i]]
        ks[t - commit_end] = k
        if t == commit_end:
            break
        cur = pred[cur, k]
    return cur
