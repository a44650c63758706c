"""Decoding jobs: audio files or data dirs in, transcripts / CTM / WER out.

A data dir is scored like Kaldi's local/score.sh + utils/best_wer.sh: acoustic scores
are computed once, the search is run for each (LM weight, insertion penalty) pair of a
grid (LMWT = 1 / acoustic scale, as in Kaldi), every pair is scored, and the best is
reported together with the pair that produced it. ``tune_on`` instead picks the pair on
another (dev) decode directory and applies only that pair.
"""

from __future__ import annotations

import dataclasses
import json
import math
import logging
import multiprocessing as mp
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr.audio import read_audio, read_wav_scp_entry
from asr.datadir import DataDir
from asr.decode.viterbi import DecodeResult, DecoderConfig, ViterbiDecoder
from asr.features import compute_features, load_features, transform
from asr.graph.compile import DecodingGraph
from asr.gmm.model import GmmHmm
from asr.hmm.alignments import write_ctm
from asr.score import ErrorCounts, read_text, score_texts
from asr.utils import AsrError, atomic_open, ensure_dir, one_line, read_json, write_text_atomic

log = logging.getLogger(__name__)


def model_dirs(spec: str | Path) -> list[Path]:
    """``DIR`` or ``DIR1,DIR2,...`` (an ensemble of hybrid models) as paths."""
    dirs = [Path(p) for p in str(spec).split(",") if p.strip()]
    if not dirs:
        raise AsrError(f"no model dir given (got {str(spec)!r}); give DIR or DIR1,DIR2,... for an ensemble")
    return dirs


def load_model(model_dir: str | Path, device: str = "cpu"):
    """Load any model dir by its declared type; ``A,B,...`` loads an ensemble of DNN dirs.

    A damaged or incomplete model dir (truncated arrays, a model.json with missing or
    mistyped fields) is an AsrError naming it.
    """
    try:
        return _load_model(model_dir, device)
    except AsrError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, OSError, EOFError, zipfile.BadZipFile) as e:
        what = f"missing entry {e}" if isinstance(e, KeyError) else one_line(e)
        raise AsrError(f"{model_dir}: damaged or incomplete model dir ({type(e).__name__}: {what})") from None


def _load_model(model_dir: str | Path, device: str):
    from asr.nnet.model import DnnHmm, Ensemble

    dirs = model_dirs(model_dir)
    if len(dirs) > 1:
        return Ensemble([DnnHmm.load(d, device) for d in dirs])
    meta_path = dirs[0] / "model.json"
    if not meta_path.exists():
        raise AsrError(f"{model_dir} is not a model dir (no model.json)")
    meta = read_json(meta_path, "model.json")
    kind = meta.get("type") if isinstance(meta, dict) else None
    if kind == "gmm":
        return GmmHmm.load(model_dir)
    if kind == "dnn":
        return DnnHmm.load(model_dir, device)
    if kind == "ctc":
        from asr.nnet.ctc_model import CtcModel

        return CtcModel.load(model_dir, device)
    raise AsrError(f"{model_dir}: unknown model type {kind!r}")


def frame_shift_s(model) -> float:
    """Seconds per frame of the model's scores (a CTC model stacks ``subsample`` input frames)."""
    return model.feature.frame_shift_ms / 1000 * getattr(model, "subsample", 1)


def graph_path(model_dir: str | Path) -> Path:
    """The decoding graph of a model dir (an ensemble uses its first member's)."""
    return model_dirs(model_dir)[0] / "graph.npz"


def load_graph(model_dir: str | Path, model) -> DecodingGraph:
    """The model dir's graph, checked to be compiled for this very model (its fingerprint)
    and to use only transition ids the model has."""
    from asr.model_dir import fingerprint

    path = graph_path(model_dir)
    graph = DecodingGraph.load(path)
    owner = model_dirs(model_dir)[0]
    if graph.model_fingerprint != fingerprint(owner):
        why = ("it records no model fingerprint (made by an older asr)" if not graph.model_fingerprint
               else "the model was retrained or replaced after the graph was compiled")
        raise AsrError(f"{path} was not compiled for the model in {owner} ({why}); "
                       f"rerun `asr mkgraph {owner} --lang LANG`")
    num_tids = len(model.trans.log_probs)
    if graph.num_arcs and graph.arc_tid.max() >= num_tids:
        raise AsrError(f"{path}: uses transition ids the model in {owner} does not have; rerun asr mkgraph")
    return graph


