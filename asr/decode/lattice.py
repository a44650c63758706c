"""State-level lattices: what the decoder saw within the lattice beam, and what follows from it.

A :class:`Lattice` is Kaldi's (non-compact) ``Lattice``: an acyclic weighted transducer
whose input labels are transition ids + 1 (0 = epsilon, consumes no frame), output labels
word ids, and whose weights keep the graph cost (LM, pronunciation, transitions) and the
acoustic cost (-log-score, not scaled) apart. Nodes are numbered in topological order
(node 0 is the start) and arcs are sorted by source, so every dynamic programme below is
one pass over the arcs.

From a lattice, without decoding again:
    * the best path at any LMWT (= 1 / acoustic scale) and word insertion penalty;
    * arc posteriors (forward-backward in the log semiring) and word confidences;
    * n-best word sequences (OpenFst: remove epsilons, determinize, n shortest paths).

Two archive formats, chosen by the file name (:func:`write_lattices`, :func:`iter_lattices`;
``asr lattice-copy`` converts between them):

* ``*.npz`` (decode dirs' ``lat.npz``): a zip of ``.npy`` arrays, read with
  ``np.load(allow_pickle=False)``, the utterances' lattices concatenated (U utterances, N
  nodes, M arcs in all):
  ``utts`` (U,) str, sorted; ``num_nodes``, ``num_arcs`` (U,) int64;
  ``final`` (N,) float32 (inf: not final); ``src_step`` (M,) int32, ``src`` minus the previous
  arc's ``src`` in the same utterance (the first arc's: its ``src``); ``dst_minus_src`` (M,)
  int32; ``ilabel``, ``olabel`` (M,) int32; ``graph_cost``, ``acoustic_cost`` (M,) float32.
  Node numbers are per utterance, in topological order. Deltas make it compress to half
  the text's size, and it writes 7x and reads 70x faster than text.
* anything else (``*.gz`` gzipped): Kaldi's text format, ``lattice-copy
  --write-compact=false ark,t:``: the utterance id on a line, then one line per arc
  ``src dst ilabel olabel graph_cost,acoustic_cost`` and per final node ``node graph,acoustic``,
  then an empty line. Kaldi's tools read it as a lattice archive.

Costs are float32 on disk, as Kaldi keeps them (the text prints 6 digits).
"""

from __future__ import annotations

import contextlib
import gzip
import heapq
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from asr.utils import AsrError, atomic_open


