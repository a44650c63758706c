"""WFSTs as numpy arrays, and their exchange with OpenFst (``kaldifst``).

The graph algebra (composition, determinization, minimization) is OpenFst's; building
the input machines and reading the result arc by arc through Python bindings would cost
a Python call per arc (tens of millions for a large-vocabulary HCLG). Instead an FST is
held as CSR arrays and moved to and from OpenFst through its binary ``vector`` file
format, which a compiled loop writes and parses at memory speed.

Binary layout (OpenFst ``VectorFst<StdArc>``, little-endian): a header (magic, fst type
"vector", arc type "standard", version 2, flags, properties, start, #states, #arcs), then
per state its final weight (float32, +inf = not final), its arc count (int64) and its arcs
(ilabel int32, olabel int32, weight float32, nextstate int32).
"""

from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from asr.utils import AsrError

_MAGIC = 2125659606
_HEADER = struct.Struct("<i i6s i8s i i Q q q q")
_PROPS_EXPANDED_MUTABLE = 0x3  # all other property bits "unknown": OpenFst recomputes what it needs


@dataclass
class Fst:
    """A weighted transducer over the tropical semiring, arcs grouped by source state.

    Attributes:
        start: start state (-1 for the empty machine).
        final: (N,) float32 final cost of each state, +inf when not final.
        arc_start: (N + 1,) int64; arcs of state s are ``arc_start[s]:arc_start[s+1]``.
        ilabel, olabel: (E,) int32 labels, 0 = epsilon.
        weight: (E,) float32 costs (-log probabilities).
        dst: (E,) int32 destination states.
    """

    start: int
    final: np.ndarray
    arc_start: np.ndarray
    ilabel: np.ndarray
    olabel: np.ndarray
    weight: np.ndarray
    dst: np.ndarray

    @property
    def num_states(self) -> int:
        return len(self.final)

    @property
    def num_arcs(self) -> int:
        return len(self.dst)

    @property
    def arc_src(self) -> np.ndarray:
        """(E,) source state of every arc."""
        return np.repeat(np.arange(self.num_states, dtype=np.int32), np.diff(self.arc_start))

    @classmethod
    def from_arcs(cls, num_states: int, start: int, src, dst, ilabel, olabel, weight,
                  final: dict[int, float] | np.ndarray) -> "Fst":
        """Build from unsorted arc lists; ``final`` maps state -> cost (or is an (N,) array)."""
        src = np.asarray(src, dtype=np.int64)
        order = np.argsort(src, kind="stable")
        counts = np.bincount(src, minlength=num_states) if len(src) else np.zeros(num_states, dtype=np.int64)
        arc_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if isinstance(final, dict):
            f = np.full(num_states, np.inf, dtype=np.float32)
            for s, c in final.items():
                f[s] = c
        else:
            f = np.asarray(final, dtype=np.float32)
        return cls(int(start), f, arc_start, np.asarray(ilabel, dtype=np.int32)[order],
                   np.asarray(olabel, dtype=np.int32)[order], np.asarray(weight, dtype=np.float32)[order],
                   np.asarray(dst, dtype=np.int32)[order])

    # -- exchange with OpenFst ------------------------------------------------------------
    def to_bytes(self) -> bytes:
        header = _HEADER.pack(_MAGIC, 6, b"vector", 8, b"standard", 2, 0, _PROPS_EXPANDED_MUTABLE,
                              self.start, self.num_states, self.num_arcs)
        body = np.empty(12 * self.num_states + 16 * self.num_arcs, dtype=np.uint8)
        _write_body(body, self.final.astype(np.float32), self.arc_start, self.ilabel, self.olabel,
                    self.weight.astype(np.float32), self.dst)
        return header + body.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "FST") -> "Fst":
        if len(data) < _HEADER.size:
            raise AsrError(f"{what}: not an OpenFst vector file (too short)")
        magic, _, ftype, _, atype, _, _, _, start, n, e = _HEADER.unpack_from(data)
        if magic != _MAGIC or ftype != b"vector" or atype != b"standard":
            raise AsrError(f"{what}: not an OpenFst vector file of standard arcs")
        buf = np.frombuffer(data, dtype=np.uint8, offset=_HEADER.size)
        # OpenFst leaves the header's arc count at 0 for vector FSTs: the body says how many.
        e, rest = divmod(len(buf) - 12 * n, 16)
        if n < 0 or e < 0 or rest:
            raise AsrError(f"{what}: truncated OpenFst file ({len(buf)} bytes for {n} states)")
        final = np.empty(n, dtype=np.float32)
        arc_start = np.empty(n + 1, dtype=np.int64)
        il, ol = np.empty(e, dtype=np.int32), np.empty(e, dtype=np.int32)
        w, d = np.empty(e, dtype=np.float32), np.empty(e, dtype=np.int32)
        if not _read_body(buf, final, arc_start, il, ol, w, d):
            raise AsrError(f"{what}: damaged OpenFst file (arc counts do not add up)")
        return cls(int(start), final, arc_start, il, ol, w, d)

    def to_kaldifst(self):
        """This machine as a ``kaldifst.StdVectorFst``."""
        import kaldifst

        with _temp_file() as path:
            Path(path).write_bytes(self.to_bytes())
            return kaldifst.StdVectorFst.read(path)

    @classmethod
    def from_kaldifst(cls, fst, what: str = "FST") -> "Fst":
        import kaldifst

        if not isinstance(fst, kaldifst.StdVectorFst):
            fst = kaldifst.StdVectorFst(fst)
        with _temp_file() as path:
            fst.write(path)
            return cls.from_bytes(Path(path).read_bytes(), what)


