"""CTC forced alignment: token and word start/end times (tokens.ctm, words.ctm of a data dir).

CTC outputs are peaky: a token usually occupies one or two output frames and blanks fill
the rest, so a token's span is where the best path emits it, and a word spans from its
first token's first frame to its last token's last frame.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr.datadir import DataDir
from asr.decode.ctc_search import forced_align
from asr.acoustic import frame_shift_s, load_model
from asr.features import load_features
from asr.hmm.alignments import to_seconds, write_ctm
from asr.utils import AsrError, ensure_dir

log = logging.getLogger(__name__)


def ctc_spans(model, feats: np.ndarray, words: list[str], utt: str = "") -> dict[str, list[tuple[str, int, int]]]:
    """Word and token intervals ``(label, first, last output frame)`` of one utterance."""
    tok = model.tokens
    per_word = [tok.encode([w], model.lexicon, utt) for w in words]
    spans = forced_align(np.asarray(model.log_posteriors(feats)), [i for w in per_word for i in w], utt)
    out_words, k = [], 0
    for w, w_ids in zip(words, per_word):
        if w_ids:
            out_words.append((w, spans[k][1], spans[k + len(w_ids) - 1][2]))
        k += len(w_ids)
    return {"words": out_words, "tokens": [(tok.symbols[i], b, e) for i, b, e in spans]}


def align_ctc_data_dir(model_dir: str | Path, data_dir: str | Path, out_dir: str | Path
                       ) -> dict[str, tuple[dict[str, list[tuple[str, float, float]]], float]]:
    """Align every utterance of ``data_dir`` to its transcript into tokens.ctm and words.ctm;
    returns utt -> (tiers in seconds, duration) of the aligned ones."""
    model = load_model(model_dir)
    data = DataDir.load(data_dir)
    feats = load_features(data_dir, model.pipeline)
    spans, failed = {}, []
    for u in tqdm(data.utts(), desc="ctc align", unit="utt", leave=False, disable=None):
        try:
            spans[u] = ctc_spans(model, feats[u], data.text[u], u)
        except AsrError as e:
            failed.append(u)
            log.debug("%s", e)
    if failed:
        log.warning("%d utterance(s) could not be aligned (too short for their transcript): %s", len(failed),
                    " ".join(failed[:10]))
    out_dir = Path(out_dir)
    ensure_dir(out_dir)
    shift = frame_shift_s(model)
    write_ctm(out_dir / "tokens.ctm", {u: s["tokens"] for u, s in spans.items()}, shift)
    write_ctm(out_dir / "words.ctm", {u: s["words"] for u, s in spans.items()}, shift)
    log.info("ctc-aligned %d of %d utterances into %s", len(spans), len(data.utts()), out_dir)
    input_shift = model.feature.frame_shift_ms / 1000
    return {u: (to_seconds(s, shift), len(feats[u]) * input_shift) for u, s in spans.items()}
