"""Pronunciation lexicon and symbol tables (Kaldi's words.txt / phones.txt)."""

from __future__ import annotations

from pathlib import Path

from asr.utils import AsrError, atomic_open, read_utf8

EPS = "<eps>"


class SymbolTable:
    """Bidirectional symbol <-> integer map; id 0 is ``<eps>`` as in OpenFst tables."""

    def __init__(self, symbols: list[str]):
        if not symbols or symbols[0] != EPS:
            symbols = [EPS] + [s for s in symbols if s != EPS]
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        if len(self.index) != len(self.symbols):
            raise AsrError("symbol table has duplicate symbols")

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, sym: str) -> bool:
        return sym in self.index

    def id(self, sym: str) -> int:
        try:
            return self.index[sym]
        except KeyError:
            raise AsrError(f"unknown symbol {sym!r}") from None

    def sym(self, i: int) -> str:
        return self.symbols[i]

    def write(self, path: str | Path) -> None:
        with atomic_open(path) as f:
            for i, s in enumerate(self.symbols):
                f.write(f"{s} {i}\n")

    @classmethod
    def read(cls, path: str | Path) -> "SymbolTable":
        path = Path(path)
        if not path.exists():
            raise AsrError(f"missing symbol table {path}")
        pairs = []
        for n, line in enumerate(read_utf8(path).splitlines(), 1):
            parts = line.split()
            if len(parts) != 2 or not (parts[1].isascii() and parts[1].isdigit()):
                raise AsrError(f"{path}:{n}: expected 'symbol id', got {line!r}")
            pairs.append((int(parts[1]), parts[0]))
        pairs.sort()
        if [i for i, _ in pairs] != list(range(len(pairs))):
            raise AsrError(f"{path}: ids must be 0..N-1 without gaps")
        return cls([s for _, s in pairs])


class Lexicon:
    """Word -> list of pronunciations (each a list of phone names)."""

    def __init__(self, prons: dict[str, list[list[str]]]):
        self.prons = prons

    @classmethod
    def read(cls, path: str | Path) -> "Lexicon":
        """Read Kaldi ``lexicon.txt``: ``WORD PH1 PH2 ...`` (repeated lines = alternatives)."""
        path = Path(path)
        if not path.exists():
            raise AsrError(f"missing lexicon {path}")
        prons: dict[str, list[list[str]]] = {}
        for n, line in enumerate(read_utf8(path).splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise AsrError(f"{path}:{n}: word {parts[0]!r} has no pronunciation")
            pron = parts[1:]
            alts = prons.setdefault(parts[0], [])
            if pron not in alts:
                alts.append(pron)
        if not prons:
            raise AsrError(f"{path}: empty lexicon")
        return cls(prons)

    def write(self, path: str | Path) -> None:
        with atomic_open(path) as f:
            for word in sorted(self.prons):
                for pron in self.prons[word]:
                    f.write(f"{word} {' '.join(pron)}\n")

    def words(self) -> list[str]:
        return sorted(self.prons)

    def phones(self) -> list[str]:
        return sorted({p for alts in self.prons.values() for pron in alts for p in pron})

    def __contains__(self, word: str) -> bool:
        return word in self.prons
