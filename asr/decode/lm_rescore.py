"""LM rescoring of lattices (Kaldi's lmrescore.sh): first pass with a small LM, then a big one.

The first-pass graph holds a pruned LM; its lattice's graph costs carry that LM's cost of
each word sequence. Rescoring takes that cost off and puts the big LM's on:

    graph cost' = graph cost - old_scale * cost_old(words) + new_scale * cost_new(words)

Both LMs score a word given the ``order - 1`` words before it, so the lattice is expanded
so that each node knows its word history: a node is split into one copy per distinct
history reaching it (composition with the LM, restricted to what the lattice holds). The
result is again a :class:`~asr.decode.lattice.Lattice`: its best path, grid and n-best
come out as for any other lattice. (Graph costs were pushed and quantised when HCLG was
minimised, so a rescored cost differs from a fresh decode with the big LM by at most a
few thousandths per word.)
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.typed import Dict

from asr.decode.lattice import Lattice
from asr.lang.arpa_scorer import ArpaScorer, _word_cost
from asr.utils import AsrError

_STATE = types.UniTuple(types.int64, 3)  # (lattice node, word before last, last word)


@numba.njit(cache=True)
def _expand(num_nodes, src, dst, olabel, graph_cost, final, bos, eos, order,
            o1, oc1, ob1, o2, oc2, ob2, o3, oc3, n1, nc1, nb1, n2, nc2, nb2, n3, nc3, old_scale, new_scale):
    # states: (node, h2, h1); created in arc order, renumbered by node afterwards
    index = Dict.empty(key_type=_STATE, value_type=types.int64)
    st_node = np.empty(1024, dtype=np.int64)
    st_h2 = np.empty(1024, dtype=np.int64)
    st_h1 = np.empty(1024, dtype=np.int64)
    head = np.full(num_nodes, -1, dtype=np.int64)
    nxt = np.empty(1024, dtype=np.int64)
    out_src = np.empty(1024, dtype=np.int64)
    out_dst = np.empty(1024, dtype=np.int64)
    out_arc = np.empty(1024, dtype=np.int64)
    out_cost = np.empty(1024, dtype=np.float64)
    n_st = 0
    n_out = 0
    start_h2 = -1
    index[(0, start_h2, bos)] = 0
    st_node[0], st_h2[0], st_h1[0] = 0, start_h2, bos
    head[0] = 0
    nxt[0] = -1
    n_st = 1
    a = 0
    for s in range(num_nodes):
        st = head[s]
        while st >= 0:
            h2, h1 = st_h2[st], st_h1[st]
            for b in range(a, len(src)):
                if src[b] != s:
                    break
                w = olabel[b]
                delta = 0.0
                nh2, nh1 = h2, h1
                if w > 0:
                    delta = (new_scale * _word_cost(n1, nc1, nb1, n2, nc2, nb2, n3, nc3, h2, h1, w)
                             - old_scale * _word_cost(o1, oc1, ob1, o2, oc2, ob2, o3, oc3, h2, h1, w))
                    if order >= 3:
                        nh2, nh1 = h1, w
                    elif order == 2:
                        nh2, nh1 = -1, w
                    else:
                        nh2, nh1 = -1, -1
                d = dst[b]
                key = (d, nh2, nh1)
                if key in index:
                    t = index[key]
                else:
                    if n_st >= len(st_node):
                        st_node = np.concatenate((st_node, np.empty(len(st_node), dtype=np.int64)))
                        st_h2 = np.concatenate((st_h2, np.empty(len(st_h2), dtype=np.int64)))
                        st_h1 = np.concatenate((st_h1, np.empty(len(st_h1), dtype=np.int64)))
                        nxt = np.concatenate((nxt, np.empty(len(nxt), dtype=np.int64)))
                    t = n_st
                    n_st += 1
                    index[key] = t
                    st_node[t], st_h2[t], st_h1[t] = d, nh2, nh1
                    nxt[t] = head[d]
                    head[d] = t
                if n_out >= len(out_src):
                    out_src = np.concatenate((out_src, np.empty(len(out_src), dtype=np.int64)))
                    out_dst = np.concatenate((out_dst, np.empty(len(out_dst), dtype=np.int64)))
                    out_arc = np.concatenate((out_arc, np.empty(len(out_arc), dtype=np.int64)))
                    out_cost = np.concatenate((out_cost, np.empty(len(out_cost), dtype=np.float64)))
                out_src[n_out], out_dst[n_out], out_arc[n_out] = st, t, b
                out_cost[n_out] = graph_cost[b] + delta
                n_out += 1
            st = nxt[st]
        while a < len(src) and src[a] == s:
            a += 1
    fin = np.full(n_st, np.inf)
    for t in range(n_st):
        f = final[st_node[t]]
        if f < np.inf:
            h2, h1 = st_h2[t], st_h1[t]
            fin[t] = f + (new_scale * _word_cost(n1, nc1, nb1, n2, nc2, nb2, n3, nc3, h2, h1, eos)
                          - old_scale * _word_cost(o1, oc1, ob1, o2, oc2, ob2, o3, oc3, h2, h1, eos))
    return st_node[:n_st], fin, out_src[:n_out], out_dst[:n_out], out_arc[:n_out], out_cost[:n_out]


def rescore_lattice(lat: Lattice, old: ArpaScorer, new: ArpaScorer, old_scale: float = 1.0,
                    new_scale: float = 1.0) -> Lattice:
    """The lattice with ``old``'s LM cost of every word sequence replaced by ``new``'s."""
    if (old.bos, old.eos) != (new.bos, new.eos):
        raise AsrError("the two LMs must be read with the same word table")
    order = max(old.order, new.order)
    st_node, fin, s, d, arc, cost = _expand(lat.num_nodes, lat.src.astype(np.int64), lat.dst.astype(np.int64),
                                            lat.olabel.astype(np.int64), lat.graph_cost, lat.final, old.bos, old.eos,
                                            order, *old.arrays(), *new.arrays(), old_scale, new_scale)
    if np.isinf(cost).any():
        bad = int(lat.olabel[arc[np.flatnonzero(np.isinf(cost))[0]]])
        raise AsrError(f"word id {bad} of the lattice has no unigram in the rescoring LM")
    order_st = np.argsort(st_node, kind="stable")  # topological: the lattice's node order
    rank = np.empty(len(order_st), dtype=np.int64)
    rank[order_st] = np.arange(len(order_st))
    s2, d2 = rank[s], rank[d]
    o = np.argsort(s2, kind="stable")
    arc = arc[o]
    return Lattice(fin[order_st], s2[o].astype(np.int32), d2[o].astype(np.int32), lat.ilabel[arc], lat.olabel[arc],
                   cost[o], lat.acoustic_cost[arc], None if lat.pdf is None else lat.pdf[arc])
