"""Decoding jobs: audio files or data dirs in, transcripts / CTM / WER out.

A data dir is scored like Kaldi's local/score.sh + utils/best_wer.sh: acoustic scores
are computed once, the search is run for each (LM weight, insertion penalty) pair of a
grid (LMWT = 1 / acoustic scale, as in Kaldi), every pair is scored, and the best is
reported together with the pair that produced it. ``tune_on`` instead picks the pair on
another (dev) decode directory and applies only that pair.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import logging
import multiprocessing as mp
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr.acoustic import (feature_chunks, features_for_files, features_of_samples, file_samples, frame_shift_s,
                          load_model, model_dirs, score_utterances)
from asr.audio import is_long_file
from asr.datadir import DataDir
from asr.decode.decoder import DecodeResult, Decoder, DecoderConfig, result_from_lattice
from asr.decode.lattice import write_lattices
from asr.features import load_features
from asr.graph.compile import DecodingGraph
from asr.hmm.alignments import write_ctm
from asr.score import ErrorCounts, read_text, score_texts
from asr.utils import AsrError, atomic_open, ensure_dir, read_json, write_text_atomic
from asr.vad import VadConfig, detect_speech

log = logging.getLogger(__name__)


def graph_path(model_dir: str | Path) -> Path:
    """The decoding graph of a model dir (an ensemble uses its first member's)."""
    return model_dirs(model_dir)[0] / "graph.npz"


@dataclass
class Grammar:
    """Decode with another grammar than the model dir's graph (``asr decode --words / --lm``):
    a word list's uniform loop or an ARPA LM, compiled once and cached in the model dir."""

    words: str | None = None
    lm: str | None = None
    graph_opts: dict = dataclasses.field(default_factory=dict)  # the [graph] options (sil_prob)

    def __bool__(self) -> bool:
        return bool(self.words or self.lm)


def load_graph(model_dir: str | Path, model, grammar: Grammar | None = None) -> DecodingGraph:
    """The model dir's graph (or ``grammar``'s), checked to be compiled for this very model
    (its fingerprint) and to use only transition ids the model has."""
    from asr.model_dir import fingerprint

    owner = model_dirs(model_dir)[0]
    if grammar:
        from asr.graph.mkgraph import grammar_graph

        return grammar_graph(owner, model, grammar.words, grammar.lm, grammar.graph_opts)
    path = graph_path(model_dir)
    graph = DecodingGraph.load(path)
    if graph.model_fingerprint != fingerprint(owner):
        why = ("it records no model fingerprint (made by an older asr)" if not graph.model_fingerprint
               else "the model was retrained or replaced after the graph was compiled")
        raise AsrError(f"{path} was not compiled for the model in {owner} ({why}); "
                       f"rerun `asr mkgraph {owner} --lang LANG`")
    num_tids = len(model.trans.log_probs)
    if len(graph.label_tid) > 1 and graph.label_tid.max() >= num_tids:
        raise AsrError(f"{path}: uses transition ids the model in {owner} does not have; rerun asr mkgraph")
    return graph


@dataclass
class Hypothesis:
    words: list[str]
    ctm: list[tuple[str, int, int]]  # (word, first frame, last frame)
    cost: float
    confidence: list[float] = dataclasses.field(default_factory=list)  # per word, in [0, 1]
    frame_shift: float = 0.01  # seconds per frame of ``ctm``
    nbest: list[tuple[list[str], float]] = dataclasses.field(default_factory=list)  # (words, -cost)


def _pron_ids(model) -> tuple[dict[int, list[tuple[int, ...]]], set[int]]:
    """Word id -> pronunciations as phone-id tuples, and the silence phone ids (cached on the model)."""
    cached = getattr(model, "_pron_ids", None)
    if cached is None:
        prons = {model.words.id(w): [tuple(model.phones.id(p) for p in pron) for pron in alts]
                 for w, alts in model.lexicon.prons.items() if w in model.words}
        cached = (prons, {model.phones.id(model.silence_phone)})
        model._pron_ids = cached
    return cached


def word_confidences(res: DecodeResult, acoustic_scale: float, word_penalty: float,
                     label_frames: list[int], arc_frames: np.ndarray | None = None) -> list[float]:
    """Per best-path word, the lattice posterior of that word near where the best path has it.

    Arc posteriors come from forward-backward over the lattice at the decoding scale; a
    word's confidence sums the posteriors of the lattice arcs carrying the same word that
    start within a few frames of the best path's own arc for it (Kaldi's lattice-to-ctm-conf
    measures the same over sausage bins).
    """
    lat = res.lattice
    if not res.word_ids:
        return []
    post = lat.arc_posteriors(acoustic_scale, word_penalty)
    frames = lat.arc_frames() if arc_frames is None else arc_frames
    conf = []
    for w, f in zip(res.word_ids, label_frames):
        near = (lat.olabel == w) & (np.abs(frames - f) <= 3)
        conf.append(float(min(1.0, post[near].sum())))
    return conf


def _to_hyp(res: DecodeResult, model, acoustic_scale: float, word_penalty: float, nbest: int = 1) -> Hypothesis:
    """Words, frame spans and lattice confidences of a decode made at these scales (and its n-best list)."""
    from asr.decode.word_align import word_spans

    lat, path = res.lattice, res.path
    arc_frames = lat.arc_frames()
    frames = arc_frames[path]
    label_frames = [int(f) for f, o in zip(frames, lat.olabel[path]) if o > 0]
    prons, silence = _pron_ids(model)
    spans = word_spans(res.tids, res.word_ids, model.trans, prons, silence)
    if spans is None:  # a partial path: fall back to where the word labels are
        ends = label_frames[1:] + [len(res.tids)]
        spans = [(b, max(b, e - 1)) for b, e in zip(label_frames, ends)]
    words = [model.words.sym(w) for w in res.word_ids]
    hyp = Hypothesis(words, [(w, b, e) for w, (b, e) in zip(words, spans)], res.cost,
                     word_confidences(res, acoustic_scale, word_penalty, label_frames, arc_frames), frame_shift_s(model))
    if nbest > 1:
        hyp.nbest = [([model.words.sym(w) for w in seq], -cost)
                     for seq, cost in lat.nbest(nbest, acoustic_scale, word_penalty)]
    return hyp


# Worker state for process pools (inherited through fork).
_WORK: dict = {}


def _decode_chunk(utts: list[str]) -> dict[str, DecodeResult]:
    dec = _WORK["decoder"]
    return {u: _decode_one(dec, _WORK["scores"][u], u) for u in utts}


def _decode_one(dec: Decoder, scores: np.ndarray, utt: str) -> DecodeResult:
    """One utterance through the decoder; its errors name the utterance."""
    try:
        return dec.decode(scores)
    except AsrError as e:
        raise AsrError(f"{utt}: {e}") from None


def decode_scores(dec: Decoder, scores: dict[str, np.ndarray], nj: int = 1,
                  desc: str = "decode") -> dict[str, DecodeResult]:
    """Decode every utterance (best path and lattice); ``nj`` > 1 splits the utterances over
    that many processes, with the same results as one."""
    _WORK.update(decoder=dec, scores=scores)
    utts = sorted(scores, key=lambda u: -len(scores[u]))
    results: dict[str, DecodeResult] = {}
    if nj > 1 and len(utts) > 1:
        # The shortest utterance first, here: the workers then inherit numba's compiled
        # decoder instead of each loading it again (half a second apiece).
        results[utts[-1]] = _decode_one(dec, scores[utts[-1]], utts[-1])
        utts = utts[:-1]
    chunks = [c for c in (utts[i::max(nj, 1) * 4] for i in range(max(nj, 1) * 4)) if c]
    bar = tqdm(total=len(utts) + len(results), initial=len(results), desc=desc, unit="utt", leave=False,
               disable=None)
    try:
        if nj > 1:
            with mp.get_context("fork").Pool(nj) as pool:
                for part in pool.imap_unordered(_decode_chunk, chunks):
                    results.update(part)
                    bar.update(len(part))
        else:
            for chunk in chunks:
                part = _decode_chunk(chunk)
                results.update(part)
                bar.update(len(part))
    finally:
        bar.close()
        _WORK.clear()
    return results


def iter_decode_files(model_dir: str | Path, paths: list[str], cfg: DecoderConfig | None = None, nj: int = 1,
                      device: str = "cpu", scp_entries: bool = False, nbest: int = 1, vad: str | None = None,
                      vad_cfg: VadConfig | None = None, grammar: Grammar | None = None, mc_samples: int = 0):
    """Transcribe audio files (any rate, any channel count), yielding ``(path, Hypothesis)`` in
    input order as each is done (with ``nj`` > 1 after all are scored, decoded in parallel).
    With ``scp_entries`` the paths are wav.scp values (see :func:`features_for_files`).
    Files longer than ``asr.audio.LONG_FILE_SECONDS`` are decoded chunk by chunk
    (:func:`decode_long_file`), so memory does not grow with their duration. ``nbest`` > 1
    adds each file's n best word sequences from its lattice. ``vad`` ("trim" or "segment")
    first finds the speech (:mod:`asr.vad`): the silence around it is cut off, or each speech
    segment is decoded on its own and the words joined on the file's clock. ``grammar``
    replaces the model dir's graph. ``mc_samples`` > 0: Monte-Carlo dropout scoring."""
    if vad not in (None, "trim", "segment"):
        raise AsrError(f"--vad must be trim or segment, got {vad!r}")
    model = load_model(model_dir, device)
    set_mc_dropout(model, mc_samples, model_dir)
    graph = load_graph(model_dir, model, grammar)
    cfg = cfg or model.decoder
    bar = tqdm(total=len(paths), desc="decode", unit="file", leave=False, disable=None if len(paths) > 1 else True)
    dec = Decoder(graph, model.trans.log_probs, cfg)
    long = {p for p in paths if not scp_entries and is_long_file(p)}
    if (long or vad == "segment") and nbest > 1:
        raise AsrError(f"{sorted(long or paths)[0]}: n-best lists are not made for files decoded in pieces "
                       f"(long files, --vad segment)")
    acs, pen = cfg.acoustic_scale, cfg.word_penalty
    if nj <= 1 or long or vad:
        for p in paths:
            if p in long:
                hyp = decode_long_file(model, dec, p)
            elif vad:
                hyp = decode_speech(model, dec, p, vad, vad_cfg, scp_entries, nbest)
            else:
                scores = _file_scores(model, dec, features_for_files(model, [p], scp_entries)[p], p)
                hyp = _to_hyp(_decode_one(dec, scores, p), model, acs, pen, nbest)
            bar.update(1)
            yield p, hyp
    else:
        feats = features_for_files(model, paths, scp_entries)
        feats = adapted_features(model, dec, feats, {p: p for p in feats}, nj)  # each file its own speaker
        res = decode_scores(dec, {p: model.scores(f) for p, f in feats.items()}, nj)
        for p in paths:
            bar.update(1)
            yield p, _to_hyp(res[p], model, acs, pen, nbest)
    bar.close()


def set_mc_dropout(model, samples: int, model_dir: str | Path) -> None:
    """Monte-Carlo dropout: ``samples`` dropout draws per utterance, averaged (0: off). The
    draws are seeded, so a decode is reproducible."""
    if samples <= 0:
        return
    if not hasattr(model, "mc_samples"):
        raise AsrError(f"{model_dir}: Monte-Carlo dropout needs a hybrid network (DNN) model")
    import torch  # only networks get here: GMM decoding stays torch-free
    for m in getattr(model, "members", [model]):
        if hasattr(m, "with_torch_network"):
            m.with_torch_network()  # dropout is sampled by torch's network, not the numpy forward
    nets = [m.net for m in getattr(model, "members", [model])]
    if not any(isinstance(m, torch.nn.Dropout) or getattr(m, "dropout", 0) for n in nets for m in n.modules()):
        raise AsrError(f"{model_dir}: the network has no dropout to sample (trained with dropout = 0)")
    torch.manual_seed(0)
    model.mc_samples = samples


def adapted_features(model, dec: Decoder, feats: dict[str, np.ndarray], utt2spk: dict[str, str],
                     nj: int = 1, name: str = "") -> dict[str, np.ndarray]:
    """Features for the final pass: unchanged, or for a speaker-adapted model (Kaldi's
    decode_fmllr.sh) fMLLR-transformed per speaker, estimated from the best paths of a
    speaker-independent pass and re-estimated from each adapted pass (``fmllr_passes``
    estimates in all; the first pass at ``first_beam`` / ``first_max_active``)."""
    if not getattr(model, "speaker_adaptive", False):
        return feats
    cfg = dec.cfg
    # (quiet for one file or chunk: a long file would repeat it every 30 s)
    log.log(logging.INFO if len(feats) > 1 else logging.DEBUG,
            "%s: speaker-independent pass, then fMLLR for each of %d speaker(s) (%d estimate(s)), then the "
            "adapted pass", name or "decode", len(set(utt2spk.get(u, u) for u in feats)), cfg.fmllr_passes)
    first = dec.with_config(dataclasses.replace(cfg, beam=cfg.first_beam or cfg.beam,
                                                max_active=cfg.first_max_active or cfg.max_active))
    scorer, adapted = model.first_pass(), feats
    for k in range(cfg.fmllr_passes):
        what = "speaker-independent pass" if k == 0 else f"adapted pass {k}"
        best = decode_scores(first if k == 0 else dec, score_utterances(scorer, adapted), nj,
                             desc=f"decode {name} ({what})")
        adapted, _ = model.adapt(feats, {u: r.pdfs for u, r in best.items()}, utt2spk)
        scorer = model
    return adapted


def _file_scores(model, dec: Decoder, feats: np.ndarray, name: str) -> np.ndarray:
    """(T, pdfs) scores of one file or chunk (a SAT model adapts to it: its own speaker)."""
    return model.scores(adapted_features(model, dec, {name: feats}, {name: name})[name])


def _decode_pieces(model, dec: Decoder, path: str, pieces, nbest: int = 1) -> Hypothesis:
    """Decode ``(start seconds, (T, D) features)`` pieces of one file and join their words with
    the times shifted to the file's clock (n-best lists only for a single piece)."""
    shift = frame_shift_s(model)
    joined = Hypothesis(words=[], ctm=[], cost=0.0, confidence=[], frame_shift=shift)
    for start, feats in pieces:
        name = f"{path} at {start:.1f} s"
        scores = _file_scores(model, dec, feats, name)
        hyp = _to_hyp(_decode_one(dec, scores, name), model, dec.cfg.acoustic_scale, dec.cfg.word_penalty, nbest)
        offset = int(round(start / shift))
        joined.words += hyp.words
        joined.ctm += [(w, b + offset, e + offset) for w, b, e in hyp.ctm]
        joined.confidence += hyp.confidence
        joined.cost += hyp.cost
        joined.nbest = hyp.nbest  # (callers ask for n-best lists of one piece only)
    return joined


def decode_long_file(model, dec: Decoder, path: str, chunk_seconds: float = 30.0) -> Hypothesis:
    """Decode a long recording as consecutive chunks cut in pauses (``asr.audio.read_audio_chunks``),
    each with its own CMVN, and join the words with their times shifted to the file's clock."""
    return _decode_pieces(model, dec, path, feature_chunks(model, path, chunk_seconds))


def decode_speech(model, dec: Decoder, path: str, mode: str, vad_cfg: VadConfig | None = None,
                  scp_entry: bool = False, nbest: int = 1) -> Hypothesis:
    """Decode only the speech of one file (:func:`asr.vad.detect_speech`): ``trim`` keeps the
    first to the last speech segment, ``segment`` decodes each segment alone. A file without
    speech gives no words."""
    samples, rate = file_samples(model, path, scp_entry), model.feature.sample_rate
    segs = detect_speech(samples, rate, vad_cfg)
    if mode == "trim" and segs:
        segs = [(segs[0][0], segs[-1][1])]
    pieces = ((b / rate, features_of_samples(model, samples[b:e], path)) for b, e in segs)
    return _decode_pieces(model, dec, path, pieces, nbest)


def decode_files(model_dir: str | Path, paths: list[str], cfg: DecoderConfig | None = None,
                 nj: int = 1, device: str = "cpu", scp_entries: bool = False, nbest: int = 1) -> dict[str, Hypothesis]:
    """Transcribe audio files; key = the path as given."""
    return dict(iter_decode_files(model_dir, paths, cfg, nj, device, scp_entries, nbest))


def lmwt_grid(min_lmwt: float = 7, max_lmwt: float = 17, penalties: tuple[float, ...] = (0.0, 0.5, 1.0),
              base: DecoderConfig | None = None, step: float = 1.0) -> list[DecoderConfig]:
    """Kaldi score.sh's grid: acoustic scale 1/LMWT for LMWT = MIN, MIN+step, .., MAX, times each
    insertion penalty (CTC log-posteriors want LMWT around 1-3, hence fractional steps)."""
    base = base or DecoderConfig()
    if not all(math.isfinite(x) for x in (min_lmwt, max_lmwt, step, *penalties)) or \
            step <= 0 or min_lmwt <= 0 or max_lmwt < min_lmwt:
        raise AsrError(f"LMWT grid needs 0 < MIN <= MAX and STEP > 0, got {min_lmwt}:{max_lmwt}:{step}")
    n = int(round((max_lmwt - min_lmwt) / step)) + 1
    lmwts = [round(min_lmwt + k * step, 6) for k in range(n)]
    return [dataclasses.replace(base, acoustic_scale=1.0 / lmwt, word_penalty=pen)
            for lmwt in lmwts for pen in penalties]


def _tag(cfg: DecoderConfig) -> str:
    return f"{round(1.0 / cfg.acoustic_scale, 4):g}_{cfg.word_penalty:g}"


def models_fingerprint(model_dir: str | Path) -> str:
    """The model dir's fingerprint (an ensemble's members', comma-separated): decode dirs record it."""
    from asr.model_dir import fingerprint

    return ",".join(fingerprint(d) for d in model_dirs(model_dir))


LATTICE_FILE = "lat.npz"  # a decode dir's lattices (asr.decode.lattice's binary format)


def decode_dir_lattices(decode_dir: str | Path) -> Path:
    """The lattice archive of a decode dir: lat.npz, or lat.gz (Kaldi text) as older decodes wrote."""
    for name in (LATTICE_FILE, "lat.gz"):
        if (Path(decode_dir) / name).exists():
            return Path(decode_dir) / name
    raise AsrError(f"{decode_dir}: no {LATTICE_FILE} (or lat.gz) to rescore; decode with asr decode --data first")


def check_tuned_with_same_model(tune_on: str | Path, model_fp: str) -> None:
    """A setting read on a dev dir applies only to the model that decoded it (a dir decoded
    before a retraining is an error, not a silent reuse)."""
    info_path = Path(tune_on) / "decode_info.json"
    tuned_fp = read_json(info_path).get("model_fingerprint") if info_path.exists() else None
    if tuned_fp is not None and tuned_fp != model_fp:
        raise AsrError(f"{tune_on} was decoded with another model (fingerprint {tuned_fp}, this one {model_fp}); "
                       "decode that set again with this model before tuning on it")


def _configs(grid: list[DecoderConfig] | None, tune_on: str | Path | None, default: DecoderConfig,
             model_fp: str) -> list[DecoderConfig]:
    """The settings to score: the one tuned on a dev decode dir (of this very model: a dir
    decoded with another, e.g. before retraining, is an error), else the grid, else ``default``."""
    if tune_on is not None:
        best_cfg_path = Path(tune_on) / "best_config.json"
        if not best_cfg_path.exists():
            raise AsrError(f"{tune_on}: no best_config.json to tune on; score that set with a grid first")
        check_tuned_with_same_model(tune_on, model_fp)
        return [DecoderConfig.from_dict(read_json(best_cfg_path))]
    return grid or [default]


def _model_and_graph(model_dir: str | Path, grammar: "Grammar | None", mc_samples: int):
    model = load_model(model_dir)
    set_mc_dropout(model, mc_samples, model_dir)
    return model, load_graph(model_dir, model, grammar)


# (model dir, grammar, mc_samples) -> (model, graph) while :func:`keep_loaded` is active
_loaded: dict = {}


@contextlib.contextmanager
def keep_loaded(model_dir: str | Path, grammar: "Grammar | None" = None, mc_samples: int = 0):
    """Inside the block, :func:`decode_data_dir` calls for this model load it and its graph once
    (several data dirs decoded in one process: a dev grid, then test with its setting)."""
    key = (str(model_dir), repr(grammar), mc_samples)
    _loaded[key] = _model_and_graph(model_dir, grammar, mc_samples)
    try:
        yield
    finally:
        _loaded.pop(key, None)


def decode_data_dir(model_dir: str | Path, data_dir: str | Path, out_dir: str | Path,
                    grid: list[DecoderConfig] | None = None, tune_on: str | Path | None = None,
                    nj: int = 1, grammar: Grammar | None = None, mc_samples: int = 0) -> ErrorCounts | None:
    """Decode a data dir into ``out_dir``: lat.npz (lattices), hyp.txt, ctm, and wer.txt when it
    has a text file.

    The search runs once; a grid of (LMWT, penalty) settings is then scored from the
    lattices (Kaldi's score.sh), the search itself running at the grid's middle setting.

    Args:
        grid: configs to try; the best WER among them is reported (Kaldi best_wer).
        tune_on: a decode dir already scored with a grid; its best config is used alone.
        grammar: decode with a word list's loop or another LM instead of the model dir's graph.
        mc_samples: > 0: score with Monte-Carlo dropout, averaging this many dropout draws.
    """
    model, graph = (_loaded.get((str(model_dir), repr(grammar), mc_samples))
                    or _model_and_graph(model_dir, grammar, mc_samples))
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    data = DataDir.load(data_dir, require_text=False)
    has_ref = (data_dir / "text").exists()
    t0 = time.time()
    feats = load_features(data_dir, model.pipeline)
    model_fp = models_fingerprint(model_dir)
    cfgs = _configs(grid, tune_on, model.decoder, model_fp)
    if len(cfgs) > 1 and not has_ref:
        raise AsrError(f"{data_dir}: a grid needs reference text to pick from")
    search_cfg = cfgs[len(cfgs) // 2]
    dec = Decoder(graph, model.trans.log_probs, search_cfg)
    t1 = time.time()
    feats = adapted_features(model, dec, feats, data.utt2spk, nj, data_dir.name)
    t_search = time.time() - t1
    scores = score_utterances(model, feats)
    t_scores = time.time() - t0 - t_search
    t1 = time.time()
    first = decode_scores(dec, scores, nj, desc=f"decode {data_dir.name}")
    t_search += time.time() - t1
    not_final = {u for u, r in first.items() if not r.reached_final}
    if not_final:
        log.warning("%d utterance(s) reached no final state; their best partial paths are used: %s",
                    len(not_final), " ".join(sorted(not_final)[:10]))
    audio_seconds = sum(len(s) for s in scores.values()) * frame_shift_s(model)
    info = {"model": str(model_dir), "model_fingerprint": model_fp, "data": str(data_dir), "utterances": len(scores),
            "audio_seconds": round(audio_seconds, 2), "score_seconds": round(t_scores, 2),
            "search_seconds": round(t_search, 2), "nj": nj, "rtf": round(t_search / max(audio_seconds, 1e-9), 4),
            "search_config": search_cfg.to_dict(),
            **({"grammar": {"words": grammar.words, "lm": grammar.lm}} if grammar else {}),
            **({"mc_dropout_samples": mc_samples} if mc_samples else {})}
    return score_lattices(model, data_dir, out_dir, {u: r.lattice for u, r in first.items()}, cfgs, info, tune_on, t0,
                          searched=(search_cfg, first))


def score_lattices(model, data_dir: str | Path, out_dir: str | Path, lattices: dict, cfgs: list[DecoderConfig],
                   info: dict, tune_on: str | Path | None = None, t0: float | None = None,
                   searched: tuple[DecoderConfig, dict[str, DecodeResult]] | None = None) -> ErrorCounts | None:
    """Best paths of the lattices at each (LMWT, penalty) of ``cfgs``, scored against the data
    dir's text (if any); the best is written to ``out_dir`` with the lattices themselves.

    Args:
        info: what the caller measured (decode_info.json's other fields).
        searched: the search's config and results: reused when the best setting is the search's.
    """
    t0 = time.time() if t0 is None else t0
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    t2 = time.time()
    ref = read_text(data_dir / "text") if (data_dir / "text").exists() else None
    best = None
    ensure_dir(out_dir)
    settings = [(c.acoustic_scale, c.word_penalty) for c in cfgs]
    grid_words = {u: lat.best_words_grid(settings) for u, lat in lattices.items()}
    sym = model.words.symbols
    for k, cfg in enumerate(cfgs):
        hyp = {u: [sym[w] for w in words[k]] for u, words in grid_words.items()}
        if ref is None:
            best = (None, cfg, hyp, [])
            break
        counts, per_utt = score_texts(ref, hyp)
        if len(cfgs) > 1:
            write_text_atomic(out_dir / "scoring" / f"wer_{_tag(cfg)}", counts.kaldi_line() + "\n")
        if best is None or counts.errors < best[0].errors:
            best = (counts, cfg, hyp, per_utt)
    t_rescore = time.time() - t2
    counts, cfg, hyp, per_utt = best
    if searched is not None and (searched[0].acoustic_scale, searched[0].word_penalty) == (cfg.acoustic_scale,
                                                                                          cfg.word_penalty):
        res = searched[1]
    else:
        res = {u: result_from_lattice(lat, cfg.acoustic_scale, cfg.word_penalty) for u, lat in lattices.items()}
    write_lattices(out_dir / LATTICE_FILE, lattices)
    hyps = {u: _to_hyp(r, model, cfg.acoustic_scale, cfg.word_penalty) for u, r in res.items()}
    write_ctm(out_dir / "ctm", {u: h.ctm for u, h in hyps.items()}, frame_shift_s(model),
              {u: h.confidence for u, h in hyps.items()})
    write_text_atomic(out_dir / "best_config.json", json.dumps(cfg.to_dict(), indent=1) + "\n")
    info = dict(info, decode_seconds=round(time.time() - t0, 2), rescore_seconds=round(t_rescore, 2),
                configs_tried=len(cfgs), lattice_arcs=int(sum(lat.num_arcs for lat in lattices.values())),
                config=cfg.to_dict(),
                selection="tuned on " + str(tune_on) if tune_on else ("best of grid on this set" if len(cfgs) > 1
                                                                      else "fixed"))
    comments = []
    if len(cfgs) > 1:
        comments.append(f"# best of {len(cfgs)} settings (Kaldi best_wer): LMWT {round(1 / cfg.acoustic_scale, 4):g}, "
                        f"word insertion penalty {cfg.word_penalty:g}")
    elif tune_on:
        comments.append(f"# LMWT {round(1 / cfg.acoustic_scale, 4):g}, penalty {cfg.word_penalty:g} tuned on {tune_on}")
    write_decode_outputs(out_dir, hyp, counts, per_utt, info, comments)
    return counts


def lmrescore_dir(model_dir: str | Path, old_lm: str | Path, new_lm: str | Path, data_dir: str | Path,
                  in_dir: str | Path, out_dir: str | Path, grid: list[DecoderConfig] | None = None,
                  tune_on: str | Path | None = None, prune_beam: float = 6.0) -> ErrorCounts | None:
    """Kaldi's lmrescore.sh: the lattices of ``in_dir`` (decoded with ``old_lm`` in the graph)
    rescored with ``new_lm``, then scored like a decode (grid, or the setting tuned on a dev dir)."""
    from asr.decode.lattice import iter_lattices
    from asr.decode.lm_rescore import ArpaScorer, rescore_lattice

    t0 = time.time()
    model = load_model(model_dir)
    lat_path = decode_dir_lattices(in_dir)
    searched = DecoderConfig.from_dict(read_json(Path(in_dir) / "best_config.json"))
    old, new = ArpaScorer(old_lm, model.words), ArpaScorer(new_lm, model.words)
    # A state-level lattice split by word history grows tens of times: prune it first
    # (``prune_beam``, at the setting chosen on the first pass) and the result after
    # (the search's lattice beam), one utterance at a time, so memory stays bounded.
    rescored = {}
    arcs_in = arcs_out = 0
    for u, lat in tqdm(iter_lattices(lat_path), desc=f"rescore {Path(in_dir).name}", unit="utt", leave=False,
                       disable=None):
        try:
            if prune_beam > 0:
                lat = lat.pruned(searched.acoustic_scale, prune_beam, searched.word_penalty)
            arcs_in += lat.num_arcs
            big = rescore_lattice(lat, old, new)
            rescored[u] = big.pruned(searched.acoustic_scale, searched.lattice_beam, searched.word_penalty)
            arcs_out += rescored[u].num_arcs
        except AsrError as e:
            raise AsrError(f"{lat_path}: {u}: {e}") from None
    model_fp = models_fingerprint(model_dir)
    cfgs = _configs(grid, tune_on, searched, model_fp)
    info = {"model": str(model_dir), "model_fingerprint": model_fp, "data": str(data_dir),
            "utterances": len(rescored), "rescored_from": str(in_dir), "prune_beam": prune_beam,
            "lattice_arcs_rescored": arcs_in, "lattice_arcs_after": arcs_out,
            "old_lm": str(old_lm), "new_lm": str(new_lm), "lm_rescore_seconds": round(time.time() - t0, 2)}
    return score_lattices(model, data_dir, out_dir, rescored, cfgs, info, tune_on, t0)


def write_decode_outputs(out_dir: Path, hyp: dict[str, list[str]], counts: ErrorCounts | None, per_utt: list[str],
                         info: dict, comments: list[str], unit: str = "word") -> None:
    """hyp.txt, and with a reference wer.txt + per_utt.txt; then decode_info.json (the results table's row).

    ``unit`` names what was scored: "word" (%WER), or "phone" / "char" for token error rates.
    """
    with atomic_open(out_dir / "hyp.txt") as f:
        for u in sorted(hyp):
            f.write(" ".join([u] + hyp[u]) + "\n")
    info["unit"] = unit
    if counts is not None:
        label = "WER" if unit == "word" else {"phone": "PER", "char": "CER"}.get(unit, "TER")
        line = counts.kaldi_line().replace("%WER", f"%{label}", 1)
        write_text_atomic(out_dir / "wer.txt", "\n".join([line, counts.ser_line()] + comments) + "\n")
        write_text_atomic(out_dir / "per_utt.txt", "\n".join(per_utt) + "\n")
        info.update(wer=counts.wer, ser=counts.ser, errors=counts.errors, ref_words=counts.ref_words,
                    ins=counts.ins, dels=counts.dels, subs=counts.subs)
        log.info("%s: %s (%s)", out_dir, line, info.get("selection", ""))
    write_text_atomic(out_dir / "decode_info.json", json.dumps(info, indent=1) + "\n")

