"""Fixtures shared by several test modules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
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


ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("ASR_CORPUS_MIRROR", ROOT.parent / "shared" / "corpora"))


@pytest.fixture(scope="session")
def yesno_run(tmp_path_factory) -> Path:
    """Run the whole yesno recipe once (all stages through `make`); its folder."""
    if not (MIRROR / "waves_yesno.tar.gz").exists():
        pytest.skip(f"no yesno archive in {MIRROR}")
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    tmp_path = tmp_path_factory.mktemp("yesno")
    cmd = ["make", "-C", str(ROOT / "recipes" / "yesno"), f"ASR={ASR}", f"MIRROR={MIRROR}",
           f"DATA_ROOT={tmp_path / 'data'}", f"EXP_ROOT={tmp_path / 'exp'}", f"RESULTS={tmp_path / 'RESULTS.md'}"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return tmp_path


ASR = Path(sys.executable).parent / "asr"
