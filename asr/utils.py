"""Small shared helpers: the project's error type, atomic file writes, logging setup."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, TypeVar

log = logging.getLogger("asr")

C = TypeVar("C", bound="Config")


class AsrError(Exception):
    """A user-facing error: the CLI prints its message on one line, without a traceback.

    Raise it for bad input (a missing file, a malformed line, an unknown word) with a
    message that names the file or utterance concerned.
    """


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open ``path`` for writing through a temporary file renamed into place on success.

    An interrupted or failed write leaves the old file (or nothing) behind, never half a
    file. ``mode`` is ``"w"`` or ``"wb"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Give a temporary path next to ``path``; rename it to ``path`` if the block succeeds.

    For writers that want a file name rather than a file object (numpy, torch, kaldiio).
    The temporary name keeps ``path``'s suffix so that suffix-sniffing writers behave.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path) as f:
        f.write(text)


def setup_logging(verbose: bool = False) -> None:
    """Log ``asr`` messages to stderr: INFO by default, DEBUG with ``verbose``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


class Config:
    """Mixin for option dataclasses: dict round trip, unknown keys rejected by name.

    Options come from recipe TOML sections, ``--set`` overrides and saved model dirs; a
    misspelt key must fail loudly rather than silently keep a default.
    """

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: dict) -> C:
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - known
        if unknown:
            raise AsrError(f"unknown {cls.__name__} option(s): {', '.join(sorted(unknown))} "
                           f"(known: {', '.join(sorted(known))})")
        return cls(**d)


def from_flat_section(cls: type[C], nested_cls: type, opts: dict, key: str = "net") -> C:
    """A config with a nested ``key`` config (e.g. a trainer's network) from one flat TOML
    section: the nested config's option names go to it, the rest to ``cls``."""
    nested_keys = {f.name for f in dataclasses.fields(nested_cls)}
    nested = {k: v for k, v in opts.items() if k in nested_keys}
    rest = {k: v for k, v in opts.items() if k not in nested_keys}
    return cls.from_dict({**rest, key: nested_cls.from_dict(nested)})  # type: ignore[attr-defined]