@dataclass
class Lattice:
    """Attributes (n nodes, m arcs):
        final: (n,) float64 graph cost of ending at a node (+inf: not final).
        src, dst: (m,) int32 arc endpoints (src < dst; sorted by src).
        ilabel: (m,) int32 transition id + 1 (0: epsilon).
        olabel: (m,) int32 word id (0: none).
        graph_cost, acoustic_cost: (m,) float64.
        pdf: (m,) int32 pdf consumed by each arc (-1: epsilon or unknown); only the
            decoder's lattices carry it.
    """

    final: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    ilabel: np.ndarray
    olabel: np.ndarray
    graph_cost: np.ndarray
    acoustic_cost: np.ndarray
    pdf: np.ndarray | None = None

    @property
    def num_nodes(self) -> int:
        return len(self.final)

    @property
    def num_arcs(self) -> int:
        return len(self.src)

    def pruned(self, acoustic_scale: float, beam: float, word_penalty: float = 0.0) -> "Lattice":
        """The arcs and nodes on paths within ``beam`` of the best (Kaldi's lattice-prune)."""
        cost = self.arc_costs(acoustic_scale, word_penalty)
        keep_arc, keep_node = _prune(self.num_nodes, self.src, self.dst, cost, self.final, beam)
        keep_node[0] = True
        new_id = np.cumsum(keep_node) - 1  # kept nodes keep their (topological) order
        k = np.flatnonzero(keep_arc)
        return Lattice(self.final[keep_node], new_id[self.src[k]].astype(np.int32),
                       new_id[self.dst[k]].astype(np.int32), self.ilabel[k], self.olabel[k], self.graph_cost[k],
                       self.acoustic_cost[k], None if self.pdf is None else self.pdf[k])

    def arc_costs(self, acoustic_scale: float, word_penalty: float) -> np.ndarray:
        return self.graph_cost + acoustic_scale * self.acoustic_cost + word_penalty * (self.olabel > 0)

    def best_path(self, acoustic_scale: float, word_penalty: float = 0.0) -> np.ndarray:
        """Arc indices of the cheapest start-to-final path at these scales."""
        if self.num_arcs == 0 and not np.isfinite(self.final[0]):
            raise AsrError("empty lattice: no path reaches a final node")
        path = _best_path(self.num_nodes, self.src, self.dst, self.arc_costs(acoustic_scale, word_penalty),
                          self.final)
        if len(path) == 1 and path[0] < 0:
            raise AsrError("empty lattice: no path reaches a final node")
        return path

    def path_cost(self, path: np.ndarray, acoustic_scale: float, word_penalty: float = 0.0) -> float:
        c = self.arc_costs(acoustic_scale, word_penalty)
        end = self.dst[path[-1]] if len(path) else 0
        return float(c[path].sum() + self.final[end])

    def best_words_grid(self, settings: list[tuple[float, float]]) -> list[list[int]]:
        """The best path's word ids at each (acoustic scale, word penalty) of a grid, in one
        compiled pass per setting (the LMWT x penalty sweep, without building results)."""
        if self.num_arcs == 0 and not np.isfinite(self.final[0]):
            raise AsrError("empty lattice: no path reaches a final node")
        out = _best_words_grid(self.num_nodes, self.src, self.dst, self.graph_cost, self.acoustic_cost, self.olabel,
                               self.final, np.array([a for a, _ in settings], dtype=np.float64),
                               np.array([p for _, p in settings], dtype=np.float64))
        return [[int(w) for w in row if w >= 0] for row in out]

    def words(self, path: np.ndarray) -> list[int]:
        return [int(w) for w in self.olabel[path] if w > 0]

    def arc_posteriors(self, acoustic_scale: float, word_penalty: float = 0.0) -> np.ndarray:
        """(m,) posterior probability of each arc (Kaldi's lattice-arc-post, scale 1/LMWT)."""
        return _posteriors(self.num_nodes, self.src, self.dst, self.arc_costs(acoustic_scale, word_penalty),
                           self.final)

    def arc_frames(self) -> np.ndarray:
        """(m,) frame each arc starts at (the number of frames consumed before it)."""
        return _node_frames(self.num_nodes, self.src, self.dst, self.ilabel)[self.src]

    def nbest(self, n: int, acoustic_scale: float, word_penalty: float = 0.0) -> list[tuple[list[int], float]]:
        """The ``n`` best distinct word sequences with their costs, best first (see :meth:`nbest_paths`)."""
        return [(words, cost) for words, cost, _, _ in self.nbest_paths(n, acoustic_scale, word_penalty)]

    def nbest_paths(self, n: int, acoustic_scale: float, word_penalty: float = 0.0
                    ) -> list[tuple[list[int], float, float, float]]:
        """The ``n`` best distinct word sequences, best first, as (word ids, total cost, graph
        cost, acoustic cost) of each one's best path (total = graph + acoustic_scale *
        acoustic + word_penalty * words), so that an n-best list can be rescored at other
        scales or with another LM.

        A* over (node, words so far) with the exact cost-to-end of each node as the
        heuristic, paths with the same words into the same node recombined: only
        hypotheses that can still end among the ``n`` best are ever expanded. (Projecting
        the state-level lattice on words and determinizing it instead costs time
        quadratic in the frames between words.)
        """
        if n < 1:
            raise AsrError(f"n-best needs n >= 1, got {n}")
        cost = self.arc_costs(acoustic_scale, word_penalty)
        beta = _backward(self.num_nodes, self.src, self.dst, cost, self.final)
        if not np.isfinite(beta[0]):
            raise AsrError("empty lattice: no path reaches a final node")
        first = np.searchsorted(self.src, np.arange(self.num_nodes + 1))
        src_cost, dst, olabel, final = cost.tolist(), self.dst.tolist(), self.olabel.tolist(), self.final.tolist()
        graph = self.graph_cost.tolist()
        beta_l = beta.tolist()
        best_g: dict[tuple[int, tuple[int, ...]], float] = {(0, ()): 0.0}
        # heap entries: (f = g + beta, tie, node, words, complete, graph cost so far)
        heap: list[tuple[float, int, int, tuple[int, ...], bool, float]] = [(beta_l[0], 0, 0, (), False, 0.0)]
        out: list[tuple[list[int], float, float, float]] = []
        done: set[tuple[int, ...]] = set()
        tick = 0
        while heap and len(out) < n:
            f, _, node, words, complete, gr = heapq.heappop(heap)
            if complete:
                if words not in done:
                    done.add(words)
                    am = (f - gr - word_penalty * len(words)) / acoustic_scale if acoustic_scale else 0.0
                    out.append((list(words), f, gr, am))
                continue
            g = f - beta_l[node]
            if g > best_g.get((node, words), math.inf) + 1e-9:
                continue  # a better path with the same words reached this node first
            if final[node] < math.inf and words not in done:
                tick += 1
                heapq.heappush(heap, (g + final[node], tick, node, words, True, gr + final[node]))
            for a in range(first[node], first[node + 1]):
                d = dst[a]
                if beta_l[d] == math.inf:
                    continue
                nw = words + (olabel[a],) if olabel[a] > 0 else words
                ng = g + src_cost[a]
                if ng < best_g.get((d, nw), math.inf) - 1e-12:
                    best_g[(d, nw)] = ng
                    tick += 1
                    heapq.heappush(heap, (ng + beta_l[d], tick, d, nw, False, gr + graph[a]))
        return out

    def to_text(self, utt: str) -> str:
        # One C-level %-format of all arcs (labels are exact in float64 and print with %d).
        values = np.column_stack([self.src, self.dst, self.ilabel, self.olabel, self.graph_cost,
                                  self.acoustic_cost]).ravel().tolist()
        body = ("%d %d %d %d %.6g,%.6g\n" * self.num_arcs) % tuple(values)
        finals = "".join(f"{s} {self.final[s]:.6g},0\n" for s in np.flatnonzero(np.isfinite(self.final)))
        return f"{utt}\n{body}{finals}\n"


