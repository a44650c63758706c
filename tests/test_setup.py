"""Fresh installs: the lock pins a torch/torchaudio pair that loads, `asr --version` reports
it, and a broken pair is one clear line rather than a traceback from inside torchaudio."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from conftest import ASR, ROOT


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split(";")[0].strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_lock_pins_every_dependency_exactly_and_inside_pyproject_ranges() -> None:
    lock = _lock()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    for spec in wanted:
        req = Requirement(spec)
        name = req.name.lower()
        assert name in lock, f"{name} is not in requirements.lock"
        assert req.specifier.contains(lock[name]), (spec, lock[name])
    # The hand-written pins are what the lock was resolved with.
    for line in (ROOT / "requirements.pins").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.strip().split("==")
            assert lock[name] == version, (name, lock[name], version)
    # torchaudio's compiled extension only loads with its own torch release.
    assert lock["torch"].split("+")[0] == lock["torchaudio"].split("+")[0]


def test_the_venv_runs_the_locked_versions() -> None:
    import importlib.metadata as md

    lock = _lock()
    for name in ("torch", "torchaudio", "numpy", "soundfile"):
        assert md.version(name) == lock[name], name


def test_version_names_every_component() -> None:
    out = subprocess.run([str(ASR), "--version"], capture_output=True, text=True, check=True).stdout
    for need in ("asr", "torch", "torchaudio", "numpy", "audio backend"):
        assert any(line.startswith(need + " ") for line in out.splitlines()), (need, out)
    assert re.search(r"^torchaudio \d+\.\d+", out, re.M) and "libsndfile" in out


def _broken_torchaudio(tmp_path: Path) -> dict[str, str]:
    """An environment whose `import torchaudio` fails as a mismatched release does."""
    fake = tmp_path / "fake" / "torchaudio"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise OSError('Could not load this library: /x/torchaudio/lib/libtorchaudio.so')\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path / "fake")}


def test_a_torchaudio_that_does_not_load_is_one_line_saying_what_to_install(tmp_path: Path) -> None:
    env = _broken_torchaudio(tmp_path)
    run = subprocess.run([str(ASR), "--version"], capture_output=True, text=True, env=env)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert "compiled extension does not load" in lines[0] and "pip install 'torchaudio==" in lines[0]
    # The same line from a command that needs features, naming nothing deep in torchaudio.
    wav = tmp_path / "a.wav"
    import numpy as np
    import soundfile as sf

    sf.write(wav, np.zeros(16000, dtype=np.float32), 16000)
    data = tmp_path / "d"
    data.mkdir()
    (data / "wav.scp").write_text(f"u1 {wav}\n")
    (data / "utt2spk").write_text("u1 u1\n")
    run = subprocess.run([str(ASR), "features", str(data)], capture_output=True, text=True, env=env)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "compiled extension does not load" in run.stderr


def _imports(path: Path) -> list[str]:
    """Every module a source file imports (at the top or inside functions)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_only_the_backend_module_imports_torchaudio() -> None:
    importers = [path.relative_to(ROOT).as_posix() for path in sorted((ROOT / "asr").rglob("*.py"))
                 if any(n == "torchaudio" or n.startswith("torchaudio.") for n in _imports(path))]
    assert sorted(set(importers)) == ["asr/backend.py"]


def test_decoding_graphs_and_alignment_see_models_only_through_the_acoustic_interface() -> None:
    """asr.decode, asr.graph and asr.hmm never import the model packages (asr.acoustic's
    registry loads them by name), so the lower layers do not depend on the higher ones."""
    offenders = []
    for pkg in ("decode", "graph", "hmm"):
        for path in sorted((ROOT / "asr" / pkg).rglob("*.py")):
            bad = [n for n in _imports(path) if n.split(".")[:2] in (["asr", "gmm"], ["asr", "nnet"])]
            offenders += [f"{path.relative_to(ROOT).as_posix()}: {n}" for n in bad]
    assert offenders == []
