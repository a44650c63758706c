"""Word error rate scoring by Levenshtein alignment, with Kaldi/sclite-style output."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from asr.datadir import read_text_file
from asr.utils import AsrError, atomic_open, log



def align_words(ref: list[str], hyp: list[str]) -> list[tuple[str | None, str | None, str]]:
    """Minimum-edit-distance alignment of ``ref`` and ``hyp`` word lists.

    Returns (ref_word | None, hyp_word | None, op) tuples with op ``C`` (correct), ``S``
    (substitution), ``D`` (deletion: hyp word None) or ``I`` (insertion: ref word None).
    Ties are broken deterministically: at each position C/S is preferred, then D, then I.
    """
    n, m = len(ref), len(hyp)
    # cost[i][j]: edit distance between the suffixes ref[i:] and hyp[j:]; (n+1, m+1).
    # Suffix costs let the trace run forwards, so ties resolve at the earliest position
    # (A B vs A X C aligns as C S I rather than C I S).
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n):
        cost[i][m] = n - i
    for j in range(m):
        cost[n][j] = m - j
    for i in range(n - 1, -1, -1):
        ri, nxt, row = ref[i], cost[i + 1], cost[i]
        for j in range(m - 1, -1, -1):
            row[j] = min(nxt[j + 1] + (ri != hyp[j]), nxt[j] + 1, row[j + 1] + 1)
    out: list[tuple[str | None, str | None, str]] = []
    i = j = 0
    while i < n or j < m:
        c = cost[i][j]
        if i < n and j < m and c == cost[i + 1][j + 1] + (ref[i] != hyp[j]):
            out.append((ref[i], hyp[j], "C" if ref[i] == hyp[j] else "S"))
            i, j = i + 1, j + 1
        elif i < n and c == cost[i + 1][j] + 1:
            out.append((ref[i], None, "D"))
            i += 1
        else:
            out.append((None, hyp[j], "I"))
            j += 1
    return out


@dataclass
class ErrorCounts:
    """Corpus-level error counts."""

    ref_words: int = 0
    ins: int = 0
    dels: int = 0
    subs: int = 0
    sentences: int = 0
    sentence_errors: int = 0

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.subs

    @property
    def wer(self) -> float:
        """WER in percent; 0 for no reference words and no errors, inf for errors on none."""
        if self.ref_words == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return 100.0 * self.errors / self.ref_words

    @property
    def ser(self) -> float:
        """Sentence error rate in percent (0 with no sentences)."""
        return 100.0 * self.sentence_errors / self.sentences if self.sentences else 0.0

    def add(self, other: "ErrorCounts") -> None:
        """Accumulate ``other`` into these counts."""
        self.ref_words += other.ref_words
        self.ins += other.ins
        self.dels += other.dels
        self.subs += other.subs
        self.sentences += other.sentences
        self.sentence_errors += other.sentence_errors

    def kaldi_line(self) -> str:
        """Kaldi compute-wer format: ``%WER 10.61 [ 82 / 773, 4 ins, 10 del, 68 sub ]``."""
        return (
            f"%WER {self.wer:.2f} [ {self.errors} / {self.ref_words}, "
            f"{self.ins} ins, {self.dels} del, {self.subs} sub ]"
        )

    def ser_line(self) -> str:
        """Kaldi compute-wer format: ``%SER 40.77 [ 53 / 130 ]``."""
        return f"%SER {self.ser:.2f} [ {self.sentence_errors} / {self.sentences} ]"


def _counts_of(alignment: list[tuple[str | None, str | None, str]]) -> ErrorCounts:
    ops = [op for _, _, op in alignment]
    e = ErrorCounts(
        ref_words=sum(op != "I" for op in ops),
        ins=ops.count("I"),
        dels=ops.count("D"),
        subs=ops.count("S"),
        sentences=1,
    )
    e.sentence_errors = int(e.errors > 0)
    return e


def per_utt_lines(utt: str, alignment: list[tuple[str | None, str | None, str]]) -> list[str]:
    """Kaldi wer_per_utt_details-style lines: ref / hyp / op rows in aligned columns, then
    ``#csid`` with the counts of correct, substituted, inserted and deleted words."""
    refs = [r if r is not None else "***" for r, _, _ in alignment]
    hyps = [h if h is not None else "***" for _, h, _ in alignment]
    ops = [op for _, _, op in alignment]
    widths = [max(len(a), len(b), len(c)) for a, b, c in zip(refs, hyps, ops)]

    def row(label: str, toks: list[str]) -> str:
        cols = "  ".join(t.ljust(w) for t, w in zip(toks, widths))
        return f"{utt} {label:<4} {cols}".rstrip()

    csid = [ops.count(x) for x in "CSID"]
    return [
        row("ref", refs),
        row("hyp", hyps),
        row("op", ops),
        f"{utt} #csid {' '.join(map(str, csid))}",
    ]


def score_texts(
    ref: dict[str, list[str]], hyp: dict[str, list[str]]
) -> tuple[ErrorCounts, list[str]]:
    """Score ``hyp`` against ``ref`` (utterance -> words).

    Returns the totals and the per-utterance detail lines (4 per utterance, sorted by
    utterance). A reference utterance with no hypothesis counts as all deletions (warned);
    a hypothesis utterance not in the reference is an AsrError.
    """
    extra = sorted(set(hyp) - set(ref))
    if extra:
        raise AsrError(
            f"hypothesis has {len(extra)} utterance(s) not in the reference, e.g. '{extra[0]}'"
        )
    missing = sorted(set(ref) - set(hyp))
    if missing:
        log.warning(
            "%d reference utterance(s) have no hypothesis and count as deletions, e.g. '%s'",
            len(missing), missing[0],
        )
    if not ref:
        raise AsrError("the reference has no utterances: nothing to score")
    if not any(ref.values()):
        raise AsrError("the reference has no words: a word error rate over 0 words is undefined")
    total = ErrorCounts()
    lines: list[str] = []
    for utt in sorted(ref):
        ali = align_words(ref[utt], hyp.get(utt, []))
        total.add(_counts_of(ali))
        lines.extend(per_utt_lines(utt, ali))
    return total, lines


def read_text(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a Kaldi ``text`` file (``utt word1 word2 ...``); an utterance may have no words."""
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"text file not found: {path}")
    return read_text_file(path)


def write_scoring(
    ref_path: str | os.PathLike, hyp_path: str | os.PathLike, out_dir: str | os.PathLike
) -> ErrorCounts:
    """Score ``hyp_path`` against ``ref_path``; write ``out_dir/wer.txt`` (%WER and %SER
    lines) and ``out_dir/per_utt.txt``. Returns the totals."""
    ref, hyp = read_text(ref_path), read_text(hyp_path)
    try:
        counts, lines = score_texts(ref, hyp)
    except AsrError as e:
        raise AsrError(f"{hyp_path}: {e}") from e
    out_dir = Path(out_dir)
    with atomic_open(out_dir / "wer.txt") as f:
        f.write(f"{counts.kaldi_line()}\n{counts.ser_line()}\n")
    with atomic_open(out_dir / "per_utt.txt") as f:
        f.writelines(line + "\n" for line in lines)
    return counts
