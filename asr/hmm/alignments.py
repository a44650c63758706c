"""Frame-level alignments on disk (Kaldi ark/scp) and CTM output.

An alignment stores two int32 vectors per utterance: the transition state (phone,
HMM state) of each frame (``ali.tstate.ark``, what the triphone tree is built from) and
the pdf of each frame (``ali.pdf.ark``, the DNN's training target, Kaldi's ali-to-pdf).
"""

from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np

from asr.arkio import write_ark_scp
from asr.utils import AsrError, atomic_open


def write_alignments(out_dir: str | Path, tstates: dict[str, np.ndarray], pdfs: dict[str, np.ndarray]) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in (("tstate", tstates), ("pdf", pdfs)):
        write_ark_scp(out_dir / f"ali.{name}.ark", out_dir / f"ali.{name}.scp", data, dtype=np.int32)


def read_alignments(ali_dir: str | Path, kind: str = "pdf") -> dict[str, np.ndarray]:
    """utt -> (T,) int array of ``kind`` ('pdf' or 'tstate') per frame."""
    scp = Path(ali_dir) / f"ali.{kind}.scp"
    if not scp.exists():
        raise AsrError(f"missing alignments {scp}; run the alignment stage first")
    return {k: np.asarray(v, dtype=np.int64) for k, v in kaldiio.load_scp(str(scp)).items()}


def segments(labels: np.ndarray, starts: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """Runs of a per-frame label as (label, first frame, last frame).

    ``starts`` (T,) bool forces a new run (two consecutive copies of the same unit).
    """
    T = len(labels)
    if T == 0:
        return []
    change = np.ones(T, dtype=bool)
    change[1:] = labels[1:] != labels[:-1]
    if starts is not None:
        change |= starts
    b = np.flatnonzero(change)
    e = np.append(b[1:], T) - 1
    return [(int(labels[i]), int(i), int(j)) for i, j in zip(b, e)]


def write_ctm(path: str | Path, entries: dict[str, list[tuple[str, int, int]]], frame_shift: float = 0.01,
              confidences: dict[str, list[float]] | None = None) -> None:
    """Kaldi CTM: ``utt 1 start duration token [confidence]``, times in seconds."""
    with atomic_open(path) as f:
        for utt in sorted(entries):
            for k, (tok, b, e) in enumerate(entries[utt]):
                conf = f" {confidences[utt][k]:.2f}" if confidences else ""
                f.write(f"{utt} 1 {b * frame_shift:.2f} {(e - b + 1) * frame_shift:.2f} {tok}{conf}\n")
