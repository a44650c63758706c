"""Small shared helpers: the project's error type, atomic file writes, logging setup."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, TypeVar

log = logging.getLogger("asr")

C = TypeVar("C", bound="Config")


class AsrError(Exception):
    """A user-facing error: the CLI prints its message on one line, without a traceback.

    Raise it for bad input (a missing file, a malformed line, an unknown word) with a
    message that names the file or utterance concerned.
    """


def one_line(e: BaseException, limit: int = 200) -> str:
    """An exception's message on one line (whitespace collapsed, at most ``limit`` characters),
    or its type name when it has none: for quoting a library's error inside an AsrError."""
    text = " ".join(str(e).split())[:limit]
    return text or type(e).__name__


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create directory ``path`` (and parents); an AsrError if a file is in the way."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise AsrError(f"cannot create directory {path}: a file of that name (or above it) is in the way") from None
    except OSError as e:
        raise AsrError(f"cannot create directory {path}: {e.strerror}") from None
    return path


def _writable(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise AsrError(f"{path} is a directory; expected a file name to write")
    ensure_dir(path.parent)
    return path


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open ``path`` for writing through a temporary file renamed into place on success.

    An interrupted or failed write leaves the old file (or nothing) behind, never half a
    file. ``mode`` is ``"w"`` or ``"wb"``.
    """
    path = _writable(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
        os.chmod(tmp, _FILE_MODE)
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
    path = _writable(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Files are created the way open() creates them: 0666 less the umask (mkstemp's 0600 would
# hide a model dir from the other users of a shared machine).
_FILE_MODE = 0o666 & ~_umask()


def read_utf8(path: str | os.PathLike, what: str = "file") -> str:
    """The text of ``path``; an AsrError naming the file (and line) if it is missing, a
    directory, or not UTF-8."""
    path = Path(path)
    if not path.exists():
        raise AsrError(f"{what} not found: {path}")
    if path.is_dir():
        raise AsrError(f"{path}: is a directory, expected a {what}")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise AsrError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Parsed JSON of ``path``, or an AsrError naming the file."""
    text = read_utf8(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise AsrError(f"{path}: malformed {what} ({e})") from None


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

