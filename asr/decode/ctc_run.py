"""Graph-free decoding of a CTC model: greedy or prefix beam search over its tokens.

The output is in the model's units: phones for a phone-token model (scored as a phone
error rate against the reference's lexicon pronunciations), words for a character model
(scored as WER). Lexicon + LM decoding of the same model is ``decode_data_dir`` with the
model's graph.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr.decode.ctc_search import greedy_search, prefix_beam_nbest
from asr.acoustic import feature_chunks, features_for_files, frame_shift_s, load_model
from asr.audio import is_long_file
from asr.decode.run import write_decode_outputs
from asr.features import load_features
from asr.score import ErrorCounts, read_text, score_texts
from asr.utils import AsrError, ensure_dir

log = logging.getLogger(__name__)
SEARCHES = ("greedy", "prefix")


def _search(model, feats: dict[str, np.ndarray], search: str, beam: int, nbest: int,
            desc: str) -> dict[str, list[tuple[list[str], float]]]:
    """key -> the ``nbest`` best outputs (greedy: one) in the model's units, with log-probabilities."""
    if getattr(model, "kind", None) != "ctc":
        raise AsrError(f"--search {search} needs a CTC model dir")
    if search not in SEARCHES:
        raise AsrError(f"--search must be one of {', '.join(SEARCHES)} or graph, got {search!r}")
    if search == "greedy" and nbest > 1:
        raise AsrError("--nbest needs --search prefix (greedy search has one path)")
    out = {}
    for u, f in tqdm(feats.items(), desc=desc, unit="utt", leave=False, disable=None):
        lp = np.asarray(model.log_posteriors(f))
        if search == "greedy":
            out[u] = [(model.tokens.decode(greedy_search(lp)), float(lp.max(axis=1).sum()))]
        else:
            out[u] = [(model.tokens.decode(ids), score) for ids, score in prefix_beam_nbest(lp, max(beam, nbest))[:nbest]]
    return out


def search_files(model_dir: str | Path, paths: list[str], search: str = "greedy", beam: int = 8,
                 nbest: int = 1, device: str = "cpu", scp_entries: bool = False
                 ) -> dict[str, list[tuple[list[str], float]]]:
    """Token (phone model) or word (character model) transcripts of audio files: the
    ``nbest`` best of each (greedy: one) with their log-probabilities. With ``scp_entries``
    the paths are wav.scp values (commands allowed)."""
    model = load_model(model_dir, device)
    out = {}
    for p in paths:
        if not scp_entries and is_long_file(p):
            out[p] = _search_long_file(model, p, search, beam, nbest)
        else:
            out.update(_search(model, features_for_files(model, [p], scp_entries), search, beam, nbest, search))
    return out


def _search_long_file(model, path: str, search: str, beam: int, nbest: int) -> list[tuple[list[str], float]]:
    """A long recording searched chunk by chunk (cut in pauses, as the graph decoder does), so
    memory does not grow with its duration; the chunks' best outputs are joined (one result:
    an n-best list of a whole long file would be the chunks' lists multiplied out)."""
    if nbest > 1:
        raise AsrError(f"{path}: n-best lists are not made for long files searched in chunks")
    units, score = [], 0.0
    for start, feats in feature_chunks(model, path):
        (result,) = _search(model, {f"{path} at {start:.1f} s": feats}, search, beam, 1, search).values()
        units += result[0][0]
        score += result[0][1]
    return [(units, score)]


def search_data_dir(model_dir: str | Path, data_dir: str | Path, out_dir: str | Path, search: str = "greedy",
                    beam: int = 8) -> ErrorCounts | None:
    """Decode a data dir into ``out_dir`` (hyp.txt; wer.txt with %PER or %WER when it has text)."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    model = load_model(model_dir)
    t0 = time.time()
    feats = load_features(data_dir, model.pipeline)
    hyp = {u: best[0][0] for u, best in _search(model, feats, search, beam, 1, f"{search} {data_dir.name}").items()}
    seconds = time.time() - t0
    audio_seconds = sum(len(f) for f in feats.values()) * frame_shift_s(model) / model.subsample
    counts, per_utt, unscored = None, [], []
    unit = "phone" if model.tokens.kind == "phone" else "word"
    if (data_dir / "text").exists():
        ref = read_text(data_dir / "text")
        if unit == "phone":
            ref, unscored = phone_references(model, ref)
        skip = set(unscored)
        counts, per_utt = score_texts(ref, {u: h for u, h in hyp.items() if u not in skip})
    ensure_dir(out_dir)
    info = {"model": str(model_dir), "data": str(data_dir), "utterances": len(feats),
            "audio_seconds": round(audio_seconds, 2), "decode_seconds": round(seconds, 2), "configs_tried": 1,
            "rtf": round(seconds / max(audio_seconds, 1e-9), 4), "config": {"search": search, "beam": beam},
            "selection": f"{search} search, no LM"}
    comments = [f"# CTC {search} search, no lexicon or LM"]
    if unscored:
        info["unscored_utterances"] = unscored
        comments.append(f"# {len(unscored)} utterance(s) left out of the {unit} error rate: a reference word "
                        "has no pronunciation in the model's lexicon")
        log.warning("%s: %d utterance(s) have reference words without a pronunciation (e.g. %s); "
                    "the %s error rate leaves them out", data_dir, len(unscored), unscored[0], unit)
    write_decode_outputs(out_dir, hyp, counts, per_utt, info, comments, unit)
    return counts


def phone_references(model, ref: dict[str, list[str]]) -> tuple[dict[str, list[str]], list[str]]:
    """Reference transcripts as phone tokens (each word's first pronunciation), and the
    utterances that cannot be scored in phones because a word has no pronunciation (an OOV
    of the model's lexicon: its phones are unknown, not empty). ``model``: a phone CTC model
    (``tokens``, ``lexicon``)."""
    tok, lexicon = model.tokens, model.lexicon
    phones, unscored = {}, []
    for u, words in ref.items():
        if all(w in lexicon.prons for w in words):
            phones[u] = [tok.symbols[i] for i in tok.encode(words, lexicon, u)]
        else:
            unscored.append(u)
    return phones, unscored