def write_lattices(path: str | Path, lattices: dict[str, Lattice]) -> None:
    """A lattice archive, utterances in sorted order, written atomically: the binary
    format for ``*.npz``, else Kaldi text (gzipped for ``*.gz``)."""
    path = Path(path)
    if path.suffix == ".npz":
        _write_npz(path, lattices)
        return
    opener = (lambda raw: gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=1)) if path.suffix == ".gz" \
        else (lambda raw: contextlib.nullcontext(raw))  # gzip level 9 costs 8x the time for 20% less
    with atomic_open(path, "wb") as raw, opener(raw) as f:
        for u in sorted(lattices):
            f.write(lattices[u].to_text(u).encode("utf-8"))


def _write_npz(path: Path, lattices: dict[str, Lattice]) -> None:
    utts = sorted(lattices)
    lats = [lattices[u] for u in utts]

    def cat(column, dtype) -> np.ndarray:
        return np.concatenate([np.asarray(column(lat), dtype=dtype) for lat in lats]) if lats \
            else np.zeros(0, dtype=dtype)

    arrays = {
        "utts": np.array(utts, dtype=str),
        "num_nodes": np.array([lat.num_nodes for lat in lats], dtype=np.int64),
        "num_arcs": np.array([lat.num_arcs for lat in lats], dtype=np.int64),
        "final": cat(lambda lat: lat.final, np.float32),
        "src_step": cat(lambda lat: np.diff(lat.src, prepend=0), np.int32),
        "dst_minus_src": cat(lambda lat: lat.dst.astype(np.int64) - lat.src, np.int32),
        "ilabel": cat(lambda lat: lat.ilabel, np.int32),
        "olabel": cat(lambda lat: lat.olabel, np.int32),
        "graph_cost": cat(lambda lat: lat.graph_cost, np.float32),
        "acoustic_cost": cat(lambda lat: lat.acoustic_cost, np.float32),
    }
    # zlib level 1: level 6 writes 2x slower for a quarter less
    with atomic_open(path, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, a in arrays.items():
            with z.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, a, allow_pickle=False)


