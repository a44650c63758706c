"""Context dependency: which pdf (GMM / DNN output) a phone state uses in a given context.

The monophone system gives each (phone, HMM state) its own pdf. A triphone system
replaces this with a decision tree over (left phone, phone, right phone, HMM state);
both answer the same question through ``pdf_of``.
"""

from __future__ import annotations

from asr.hmm.topology import Topology
from asr.utils import AsrError


class MonophoneContext:
    """One pdf per (phone, HMM state): pdf ids enumerate phones in id order, states in order."""

    kind = "mono"
    context_width = 1

    def __init__(self, topo: Topology):
        self.pdf_index: dict[tuple[int, int], int] = {}
        for phone in sorted(topo.phone_topo):
            for s in range(topo.num_states(phone)):
                self.pdf_index[(phone, s)] = len(self.pdf_index)

    @property
    def num_pdfs(self) -> int:
        return len(self.pdf_index)

    def pdf_of(self, left: int, phone: int, right: int, hmm_state: int) -> int:
        """The pdf of ``hmm_state`` of ``phone`` between ``left`` and ``right`` (0 = none)."""
        return self.pdf_index[(phone, hmm_state)]

    def context_independent(self, phone: int) -> bool:
        return True

    def to_dict(self) -> dict:
        return {"kind": self.kind}


def load_context(d: dict, topo: Topology):
    """Rebuild the context-dependency object saved by ``ctx.to_dict()`` (mono, tree or ctc)."""
    from asr.hmm.ctc_topology import CtcContext
    from asr.tree.tree import DecisionTree

    if d["kind"] == "mono":
        return MonophoneContext(topo)
    if d["kind"] == "tree":
        return DecisionTree.from_dict(d)
    if d["kind"] == "ctc":
        return CtcContext.from_dict(d)
    raise AsrError(f"unknown context-dependency kind {d['kind']!r}")
