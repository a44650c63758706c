"""Frame-level alignments on disk (Kaldi ark/scp) and CTM output.

An alignment stores two int32 vectors per utterance, as Kaldi does: the transition id
taken out of each frame (``ali.tid.ark``: Kaldi's alignment format; it gives the phone,
the HMM state and where each phone ends, which is what the triphone tree is built from)
and the pdf of each frame (``ali.pdf.ark``, the DNN's training target, Kaldi's ali-to-pdf).
Transition ids depend only on the lang dir's topology, so any model of that lang reads them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import kaldiio
import numpy as np

from asr.arkio import write_ark_scp
from asr.utils import AsrError, atomic_open, atomic_path, ensure_dir


TREE_FINGERPRINT = "tree_fingerprint"  # which tree's pdf ids an alignment dir holds
FMLLR_TRANSFORMS = "fmllr.npz"  # a SAT model's per-speaker transforms (Kaldi's trans.*)


def tree_fingerprint(trans, ctx, phones) -> str:
    """SHA-256 (16 hex digits) of what gives pdf ids their meaning: the HMM topology, the
    context dependency (tree) and the phone set. A GMM and the DNNs trained on its tied
    states share it; a model with another tree does not."""
    key = json.dumps({"topology": trans.topo.to_dict(), "context": ctx.to_dict(), "phones": list(phones.symbols)},
                     sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def write_alignments(out_dir: str | Path, tids: dict[str, np.ndarray], pdfs: dict[str, np.ndarray],
                     tree: str | None = None) -> None:
    """ali.{tid,pdf}.{ark,scp}, and with ``tree`` the :func:`tree_fingerprint` they belong to."""
    out_dir = Path(out_dir)
    ensure_dir(out_dir)
    for name, data in (("tid", tids), ("pdf", pdfs)):
        write_ark_scp(out_dir / f"ali.{name}.ark", out_dir / f"ali.{name}.scp", data, dtype=np.int32)
    if tree is not None:
        with atomic_open(out_dir / TREE_FINGERPRINT) as f:
            f.write(tree + "\n")


def check_alignment_tree(ali_dir: str | Path, tree: str, model_dir: str | Path) -> None:
    """An AsrError if ``ali_dir`` records another tree than ``tree`` (that of ``model_dir``):
    its pdf ids would mean other states. Older alignment dirs without the record pass."""
    path = Path(ali_dir) / TREE_FINGERPRINT
    if path.is_file() and path.read_text(encoding="utf-8", errors="replace").strip() != tree:
        raise AsrError(f"{ali_dir} was made with another tree than {model_dir}'s (its pdf ids mean other "
                       f"states); realign with `asr align {model_dir} --data DATA --out {ali_dir}`")


def read_alignments(ali_dir: str | Path, kind: str = "pdf", dtype=np.int64) -> dict[str, np.ndarray]:
    """utt -> (T,) int array of ``kind`` ('pdf' or 'tid') per frame (``dtype``: int32 halves
    the memory of a large corpus's alignment)."""
    scp = Path(ali_dir) / f"ali.{kind}.scp"
    if not scp.exists():
        raise AsrError(f"missing alignments {scp}; run the alignment stage first")
    return {k: np.asarray(v, dtype=dtype) for k, v in kaldiio.load_scp(str(scp)).items()}


def phone_segments(tids: np.ndarray, trans) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phones of a transition-id alignment (Kaldi's ali-to-phones with lengths).

    Args:
        tids: (T,) transition id taken out of each frame.
        trans: the :class:`~asr.hmm.topology.TransitionModel` of the lang dir.
    Returns:
        phones (N,), first frames (N,), last frames (N,) of the N phone instances.
    """
    tids = np.asarray(tids, dtype=np.int64)
    if len(tids) and (tids.min() < 0 or tids.max() >= trans.num_tids):
        raise AsrError(f"transition ids outside 0..{trans.num_tids - 1}: the alignment is of another topology")
    tstate = trans.tid_tstate[tids]
    phone = trans.tstate_phone[tstate]
    ends = trans.tid_dest[tids] == trans.phone_num_states[phone]  # the frame leaves its phone
    last = np.flatnonzero(ends)
    if len(tids) and (len(last) == 0 or last[-1] != len(tids) - 1):
        raise AsrError("alignment does not end with a phone exit")
    first = np.concatenate([[0], last[:-1] + 1]) if len(last) else last
    return phone[last], first, last


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


def to_seconds(spans: dict[str, list[tuple[str, int, int]]], shift: float) -> dict[str, list[tuple[str, float, float]]]:
    """Frame intervals as ``(label, start s, end s)``."""
    return {name: [(lab, b * shift, (e + 1) * shift) for lab, b, e in t] for name, t in spans.items()}


def save_transforms(path: str | Path, transforms: dict[str, np.ndarray]) -> None:
    """Speaker -> (D, D+1) transforms as one npz (speaker ids in an array, never as code)."""
    spks = sorted(transforms)
    with atomic_path(Path(path)) as tmp:
        np.savez(tmp, speakers=np.array(spks), transforms=np.stack([transforms[s] for s in spks]))


def load_transforms(path: str | Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as z:
            return {str(s): z["transforms"][i] for i, s in enumerate(z["speakers"])}
    except (OSError, KeyError, ValueError) as e:
        raise AsrError(f"{path}: not a file of fMLLR transforms ({e})") from None