def read_lattices(path: str | Path) -> dict[str, Lattice]:
    """Read an archive written by :func:`write_lattices` (or by Kaldi's ``lattice-copy ark,t:``,
    gzipped or not). Errors name the file, utterance and line."""
    return dict(iter_lattices(path))


def iter_lattices(path: str | Path):
    """Yield ``(utt, Lattice)`` of an archive one at a time (a text archive holds one
    lattice's text in memory; a binary one its arrays, 18 bytes per arc)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            binary = f.read(4) == b"PK\x03\x04"
    except OSError as e:
        raise AsrError(f"{path}: not a readable lattice archive ({e})") from None
    yield from (_iter_npz(path) if binary else _iter_text(path))


_NPZ_FIELDS = ("utts", "num_nodes", "num_arcs", "final", "src_step", "dst_minus_src", "ilabel", "olabel",
               "graph_cost", "acoustic_cost")


def _iter_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in _NPZ_FIELDS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise AsrError(f"{path}: not a binary lattice archive ({e})") from None
    node_end, arc_end = np.cumsum(a["num_nodes"]), np.cumsum(a["num_arcs"])
    if (len(a["utts"]) != len(node_end) or (len(node_end) and (node_end[-1] != len(a["final"])
                                                               or arc_end[-1] != len(a["ilabel"])))):
        raise AsrError(f"{path}: the lattice archive's arrays disagree in length (a damaged file)")
    for i, utt in enumerate(a["utts"].tolist()):
        n0, n1 = node_end[i] - a["num_nodes"][i], node_end[i]
        m0, m1 = arc_end[i] - a["num_arcs"][i], arc_end[i]
        src = np.cumsum(a["src_step"][m0:m1], dtype=np.int64)
        dst = src + a["dst_minus_src"][m0:m1]
        n = n1 - n0
        if len(src) and (src[0] < 0 or np.any(np.diff(src) < 0) or np.any(dst <= src) or dst.max() >= n):
            raise AsrError(f"{path}: {utt}: arcs out of order or outside the lattice's {n} nodes (a damaged file)")
        yield utt, Lattice(a["final"][n0:n1].astype(np.float64), src.astype(np.int32), dst.astype(np.int32),
                           a["ilabel"][m0:m1], a["olabel"][m0:m1], a["graph_cost"][m0:m1].astype(np.float64),
                           a["acoustic_cost"][m0:m1].astype(np.float64))


def _iter_text(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    utt, arcs, finals = None, [], {}
    no, line = 0, ""
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for no, line in enumerate(f, 1):
                fields_ = line.split()
                if not fields_:
                    if utt is not None:
                        yield utt, _lattice_from_rows(arcs, finals, f"{path}: {utt}")
                    utt, arcs, finals = None, [], {}
                    continue
                if utt is None:
                    utt = fields_[0]
                    continue
                if len(fields_) == 5:
                    g, a = (float(x) for x in fields_[4].split(","))
                    arcs.append((int(fields_[0]), int(fields_[1]), int(fields_[2]), int(fields_[3]), g, a))
                elif len(fields_) in (1, 2):
                    g, a = (float(x) for x in fields_[1].split(",")) if len(fields_) == 2 else (0.0, 0.0)
                    finals[int(fields_[0])] = g + a
                else:
                    raise ValueError
    except ValueError:
        raise AsrError(f"{path}:{no}: not a lattice line: {line.strip()[:80]!r}") from None
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise AsrError(f"{path}: not a readable lattice archive ({e})") from None
    if utt is not None:
        yield utt, _lattice_from_rows(arcs, finals, f"{path}: {utt}")


def _lattice_from_rows(arcs: list, finals: dict[int, float], what: str) -> Lattice:
    """Renumber a lattice read from text into topological order (an AsrError if it has a cycle)."""
    n = 1 + max([max(a[0], a[1]) for a in arcs] + list(finals) + [0])
    cols = [np.array([a[k] for a in arcs]) for k in range(6)] if arcs else [np.zeros(0)] * 6
    src, dst = cols[0].astype(np.int64), cols[1].astype(np.int64)
    order = _topo_order(n, src, dst)
    if order is None:
        raise AsrError(f"{what}: the lattice has a cycle")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    final = np.full(n, np.inf)
    for s, c in finals.items():
        final[rank[s]] = c
    s2, d2 = rank[src], rank[dst]
    o = np.argsort(s2, kind="stable")
    return Lattice(final, s2[o].astype(np.int32), d2[o].astype(np.int32), cols[2][o].astype(np.int32),
                   cols[3][o].astype(np.int32), cols[4][o].astype(np.float64), cols[5][o].astype(np.float64))


def _topo_order(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """Kahn's order with the start (0) first; None on a cycle."""
    indeg = np.bincount(dst, minlength=n)
    order_src = np.argsort(src, kind="stable")
    starts = np.searchsorted(src[order_src], np.arange(n + 1))
    queue = [0] + [s for s in range(1, n) if indeg[s] == 0]
    out = []
    while queue:
        s = queue.pop()
        out.append(s)
        for a in order_src[starts[s]:starts[s + 1]]:
            d = dst[a]
            indeg[d] -= 1
            if indeg[d] == 0:
                queue.append(d)
    return np.array(out, dtype=np.int64) if len(out) == n else None


