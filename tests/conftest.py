"""Fixtures shared by several test modules."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from asr.hmm.context import MonophoneContext
from asr.hmm.topology import Topology, TransitionModel
from asr.lang.lexicon import Lexicon, SymbolTable


@pytest.fixture(scope="session")
def tiny_mono() -> SimpleNamespace:
    """A two-word monophone system: SIL (3 states), A and B (2 states); X = A B, Y = B."""
    topo = Topology.default([1, 2, 3], [1], nonsil_states=2, sil_states=3)
    return SimpleNamespace(phones=SymbolTable(["SIL", "A", "B"]), words=SymbolTable(["X", "Y"]), topo=topo,
                           trans=TransitionModel(topo), ctx=MonophoneContext(topo),
                           lex=Lexicon({"X": [["A", "B"]], "Y": [["B"]]}))
