"""Corpus preparation: archives -> Kaldi data dirs plus lexicon sources."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from asr.corpora.an4 import prepare_an4
from asr.corpora.fsdd import prepare_fsdd
from asr.corpora.librispeech import prepare_librispeech
from asr.corpora.yesno import prepare_yesno
from asr.datadir import DataDir
from asr.utils import AsrError

PREPARERS: dict[str, Callable[..., dict[str, DataDir]]] = {
    "yesno": prepare_yesno,
    "an4": prepare_an4,
    "fsdd": prepare_fsdd,
    "librispeech": prepare_librispeech,
}


def prepare_corpus(
    name: str, out_dir: str | Path, mirror: str | Path | None = None, work_dir: str | Path | None = None
) -> dict[str, DataDir]:
    """Prepare corpus ``name`` into ``out_dir``; returns split name -> DataDir."""
    if name not in PREPARERS:
        raise AsrError(f"unknown corpus '{name}' (known: {', '.join(sorted(PREPARERS))})")
    kwargs = {} if work_dir is None else {"work_dir": Path(work_dir)}
    return PREPARERS[name](Path(out_dir), mirror=mirror, **kwargs)


__all__ = ["PREPARERS", "prepare_corpus", "prepare_an4", "prepare_fsdd", "prepare_librispeech", "prepare_yesno"]
