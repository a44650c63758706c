"""LM training sentences from Project Gutenberg books, normalised like LibriSpeech's LM text.

LibriSpeech's transcripts (and its LM corpus, also Gutenberg books) are upper case,
words of letters and apostrophes, no punctuation. A book becomes such sentences:

* the Project Gutenberg header and licence (outside ``*** START OF ...`` / ``*** END OF``)
  are dropped;
* paragraphs are joined and cut into sentences at ``.``, ``!``, ``?``, ``;`` and ``:``;
* each sentence is upper-cased, hyphens and dashes become spaces, every character other
  than a letter or an apostrophe ends a word; apostrophes at a word's edges are dropped
  (quotes), inside it they stay (DON'T, O'CLOCK);
* numbers are spelled out as LibriSpeech's readers say them (``asr.lang.numbers``: 150 ->
  ONE HUNDRED AND FIFTY, 1861 -> EIGHTEEN SIXTY ONE, 21st -> TWENTY FIRST); a sentence
  with digits left over (3/4, 2.5) is dropped, and so is one of fewer than 2 words.

The archive is read member by member, so memory does not grow with it.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

from asr.lang.numbers import expand_numbers
from asr.utils import AsrError

_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG", re.I | re.M)
_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG", re.I | re.M)
_SENTENCE_END = re.compile(r"[!?;:]+|\.+(?!\d)")  # "2.5" is no sentence end
_NON_WORD = re.compile(r"[^A-Z']+")


def strip_gutenberg(text: str) -> str:
    """The book between the START and END markers (the whole text if they are missing)."""
    m = _START.search(text)
    if m:
        text = text[text.find("\n", m.end()) + 1:]
    m = _END.search(text)
    if m:
        text = text[:m.start()]
    return text


def book_sentences(text: str, min_words: int = 2) -> Iterator[str]:
    """Normalised sentences (space-separated upper-case words) of one book's text."""
    body = strip_gutenberg(text)
    for para in re.split(r"\n\s*\n", body):
        flat = " ".join(para.split())
        for sent in _SENTENCE_END.split(flat):
            if any(c.isdigit() for c in sent):
                sent = expand_numbers(sent)
                if any(c.isdigit() for c in sent):
                    continue
            up = sent.upper().replace("-", " ")
            words = [w.strip("'") for w in _NON_WORD.split(up)]
            words = [w for w in words if w]
            if len(words) >= min_words:
                yield " ".join(words)


def archive_sentences(archive: str | Path) -> Iterator[str]:
    """Sentences of every ``.txt`` book in a tar archive (e.g. gutenberg_lm_text.tar.gz)."""
    archive = Path(archive)
    if not archive.exists():
        raise AsrError(f"book archive {archive} not found")
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if not member.isfile() or not member.name.endswith(".txt"):
                    continue
                f = tar.extractfile(member)
                if f is None:
                    continue
                text = f.read().decode("utf-8", errors="replace")
                yield from book_sentences(text)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise AsrError(f"{archive}: not a readable tar archive ({e})") from None
