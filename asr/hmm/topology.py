"""HMM topology per phone and the transition model (Kaldi's HmmTopology + TransitionModel).

A phone's HMM is a list of emitting states; each state lists its arcs as
``(destination, initial probability)`` where destination == number of states means
"leave the phone". Entry is always into state 0. A *transition state* is a
(phone, HMM state) pair; a *transition id* (tid) is one arc of one transition state.
Transition probabilities are shared across contexts, as in Kaldi's mono/tri1 systems.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asr.utils import AsrError

PhoneTopo = list[list[tuple[int, float]]]


def left_to_right(num_states: int, self_loop: float = 0.75) -> PhoneTopo:
    """A Bakis HMM: each state loops on itself or moves to the next (the last one exits)."""
    return [[(i, self_loop), (i + 1, 1.0 - self_loop)] for i in range(num_states)]


def kaldi_silence(num_states: int = 5) -> PhoneTopo:
    """Kaldi's silence HMM (utils/gen_topo.pl): the middle states are fully connected, so
    silence and noise of very different shapes fit one model; the last state exits."""
    n = num_states
    if n < 3:
        return left_to_right(n)
    first = [(d, 1.0 / (n - 1)) for d in range(0, n - 1)]
    middle = [[(d, 1.0 / (n - 1)) for d in range(1, n)] for _ in range(1, n - 1)]
    return [first] + middle + [[(n - 1, 0.75), (n, 0.25)]]


@dataclass
class Topology:
    """Phone id -> its HMM (phone ids index ``phones.txt``; 0 = <eps> has no HMM)."""

    phone_topo: dict[int, PhoneTopo]

    @classmethod
    def default(cls, phone_ids: list[int], silence_ids: list[int], nonsil_states: int = 3,
                sil_states: int = 5, sil_topology: str = "kaldi") -> "Topology":
        """Left-to-right non-silence phones; silence ``"kaldi"`` (ergodic middle) or ``"left-to-right"``."""
        if sil_topology not in ("kaldi", "left-to-right"):
            raise AsrError(f"sil_topology must be 'kaldi' or 'left-to-right', got {sil_topology!r}")
        sil = kaldi_silence(sil_states) if sil_topology == "kaldi" else left_to_right(sil_states)
        topo = {p: sil if p in silence_ids else left_to_right(nonsil_states) for p in phone_ids}
        return cls(topo)

    def num_states(self, phone: int) -> int:
        return len(self.phone_topo[phone])

    def to_dict(self) -> dict:
        return {str(p): [[list(a) for a in s] for s in t] for p, t in self.phone_topo.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Topology":
        return cls({int(p): [[(int(a[0]), float(a[1])) for a in s] for s in t] for p, t in d.items()})


class TransitionModel:
    """Transition states, transition ids and their log-probabilities.

    Attributes:
        tstates: list of (phone, hmm_state).
        tid_tstate: (num_tids,) transition state of each tid.
        tid_dest: (num_tids,) destination HMM state (== num_states of the phone: exit).
        log_probs: (num_tids,) float64 log-probabilities, normalised per transition state.
    """

    def __init__(self, topo: Topology, log_probs: np.ndarray | None = None):
        self.topo = topo
        self.tstates: list[tuple[int, int]] = []
        tid_tstate, tid_dest, init = [], [], []
        self.first_tid: list[int] = []
        for phone in sorted(topo.phone_topo):
            for s, arcs in enumerate(topo.phone_topo[phone]):
                ts = len(self.tstates)
                self.tstates.append((phone, s))
                self.first_tid.append(len(tid_tstate))
                for dest, prob in arcs:
                    tid_tstate.append(ts)
                    tid_dest.append(dest)
                    init.append(prob)
        self.tstate_index = {t: i for i, t in enumerate(self.tstates)}
        self.tstate_phone = np.array([p for p, _ in self.tstates], dtype=np.int64)
        self.tstate_hmm_state = np.array([s for _, s in self.tstates], dtype=np.int64)
        self.phone_num_states = np.zeros(max(topo.phone_topo) + 1, dtype=np.int64)
        for phone, t in topo.phone_topo.items():
            self.phone_num_states[phone] = len(t)
        self.tid_tstate = np.array(tid_tstate, dtype=np.int64)
        self.tid_dest = np.array(tid_dest, dtype=np.int64)
        self.log_probs = np.log(np.array(init)) if log_probs is None else np.asarray(log_probs, dtype=np.float64)
        if self.log_probs.shape != self.tid_tstate.shape:
            raise AsrError("transition log-probs do not match the topology")

    @property
    def num_tids(self) -> int:
        return len(self.tid_tstate)

    def tstate(self, phone: int, hmm_state: int) -> int:
        return self.tstate_index[(phone, hmm_state)]

    def arcs(self, tstate: int) -> list[tuple[int, int]]:
        """(tid, destination HMM state) of every arc leaving ``tstate``."""
        first = self.first_tid[tstate]
        last = self.first_tid[tstate + 1] if tstate + 1 < len(self.first_tid) else self.num_tids
        return [(t, int(self.tid_dest[t])) for t in range(first, last)]

    def phone_arcs(self, phone: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
        """A phone's HMM as arcs: internal ``(from state, to state, tid)`` and exits ``(state, tid)``.

        The one place that says how a phone expands; training graphs and the decoding graph
        both build their HMM states from it.
        """
        n = self.topo.num_states(phone)
        internal, exits = [], []
        for s in range(n):
            for tid, dest in self.arcs(self.tstate(phone, s)):
                if dest < n:
                    internal.append((s, dest, tid))
                else:
                    exits.append((s, tid))
        return internal, exits

    def update(self, counts: np.ndarray, floor: float = 0.01, min_count: float = 5.0) -> None:
        """Maximum-likelihood update from per-tid counts (Kaldi's MleUpdate).

        States seen fewer than ``min_count`` times keep their probabilities; probabilities
        are floored at ``floor`` and renormalised.
        """
        totals = np.bincount(self.tid_tstate, weights=counts, minlength=len(self.tstates))
        new = self.log_probs.copy()
        for ts in range(len(self.tstates)):
            if totals[ts] < min_count:
                continue
            tids = [t for t, _ in self.arcs(ts)]
            p = np.maximum(counts[tids] / totals[ts], floor)
            new[tids] = np.log(p / p.sum())
        self.log_probs = new