def lattice_from_tokens(tok_state: np.ndarray, tok_frame: np.ndarray, links: np.ndarray, final: np.ndarray,
                        eps_rank: np.ndarray, label_tid: np.ndarray, label_pdf: np.ndarray, num_frames: int,
                        acoustic_scale: float, word_penalty: float, lattice_beam: float) -> tuple[Lattice, bool]:
    """The decoder's tokens and links -> a pruned :class:`Lattice`, and whether a final state was reached.

    Links whose best path through them is not within ``lattice_beam`` of the best path are
    dropped, and so are the tokens left without links; the rest are numbered in a
    topological order (frame, then creation or epsilon order). With no final state alive
    at the last frame, every last-frame token may end (Kaldi's rule).
    """
    out = _tokens_to_lattice(tok_state, tok_frame, links, np.asarray(final, dtype=np.float64), eps_rank,
                             label_tid, label_pdf,
                             num_frames, acoustic_scale, word_penalty, lattice_beam)
    fin, src, dst, ilabel, olabel, gc, ac, pdf, reached = out
    return Lattice(fin, src, dst, ilabel, olabel, gc, ac, pdf), bool(reached)


@numba.njit(cache=True)
def _tokens_to_lattice(tok_state, tok_frame, links, final, eps_rank, label_tid, label_pdf, num_frames,
                       acoustic_scale, word_penalty, lattice_beam):
    # The links' creation order is already a topological order of the arcs (a token's links
    # out are made after all its links in: later frames, or later in the frame's epsilon
    # closure, which expands states in epsilon order), so the forward-backward pruning runs
    # on the raw links, and only the few that survive it are renumbered and sorted.
    n = len(tok_state)
    m = links.shape[0]
    src = np.empty(m, dtype=np.int64)
    dst = np.empty(m, dtype=np.int64)
    cost = np.empty(m)
    for i in range(m):
        src[i] = np.int64(links[i, 0])
        dst[i] = np.int64(links[i, 1])
        cost[i] = links[i, 4] + acoustic_scale * links[i, 5] + (word_penalty if links[i, 3] > 0 else 0.0)
    fin = np.full(n, np.inf)
    reached = False
    for i in range(n):
        if tok_frame[i] == num_frames:
            fin[i] = final[tok_state[i]]
            if final[tok_state[i]] < np.inf:
                reached = True
    if not reached:
        for i in range(n):
            if tok_frame[i] == num_frames:
                fin[i] = 0.0
    keep_arc, keep_node = _prune(n, src, dst, cost, fin, lattice_beam)
    keep_node[0] = True
    # Node numbers: tokens frame by frame in creation order, except in frames where an
    # epsilon link reached an older token; those frames' tokens go by the epsilon rank of
    # their state (a topological order of the epsilon arcs).
    unsorted = np.zeros(num_frames + 1, dtype=np.bool_)
    for i in range(m):
        if links[i, 2] == 0 and dst[i] < src[i]:
            unsorted[tok_frame[dst[i]]] = True
    new_id = np.full(n, -1, dtype=np.int64)
    nk = 0
    lo = 0
    while lo < n:
        hi = lo
        while hi < n and tok_frame[hi] == tok_frame[lo]:
            hi += 1
        if unsorted[tok_frame[lo]]:
            kept = np.flatnonzero(keep_node[lo:hi]) + lo
            for q in np.argsort(eps_rank[tok_state[kept]], kind="mergesort"):
                new_id[kept[q]] = nk
                nk += 1
        else:
            for i in range(lo, hi):
                if keep_node[i]:
                    new_id[i] = nk
                    nk += 1
        lo = hi
    # Kept arcs by source node: a stable counting sort.
    count = np.zeros(nk + 1, dtype=np.int64)
    k = 0
    for i in range(m):
        if keep_arc[i]:
            count[new_id[src[i]] + 1] += 1
            k += 1
    for i in range(nk):
        count[i + 1] += count[i]
    out_src = np.empty(k, dtype=np.int32)
    out_dst = np.empty(k, dtype=np.int32)
    out_il = np.empty(k, dtype=np.int32)
    out_ol = np.empty(k, dtype=np.int32)
    out_gc = np.empty(k)
    out_ac = np.empty(k)
    out_pdf = np.empty(k, dtype=np.int32)
    for i in range(m):
        if keep_arc[i]:
            r = new_id[src[i]]
            j = count[r]
            count[r] += 1
            lab = np.int64(links[i, 2])
            out_src[j] = r
            out_dst[j] = new_id[dst[i]]
            out_il[j] = label_tid[lab] + 1 if lab > 0 else 0
            out_pdf[j] = label_pdf[lab] if lab > 0 else -1
            out_ol[j] = np.int32(links[i, 3])
            out_gc[j] = links[i, 4]
            out_ac[j] = links[i, 5]
    out_fin = np.full(nk, np.inf)
    for i in range(n):
        if keep_node[i]:
            out_fin[new_id[i]] = fin[i]
    return out_fin, out_src, out_dst, out_il, out_ol, out_gc, out_ac, out_pdf, reached


