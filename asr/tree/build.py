"""Growing the decision tree: greedy likelihood-gain splitting (Kaldi's build-tree).

Each root starts as one leaf holding the statistics of all its contexts. Repeatedly,
the leaf whose best question gains the most log-likelihood (one Gaussian per child
instead of one for the parent) is split, over all roots at once, until the tree has
``num_leaves`` leaves, no split gains ``min_gain``, or every split would leave a child
with fewer than ``min_leaf_occ`` frames (so each tied state has data to train on).
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass

import numpy as np

from asr.tree.stats import CENTRAL, HMM_STATE, LEFT, RIGHT, TreeStats, gaussian_objective
from asr.tree.tree import LEAF, DecisionTree

log = logging.getLogger(__name__)


@dataclass
class Root:
    """A root of the forest: the phones that share it (position variants), one HMM state, may it split."""

    phones: list[int]
    hmm_state: int
    split: bool = True


@dataclass
class Split:
    gain: float
    key: int
    question: int
    yes_rows: np.ndarray
    no_rows: np.ndarray


def best_split(stats: TreeStats, packed: np.ndarray, rows: np.ndarray, membership: np.ndarray,
               min_leaf_occ: float, var_floor: float, keys: tuple[int, ...] = (LEFT, CENTRAL, RIGHT)) -> Split | None:
    """The question (over ``keys`` positions) that best splits the contexts ``rows``, or None.

    Args:
        packed: (K, 1+2D) statistics of every context (``stats.packed``).
        rows: indices of the contexts in this node.
        membership: (Q, num_phones) bool, question q contains phone p.
    """
    total = packed[rows].sum(0)
    parent = float(gaussian_objective(total, var_floor))
    best: Split | None = None
    for k in keys:
        vals = stats.keys[rows, k]
        uniq, inverse = np.unique(vals, return_inverse=True)
        if len(uniq) < 2:
            continue
        onehot = np.zeros((len(uniq), len(rows)))
        onehot[inverse, np.arange(len(rows))] = 1.0
        per_value = onehot @ packed[rows]  # (V, 1+2D)
        yes = membership[:, uniq].astype(np.float64) @ per_value  # (Q, 1+2D)
        no = total[None, :] - yes
        ok = (yes[:, 0] >= min_leaf_occ) & (no[:, 0] >= min_leaf_occ)
        if not ok.any():
            continue
        gains = np.where(ok, gaussian_objective(yes, var_floor) + gaussian_objective(no, var_floor) - parent, -np.inf)
        q = int(np.argmax(gains))
        if best is None or gains[q] > best.gain:
            answer = membership[q, vals]
            best = Split(float(gains[q]), k, q, rows[answer], rows[~answer])
    return best


def build_tree(stats: TreeStats, questions: list[frozenset[int]], roots: list[Root], num_leaves: int,
               min_leaf_occ: float = 100.0, min_gain: float = 0.0, var_floor: float = 0.01) -> DecisionTree:
    """Grow the forest over ``roots`` to at most ``num_leaves`` leaves (see the module docstring)."""
    largest = max(max((max(q, default=0) for q in questions), default=0), int(stats.keys[:, :3].max()),
                  max(max(r.phones) for r in roots))
    num_phones = largest + 1
    membership = np.zeros((len(questions), num_phones), dtype=bool)
    for i, q in enumerate(questions):
        membership[i, sorted(q)] = True
    packed = stats.packed
    key, question, yes, no = [], [], [], []

    def new_node() -> int:
        key.append(LEAF)
        question.append(-1)
        yes.append(-1)
        no.append(-1)
        return len(key) - 1

    root_of: dict[tuple[int, int], int] = {}
    heap: list[tuple[float, int, int]] = []  # (-gain, tie-break, node)
    pending: dict[int, Split] = {}
    node_keys: dict[int, tuple[int, ...]] = {}
    for r in roots:
        node = new_node()
        for p in r.phones:
            root_of[(p, r.hmm_state)] = node
        rows = np.flatnonzero(np.isin(stats.keys[:, 1], r.phones) & (stats.keys[:, HMM_STATE] == r.hmm_state))
        if not r.split or len(rows) == 0:
            continue
        # The central phone is only worth asking about when the root holds several variants.
        node_keys[node] = (LEFT, CENTRAL, RIGHT) if len(r.phones) > 1 else (LEFT, RIGHT)
        s = best_split(stats, packed, rows, membership, min_leaf_occ, var_floor, node_keys[node])
        if s is not None:
            pending[node] = s
            heapq.heappush(heap, (-s.gain, node, node))
    leaves = len(roots)
    gained = 0.0
    while heap and leaves < num_leaves:
        neg_gain, _, node = heapq.heappop(heap)
        if -neg_gain <= min_gain:
            break
        s = pending.pop(node)
        key[node], question[node] = s.key, s.question
        for side, rows in ((yes, s.yes_rows), (no, s.no_rows)):
            child = new_node()
            side[node] = child
            node_keys[child] = node_keys[node]
            cs = best_split(stats, packed, rows, membership, min_leaf_occ, var_floor, node_keys[child])
            if cs is not None:
                pending[child] = cs
                heapq.heappush(heap, (-cs.gain, child, child))
        leaves += 1
        gained += s.gain
    # Number the leaves root by root, depth first: pdf ids are stable for a given tree.
    pdf = [-1] * len(key)
    next_pdf = 0
    for r in roots:
        stack = [root_of[(r.phones[0], r.hmm_state)]]
        while stack:
            n = stack.pop()
            if key[n] == LEAF:
                pdf[n] = next_pdf
                next_pdf += 1
            else:
                stack += [no[n], yes[n]]
    log.info("decision tree: %d leaves (asked for %d) from %d contexts, %.1f frames; likelihood gain %.4g "
             "(%.4f per frame)", next_pdf, num_leaves, len(stats.keys), stats.count.sum(), gained,
             gained / max(stats.count.sum(), 1))
    return DecisionTree(root_of, key, question, yes, no, pdf, questions)


def leaf_statistics(tree: DecisionTree, stats: TreeStats) -> np.ndarray:
    """(num_pdfs, 1+2D) summed statistics of each leaf (to initialise one Gaussian per leaf)."""
    pdfs = np.array([tree.pdf_of(int(l), int(p), int(r), int(s)) for l, p, r, s in stats.keys], dtype=np.int64)
    out = np.zeros((tree.num_pdfs, stats.packed.shape[1]))
    np.add.at(out, pdfs, stats.packed)
    return out