class _temp_file:
    """A temporary file name, removed afterwards (OpenFst's bindings read and write paths)."""

    def __enter__(self) -> str:
        fd, self.path = tempfile.mkstemp(suffix=".fst")
        os.close(fd)
        return self.path

    def __exit__(self, *exc) -> None:
        os.unlink(self.path)


@numba.njit(cache=True)
def _put32(buf, pos, value_bits):
    for k in range(4):
        buf[pos + k] = (value_bits >> (8 * k)) & 0xFF


@numba.njit(cache=True)
def _write_body(buf, final, arc_start, ilabel, olabel, weight, dst):
    fbits = final.view(np.int32)
    wbits = weight.view(np.int32)
    pos = 0
    for s in range(len(final)):
        _put32(buf, pos, fbits[s])
        n = arc_start[s + 1] - arc_start[s]
        for k in range(8):
            buf[pos + 4 + k] = (n >> (8 * k)) & 0xFF
        pos += 12
        for a in range(arc_start[s], arc_start[s + 1]):
            _put32(buf, pos, ilabel[a])
            _put32(buf, pos + 4, olabel[a])
            _put32(buf, pos + 8, wbits[a])
            _put32(buf, pos + 12, dst[a])
            pos += 16


@numba.njit(cache=True)
def _get32(buf, pos):
    v = np.int64(0)
    for k in range(4):
        v |= np.int64(buf[pos + k]) << (8 * k)
    if v >= 2 ** 31:
        v -= 2 ** 32
    return v


@numba.njit(cache=True)
def _read_body(buf, final, arc_start, ilabel, olabel, weight, dst):
    fbits = final.view(np.int32)
    wbits = weight.view(np.int32)
    pos = 0
    a = 0
    E = len(dst)
    for s in range(len(final)):
        if pos + 12 > len(buf):
            return False
        fbits[s] = _get32(buf, pos)
        n = np.int64(0)
        for k in range(8):
            n |= np.int64(buf[pos + 4 + k]) << (8 * k)
        pos += 12
        arc_start[s] = a
        if n < 0 or a + n > E:
            return False
        for _ in range(n):
            ilabel[a] = _get32(buf, pos)
            olabel[a] = _get32(buf, pos + 4)
            wbits[a] = _get32(buf, pos + 8)
            dst[a] = _get32(buf, pos + 12)
            pos += 16
            a += 1
    arc_start[len(final)] = a
    return a == E
