"""CTC output tokens: phones (through the lexicon) or characters; index 0 is the blank.

Phone tokens are the lang's *base* phones (``AA_B`` -> ``AA``, word-position tags
dropped) without silence: CTC's blank absorbs pauses. A transcript becomes tokens by the
first pronunciation of each word. Character tokens are the characters of the training
transcripts plus ``|`` after every word, so a greedy character output splits back into
words, and a word's spelling in the decoding graph is its characters and ``|``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asr.lang.lexicon import Lexicon
from asr.tree.questions import base_phone
from asr.utils import AsrError, read_utf8, write_text_atomic

BLANK = "<blk>"
WORD_SEP = "|"
KINDS = ("phone", "char")


@dataclass
class TokenSet:
    """Token inventory; ``symbols[0]`` is the blank."""

    kind: str
    symbols: list[str]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AsrError(f"token kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.symbols or self.symbols[0] != BLANK:
            raise AsrError(f"token 0 must be the blank {BLANK}")
        self.index = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    @classmethod
    def for_phones(cls, lexicon: Lexicon, silence_phones: list[str]) -> "TokenSet":
        """Base phones of the lexicon's pronunciations, silence excluded."""
        sil = {base_phone(p) for p in silence_phones}
        phones = {base_phone(p) for w in lexicon.words() for pron in lexicon.prons[w] for p in pron}
        return cls("phone", [BLANK] + sorted(phones - sil))

    @classmethod
    def for_chars(cls, transcripts: list[list[str]]) -> "TokenSet":
        chars = {c for words in transcripts for w in words for c in w}
        if WORD_SEP in chars:
            raise AsrError(f"transcripts contain the word separator {WORD_SEP!r}; character tokens cannot use it")
        return cls("char", [BLANK, WORD_SEP] + sorted(chars))

    def encode(self, words: list[str], lexicon: Lexicon | None = None, utt: str = "") -> list[int]:
        """Token ids of a transcript (phones: first pronunciation of each word; silence dropped)."""
        out: list[int] = []
        if self.kind == "char":
            for w in words:
                for c in w:
                    if c not in self.index:
                        raise AsrError(f"utterance {utt}: character {c!r} of {w!r} is not a token")
                    out.append(self.index[c])
                out.append(self.index[WORD_SEP])
            return out
        if lexicon is None:
            raise AsrError("phone tokens need the lexicon to encode a transcript")
        for w in words:
            if w not in lexicon.prons:
                raise AsrError(f"utterance {utt}: word {w!r} is not in the lexicon")
            out += [self.index[b] for b in map(base_phone, lexicon.prons[w][0]) if b in self.index]
        return out

    def decode(self, ids: list[int]) -> list[str]:
        """Token ids (blanks already removed) as output units: words for chars, phones otherwise."""
        syms = [self.symbols[i] for i in ids if i != 0]
        if self.kind == "phone":
            return syms
        return [w for w in "".join(syms).split(WORD_SEP) if w]

    def write(self, path: str | Path) -> None:
        write_text_atomic(path, "".join(f"{s} {i}\n" for i, s in enumerate(self.symbols)))

    @classmethod
    def read(cls, path: str | Path, kind: str) -> "TokenSet":
        path = Path(path)
        if not path.exists():
            raise AsrError(f"missing token list {path}")
        syms = [line.split()[0] for line in read_utf8(path).splitlines() if line.strip()]
        return cls(kind, syms)
