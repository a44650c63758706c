"""Phonetic questions for the decision tree, generated from the data (Kaldi's cluster-phones).

A question is a set of phone ids ("is the left phone in this set?"). Like Kaldi, we
cluster the base phones top-down into a binary tree by the statistics of their
middle HMM state: each split divides a set in two so that one Gaussian per half
explains the frames best. Every node of that tree is a question, so questions range
from broad classes (vowel-like vs. consonant-like, as the data sees them) down to single
phones. Kaldi's extra questions are added by hand: silence (with the utterance edge),
and, for word-position-dependent phones, each position class (_B, _I, _E, _S,
word-initial _B+_S, word-final _E+_S).
"""

from __future__ import annotations

import itertools
import logging

import numpy as np

from asr.lang.lexicon import SymbolTable
from asr.lang.prepare import POSITIONS
from asr.tree.stats import CENTRAL, HMM_STATE, TreeStats, gaussian_objective

log = logging.getLogger(__name__)


def base_phone(symbol: str) -> str:
    """``AA_B`` -> ``AA``: the phone without its word-position tag."""
    for tag in POSITIONS:
        if symbol.endswith(tag) and len(symbol) > len(tag):
            return symbol[: -len(tag)]
    return symbol


def phone_groups(phones: SymbolTable) -> dict[str, list[int]]:
    """Base phone -> ids of all its position variants (``<eps>`` and ``#n`` excluded)."""
    groups: dict[str, list[int]] = {}
    for i, sym in enumerate(phones.symbols):
        if i == 0 or sym.startswith("#"):
            continue
        groups.setdefault(base_phone(sym), []).append(i)
    return groups


def _split_in_two(items: np.ndarray, var_floor: float, max_iters: int = 20) -> np.ndarray:
    """Partition clusters (N, 1+2D) into two to maximise the summed Gaussian objective.

    Starts from the pair whose merge loses the most likelihood, then moves single items
    across while that improves the objective (a 2-means on Gaussians). Returns (N,) bool.
    """
    n = len(items)
    own = gaussian_objective(items, var_floor)
    pairs = list(itertools.combinations(range(n), 2))
    merged = gaussian_objective(np.array([items[i] + items[j] for i, j in pairs]), var_floor)
    a, b = pairs[int(np.argmax(own[[i for i, _ in pairs]] + own[[j for _, j in pairs]] - merged))]
    side = np.zeros(n, dtype=bool)
    side[b] = True
    # Seed: everyone joins the seed it is closest to (smallest loss when merged).
    for i in range(n):
        if i not in (a, b):
            side[i] = (gaussian_objective(items[i] + items[b], var_floor) - own[b]
                       > gaussian_objective(items[i] + items[a], var_floor) - own[a])
    for _ in range(max_iters):
        moved = False
        for i in range(n):
            same = side == side[i]
            if same.sum() == 1:
                continue  # never empty a side
            here, there = items[same].sum(0), items[~same].sum(0)
            before = gaussian_objective(here, var_floor) + gaussian_objective(there, var_floor)
            after = gaussian_objective(here - items[i], var_floor) + gaussian_objective(there + items[i], var_floor)
            if after > before + 1e-9:
                side[i] = ~side[i]
                moved = True
        if not moved:
            break
    return side


def cluster_phone_sets(items: np.ndarray, var_floor: float) -> list[list[int]]:
    """Every node (but the root) of a top-down binary clustering of N items: lists of item indices."""
    out: list[list[int]] = []
    todo = [list(range(len(items)))]
    while todo:
        members = todo.pop()
        if len(members) < 2:
            continue
        side = _split_in_two(items[members], var_floor)
        for half in ([m for m, s in zip(members, side) if s], [m for m, s in zip(members, side) if not s]):
            out.append(half)
            todo.append(half)
    return out


def make_questions(stats: TreeStats, phones: SymbolTable, silence_phones: list[str], trans_num_states: np.ndarray,
                   var_floor: float = 0.01) -> list[frozenset[int]]:
    """Question sets over phone ids: data-driven base-phone clusters plus Kaldi's extra questions."""
    groups = phone_groups(phones)
    names = list(groups)
    D = stats.sum.shape[1]
    items = np.zeros((len(names), 1 + 2 * D))
    packed = stats.packed
    middle = trans_num_states[stats.keys[:, CENTRAL]] // 2
    for g, name in enumerate(names):
        rows = np.isin(stats.keys[:, CENTRAL], groups[name]) & (stats.keys[:, HMM_STATE] == middle)
        items[g] = packed[rows].sum(0)
    seen = [g for g in range(len(names)) if items[g, 0] > 0]
    sets: list[list[int]] = [[seen[i] for i in node] for node in cluster_phone_sets(items[seen], var_floor)]
    sets += [[g] for g in range(len(names)) if g not in seen]  # unseen phones still get asked about
    questions = [frozenset(p for g in s for p in groups[names[g]]) for s in sets]
    sil_ids = [phones.id(s) for s in silence_phones if s in phones]
    questions.append(frozenset(sil_ids))
    questions.append(frozenset(sil_ids + [0]))  # silence or the utterance edge
    position = {tag: frozenset(i for i, sym in enumerate(phones.symbols)
                               if i > 0 and sym.endswith(tag) and base_phone(sym) != sym)
                for tag in POSITIONS}
    if any(position.values()):
        questions += [q for q in position.values() if q]
        questions += [position["_B"] | position["_S"], position["_E"] | position["_S"]]
    unique = list(dict.fromkeys(q for q in questions if q))
    log.info("%d phonetic questions from %d base phones (%d seen in the alignment)", len(unique), len(names), len(seen))
    return unique
