"""Word times of a decoded path from its transition ids and the lexicon.

Determinization moves a word's output label away from its first phone (it is emitted
where the word becomes certain: ``EIGHT`` and ``EIGHTY`` share phones, so their labels
come late), so the frame of the label is not the word's start. As Kaldi's
lattice-align-words-lexicon does, the path's phones are cut at each phone's exit
transition and matched to the words' pronunciations in order, skipping the optional
silences between them.
"""

from __future__ import annotations

import numpy as np

from asr.hmm.topology import TransitionModel


def phone_segments(tids: np.ndarray, trans: TransitionModel) -> list[tuple[int, int, int]]:
    """(phone, first frame, last frame) of each phone instance along a path of tids (T,)."""
    tids = np.asarray(tids, dtype=np.int64)
    if len(tids) == 0:
        return []
    phone = trans.tstate_phone[trans.tid_tstate[tids]]
    exits = trans.tid_dest[tids] == trans.phone_num_states[phone]
    out, start = [], 0
    for t in np.flatnonzero(exits):
        out.append((int(phone[t]), start, int(t)))
        start = int(t) + 1
    if start < len(tids):  # a partial path (no final state reached) ends inside a phone
        out.append((int(phone[start]), start, len(tids) - 1))
    return out


def word_spans(tids: np.ndarray, word_ids: list[int], trans: TransitionModel,
               prons: dict[int, list[tuple[int, ...]]], silence: set[int]) -> list[tuple[int, int]] | None:
    """(first frame, last frame) of each word of ``word_ids``, or None if the phones do not
    spell the words (a partial path)."""
    phones = phone_segments(tids, trans)
    seq = [p for p, _, _ in phones]
    spans = []
    i = 0
    for w in word_ids:
        while True:
            hit = next((p for p in prons.get(w, []) if tuple(seq[i:i + len(p)]) == p), None)
            if hit is not None:
                spans.append((phones[i][1], phones[i + len(hit) - 1][2]))
                i += len(hit)
                break
            if i < len(seq) and seq[i] in silence:
                i += 1
                continue
            return None
    return spans