@dataclass
class Hypothesis:
    words: list[str]
    ctm: list[tuple[str, int, int]]  # (word, first frame, last frame)
    cost: float
    confidence: list[float] = dataclasses.field(default_factory=list)  # per word, in [0, 1]
    frame_shift: float = 0.01  # seconds per frame of ``ctm``


def frame_confidence(scores: np.ndarray, pdfs: np.ndarray, acoustic_scale: float) -> np.ndarray:
    """(T,) posterior of the best path's pdf per frame: softmax over all pdfs of the scaled scores.

    The frame-level stand-in for lattice posteriors (Kaldi's lattice-to-ctm-conf measures
    the same thing over competing paths): ~1 where the path's state clearly wins the frame.
    """
    z = acoustic_scale * np.asarray(scores, dtype=np.float64)
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return np.exp(logp[np.arange(len(pdfs)), pdfs])


def _to_hyp(res: DecodeResult, model, scores: np.ndarray | None = None, graph: DecodingGraph | None = None,
            acoustic_scale: float = 0.1) -> Hypothesis:
    """Words, frame spans, and (given the scores and graph) per-word confidences of a decode."""
    words = [model.words.sym(w.word) for w in res.words]
    conf: list[float] = []
    if scores is not None and graph is not None and len(res.words):
        frame_conf = frame_confidence(scores, graph.node_pdf[res.states], acoustic_scale)
        conf = [float(frame_conf[w.start:w.end + 1].mean()) for w in res.words]
    return Hypothesis(words, [(model.words.sym(w.word), w.start, w.end) for w in res.words], res.cost, conf,
                      frame_shift_s(model))


# Worker state for process pools (inherited through fork).
_WORK: dict = {}


def _decode_chunk(args: tuple[list[str], list[dict]]) -> dict[tuple[int, str], DecodeResult]:
    utts, cfgs = args
    out = {}
    for k, cfg in enumerate(cfgs):
        dec = ViterbiDecoder(_WORK["graph"], _WORK["trans"], DecoderConfig.from_dict(cfg))
        for u in utts:
            out[(k, u)] = _decode_one(dec, _WORK["scores"][u], u)
    return out


def _decode_one(dec: ViterbiDecoder, scores: np.ndarray, utt: str) -> DecodeResult:
    """One utterance through the decoder; its errors name the utterance."""
    try:
        return dec.decode(scores)
    except AsrError as e:
        raise AsrError(f"{utt}: {e}") from None


def decode_scores(graph: DecodingGraph, trans_log_probs: np.ndarray, scores: dict[str, np.ndarray],
                  cfgs: list[DecoderConfig], nj: int = 1, desc: str = "decode") -> list[dict[str, DecodeResult]]:
    """Decode every utterance with every config; returns one utt -> result dict per config."""
    _WORK.update(graph=graph, trans=trans_log_probs, scores=scores)
    utts = sorted(scores, key=lambda u: -len(scores[u]))
    chunks = [utts[i::max(nj, 1) * 4] for i in range(max(nj, 1) * 4)]
    jobs = [(c, [cfg.to_dict() for cfg in cfgs]) for c in chunks if c]
    results: list[dict[str, DecodeResult]] = [dict() for _ in cfgs]
    bar = tqdm(total=len(utts) * len(cfgs), desc=desc, unit="utt", leave=False, disable=None)
    if nj > 1:
        with mp.get_context("fork").Pool(nj) as pool:
            for part in pool.imap_unordered(_decode_chunk, jobs):
                for (k, u), r in part.items():
                    results[k][u] = r
                bar.update(len(part))
    else:
        for job in jobs:
            part = _decode_chunk(job)
            for (k, u), r in part.items():
                results[k][u] = r
            bar.update(len(part))
    bar.close()
    _WORK.clear()
    return results