# -- compiled passes over arcs in a topological order (a Lattice: sorted by src, src < dst) ------------
@numba.njit(cache=True)
def _forward(n, src, dst, cost):
    alpha = np.full(n, np.inf)
    alpha[0] = 0.0
    for a in range(len(src)):
        c = alpha[src[a]] + cost[a]
        if c < alpha[dst[a]]:
            alpha[dst[a]] = c
    return alpha


@numba.njit(cache=True)
def _backward(n, src, dst, cost, final):
    beta = final.copy()
    for a in range(len(src) - 1, -1, -1):
        c = beta[dst[a]] + cost[a]
        if c < beta[src[a]]:
            beta[src[a]] = c
    return beta


@numba.njit(cache=True)
def _prune(n, src, dst, cost, final, lattice_beam):
    alpha = _forward(n, src, dst, cost)
    beta = _backward(n, src, dst, cost, final)
    best = beta[0]
    keep_arc = np.zeros(len(src), dtype=np.bool_)
    keep_node = np.zeros(n, dtype=np.bool_)
    limit = best + lattice_beam + 1e-7 * max(1.0, abs(best))  # rounding: the best path itself must stay
    for a in range(len(src)):
        if alpha[src[a]] + cost[a] + beta[dst[a]] <= limit:
            keep_arc[a] = True
            keep_node[src[a]] = True
            keep_node[dst[a]] = True
    for s in range(n):
        if alpha[s] + final[s] <= limit:
            keep_node[s] = True
    return keep_arc, keep_node