def features_for_files(model, paths: list[str], scp_entries: bool = False) -> dict[str, np.ndarray]:
    """Features of standalone audio files (each its own speaker: per-utterance CMVN).

    ``paths`` are file paths, or with ``scp_entries`` wav.scp values (which may be commands
    ending in ``|``); a path from the command line is never run by a shell.
    """
    out = {}
    read = read_wav_scp_entry if scp_entries else read_audio
    for p in paths:
        samples, _ = read(p, target_rate=model.feature.sample_rate)
        raw = compute_features(samples, model.feature)
        if raw.shape[0] == 0:
            raise AsrError(f"{p}: too short to decode (less than one {model.feature.frame_length_ms:g} ms frame)")
        out[p] = transform(raw, model.pipeline)
    return out


def iter_decode_files(model_dir: str | Path, paths: list[str], cfg: DecoderConfig | None = None, nj: int = 1,
                      device: str = "cpu", scp_entries: bool = False):
    """Transcribe audio files (any rate, any channel count), yielding ``(path, Hypothesis)`` in
    input order as each is done (with ``nj`` > 1 after all are scored, decoded in parallel).
    With ``scp_entries`` the paths are wav.scp values (see :func:`features_for_files`).
    Files longer than ``asr.audio.LONG_FILE_SECONDS`` are decoded chunk by chunk
    (:func:`decode_long_file`), so memory does not grow with their duration."""
    model = load_model(model_dir, device)
    graph = load_graph(model_dir, model)
    cfg = cfg or model.decoder
    bar = tqdm(total=len(paths), desc="decode", unit="file", leave=False, disable=None if len(paths) > 1 else True)
    dec = ViterbiDecoder(graph, model.trans.log_probs, cfg)
    long = {p for p in paths if not scp_entries and _is_long(p)}
    if nj <= 1 or long:
        for p in paths:
            if p in long:
                hyp = decode_long_file(model, graph, dec, p, cfg.acoustic_scale)
            else:
                scores = model.scores(features_for_files(model, [p], scp_entries)[p])
                hyp = _to_hyp(_decode_one(dec, scores, p), model, scores, graph, cfg.acoustic_scale)
            bar.update(1)
            yield p, hyp
    else:
        scores = {p: model.scores(f) for p, f in features_for_files(model, paths, scp_entries).items()}
        res = decode_scores(graph, model.trans.log_probs, scores, [cfg], nj)[0]
        for p in paths:
            bar.update(1)
            yield p, _to_hyp(res[p], model, scores[p], graph, cfg.acoustic_scale)
    bar.close()


def _is_long(path: str) -> bool:
    from asr.audio import LONG_FILE_SECONDS, audio_info

    frames, rate = audio_info(path)
    return frames > LONG_FILE_SECONDS * rate


def decode_long_file(model, graph: DecodingGraph, dec: ViterbiDecoder, path: str, acoustic_scale: float,
                     chunk_seconds: float = 30.0) -> Hypothesis:
    """Decode a long recording as consecutive chunks cut in pauses (``asr.audio.read_audio_chunks``),
    each with its own CMVN, and join the words with their times shifted to the file's clock."""
    from asr.audio import read_audio_chunks

    shift = frame_shift_s(model)
    joined = Hypothesis(words=[], ctm=[], cost=0.0, confidence=[], frame_shift=shift)
    for start, samples in read_audio_chunks(path, model.feature.sample_rate, chunk_seconds):
        raw = compute_features(samples, model.feature)
        if raw.shape[0] == 0:
            continue  # a sliver shorter than one frame at the very end
        scores = model.scores(transform(raw, model.pipeline))
        hyp = _to_hyp(_decode_one(dec, scores, f"{path} at {start:.1f} s"), model, scores, graph, acoustic_scale)
        offset = int(round(start / shift))
        joined.words += hyp.words
        joined.ctm += [(w, b + offset, e + offset) for w, b, e in hyp.ctm]
        joined.confidence += hyp.confidence
        joined.cost += hyp.cost
    return joined


def decode_files(model_dir: str | Path, paths: list[str], cfg: DecoderConfig | None = None,
                 nj: int = 1, device: str = "cpu", scp_entries: bool = False) -> dict[str, Hypothesis]:
    """Transcribe audio files; key = the path as given."""
    return dict(iter_decode_files(model_dir, paths, cfg, nj, device, scp_entries))


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