@numba.njit(cache=True)
def _best_path(n, src, dst, cost, final):
    alpha = np.full(n, np.inf)
    alpha[0] = 0.0
    back = np.full(n, -1, dtype=np.int64)
    for a in range(len(src)):
        c = alpha[src[a]] + cost[a]
        if c < alpha[dst[a]]:
            alpha[dst[a]] = c
            back[dst[a]] = a
    end = -1
    best = np.inf
    for s in range(n):
        if alpha[s] + final[s] < best:
            best = alpha[s] + final[s]
            end = s
    if end < 0:
        return np.full(1, -1, dtype=np.int64)
    count = 0
    s = end
    while back[s] >= 0:
        count += 1
        s = src[back[s]]
    path = np.empty(count, dtype=np.int64)
    s = end
    while back[s] >= 0:
        count -= 1
        path[count] = back[s]
        s = src[back[s]]
    return path


@numba.njit(cache=True)
def _logadd(a, b):
    # costs are -log p: the -log of a sum of probabilities
    if a == np.inf:
        return b
    if b == np.inf:
        return a
    m = min(a, b)
    return m - np.log1p(np.exp(-abs(a - b)))


@numba.njit(cache=True)
def _posteriors(n, src, dst, cost, final):
    alpha = np.full(n, np.inf)
    alpha[0] = 0.0
    for a in range(len(src)):
        alpha[dst[a]] = _logadd(alpha[dst[a]], alpha[src[a]] + cost[a])
    beta = final.copy()
    for a in range(len(src) - 1, -1, -1):
        beta[src[a]] = _logadd(beta[src[a]], beta[dst[a]] + cost[a])
    total = beta[0]
    post = np.empty(len(src))
    for a in range(len(src)):
        post[a] = np.exp(total - (alpha[src[a]] + cost[a] + beta[dst[a]]))
    return post


@numba.njit(cache=True)
def _node_frames(n, src, dst, ilabel):
    frames = np.zeros(n, dtype=np.int64)
    for a in range(len(src)):
        f = frames[src[a]] + (1 if ilabel[a] > 0 else 0)
        if f > frames[dst[a]]:
            frames[dst[a]] = f
    return frames


@numba.njit(cache=True)
def _best_words_grid(num_nodes, src, dst, graph_cost, acoustic_cost, olabel, final, scales, penalties):
    """Word ids of the best path at each (acoustic scale, penalty) pair: (K, longest), padded with -1."""
    K = len(scales)
    alpha = np.empty(num_nodes)
    back = np.empty(num_nodes, dtype=np.int64)
    rev = np.full((K, num_nodes + 1), -1, dtype=np.int64)  # words in reverse, per setting
    lengths = np.zeros(K, dtype=np.int64)
    for k in range(K):
        alpha[:] = np.inf
        alpha[0] = 0.0
        back[:] = -1
        acs, pen = scales[k], penalties[k]
        for a in range(len(src)):
            c = alpha[src[a]] + graph_cost[a] + acs * acoustic_cost[a] + (pen if olabel[a] > 0 else 0.0)
            if c < alpha[dst[a]]:
                alpha[dst[a]] = c
                back[dst[a]] = a
        end = -1
        best = np.inf
        for s in range(num_nodes):
            if alpha[s] + final[s] < best:
                best = alpha[s] + final[s]
                end = s
        s = end
        n = 0
        while s >= 0 and back[s] >= 0:
            a = back[s]
            if olabel[a] > 0:
                rev[k, n] = olabel[a]
                n += 1
            s = src[a]
        lengths[k] = n
    longest = lengths.max() if K else 0
    out = np.full((K, longest), -1, dtype=np.int64)
    for k in range(K):
        for i in range(lengths[k]):
            out[k, i] = rev[k, lengths[k] - 1 - i]
    return out