def decode_data_dir(model_dir: str | Path, data_dir: str | Path, out_dir: str | Path,
                    grid: list[DecoderConfig] | None = None, tune_on: str | Path | None = None,
                    nj: int = 1) -> ErrorCounts | None:
    """Decode a data dir into ``out_dir`` (hyp.txt, ctm, and wer.txt when it has a text file).

    Args:
        grid: configs to try; the best WER among them is reported (Kaldi best_wer).
        tune_on: a decode dir already scored with a grid; its best config is used alone.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    model = load_model(model_dir)
    graph = load_graph(model_dir, model)
    data = DataDir.load(data_dir, require_text=False)
    has_ref = (data_dir / "text").exists()
    t0 = time.time()
    feats = load_features(data_dir, model.pipeline)
    scores = {u: model.scores(f) for u, f in feats.items()}
    t_scores = time.time() - t0
    if tune_on is not None:
        best_cfg_path = Path(tune_on) / "best_config.json"
        if not best_cfg_path.exists():
            raise AsrError(f"{tune_on}: no best_config.json to tune on; decode that set with a grid first")
        cfgs = [DecoderConfig.from_dict(read_json(best_cfg_path))]
    else:
        cfgs = grid or [model.decoder]
    if len(cfgs) > 1 and not has_ref:
        raise AsrError(f"{data_dir}: a grid needs reference text to pick from")
    results = decode_scores(graph, model.trans.log_probs, scores, cfgs, nj, desc=f"decode {data_dir.name}")
    seconds = time.time() - t0
    audio_seconds = sum(len(s) for s in scores.values()) * frame_shift_s(model)
    ref = read_text(data_dir / "text") if has_ref else None
    best = None
    ensure_dir(out_dir)
    for cfg, res in zip(cfgs, results):
        hyp = {u: [model.words.sym(w.word) for w in r.words] for u, r in res.items()}
        if ref is None:
            best = (None, cfg, res, hyp, [])
            break
        counts, per_utt = score_texts(ref, hyp)
        if len(cfgs) > 1:
            write_text_atomic(out_dir / "scoring" / f"wer_{_tag(cfg)}", counts.kaldi_line() + "\n")
        if best is None or counts.errors < best[0].errors:
            best = (counts, cfg, res, hyp, per_utt)
    counts, cfg, res, hyp, per_utt = best
    not_final = [u for u, r in res.items() if not r.reached_final]
    if not_final:
        log.warning("%d utterance(s) reached no final state; their best partial paths are used: %s",
                    len(not_final), " ".join(sorted(not_final)[:10]))
    hyps = {u: _to_hyp(r, model, scores[u], graph, cfg.acoustic_scale) for u, r in res.items()}
    write_ctm(out_dir / "ctm", {u: h.ctm for u, h in hyps.items()}, frame_shift_s(model),
              {u: h.confidence for u, h in hyps.items()})
    write_text_atomic(out_dir / "best_config.json", json.dumps(cfg.to_dict(), indent=1) + "\n")
    info = {"model": str(model_dir), "data": str(data_dir), "utterances": len(scores),
            "audio_seconds": round(audio_seconds, 2), "decode_seconds": round(seconds, 2),
            "score_seconds": round(t_scores, 2), "configs_tried": len(cfgs),
            "rtf": round(seconds / max(audio_seconds, 1e-9) / len(cfgs), 4), "config": cfg.to_dict(),
            "selection": "tuned on " + str(tune_on) if tune_on else ("best of grid on this set" if len(cfgs) > 1 else "fixed")}
    comments = []
    if len(cfgs) > 1:
        comments.append(f"# best of {len(cfgs)} settings (Kaldi best_wer): LMWT {round(1 / cfg.acoustic_scale, 4):g}, "
                        f"word insertion penalty {cfg.word_penalty:g}")
    elif tune_on:
        comments.append(f"# LMWT {round(1 / cfg.acoustic_scale, 4):g}, penalty {cfg.word_penalty:g} tuned on {tune_on}")
    write_decode_outputs(out_dir, hyp, counts, per_utt, info, comments)
    return counts


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

