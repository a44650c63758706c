"""Forced alignment of data dirs with a GMM-HMM or a hybrid DNN-HMM: frame alignments + phone/word CTM."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Mapping

import numpy as np

from asr.audio import LONG_FILE_SECONDS, is_long_file
from asr.datadir import DataDir
from asr.features import frame_count, load_features
from asr.hmm.align import Alignment, align_utterances, arc_scores, scaled_transitions
from asr.hmm.align_long import viterbi_streaming
from asr.hmm.align_graph import AlignGraph, build_align_graph
from asr.acoustic import features_for_files, features_for_long_file, frame_shift_s, load_model, pdf_scores
from asr.hmm.alignments import (FMLLR_TRANSFORMS, save_transforms, segments, to_seconds, tree_fingerprint,
                                write_alignments, write_ctm)
from asr.parallel import fork_pool
from asr.utils import AsrError

log = logging.getLogger(__name__)


def silence_boost(model, g: AlignGraph, boost_silence: float) -> np.ndarray:
    """(S,) log of Kaldi's --boost-silence factor on the graph's silence states, 0 elsewhere: by
    graph state, not by pdf, so it is right whatever context the pdfs depend on."""
    return np.where(g.phone == model.phones.id(model.silence_phone), math.log(boost_silence), 0.0)


def align_scales(model, opts: dict) -> tuple[float, float, float]:
    """(acoustic scale, transition scale, boost silence) from the ``[align]`` options, the
    model's decoding defaults otherwise."""
    return (opts.get("acoustic_scale", model.decoder.acoustic_scale),
            opts.get("transition_scale", model.decoder.transition_scale), opts.get("boost_silence", 1.0))


class Aligner:
    """Aligns a fixed set of utterances (features + graphs) with the current state of a model
    (a GMM-HMM, or any model with ``scores(feats)``: a DNN's scaled likelihoods)."""

    def __init__(self, model, feats: Mapping[str, np.ndarray], graphs: dict[str, AlignGraph],
                 acoustic_scale: float = 0.1, transition_scale: float = 0.1, boost_silence: float = 1.0,
                 nj: int = 1, device: str = "cpu"):
        self.model, self.feats, self.graphs = model, feats, graphs
        self.acoustic_scale, self.transition_scale, self.boost_silence = acoustic_scale, transition_scale, boost_silence
        self.nj = nj  # processes (Kaldi's --nj); each path is exact, so the result is the same for any nj
        # "cuda" (or "torch": the same code on the CPU): GMM scores and batched Viterbi in torch;
        # on the CPU path torch is never imported (it costs a GMM command 1.5-3 s to load)
        self.device = None
        if device != "cpu":
            from asr.hmm.align_torch import torch_device

            self.device = torch_device(device)

    def emissions(self, utt: str, g: AlignGraph) -> np.ndarray:
        """(T, S) float32 scaled emission scores of the graph's states; only the graph's pdfs are evaluated."""
        pdfs, inverse = np.unique(g.pdf, return_inverse=True)
        ll = pdf_scores(self.model, self.feats[utt], pdfs, self.device)[:, inverse.reshape(-1)]
        if self.boost_silence != 1.0:
            ll += silence_boost(self.model, g, self.boost_silence).astype(np.float32)
        return np.float32(self.acoustic_scale) * ll

    def align(self) -> dict[str, Alignment]:
        if self.nj > 1 and len(self.graphs) > 1 and self.device is None:
            # Utterances dealt round-robin by length, so every job gets long and short ones.
            by_length = sorted(self.graphs, key=lambda u: -frame_count(self.feats, u))
            shares = [by_length[k::self.nj] for k in range(self.nj)]
            _ALIGN["aligner"] = self
            try:
                with fork_pool(self.nj) as pool:
                    res = {}
                    for part in pool.map(_align_share, [s for s in shares if s]):
                        res.update(part)
            finally:
                _ALIGN.clear()
        else:
            res = self._align(list(self.graphs))
        failed = sorted(u for u, a in res.items() if a is None)
        if failed:
            log.warning("%d utterance(s) could not be aligned (too short for their transcript): %s",
                        len(failed), " ".join(failed[:10]))
        return {u: res[u] for u in self.graphs if res[u] is not None}

    def _align(self, utts: list[str]) -> dict[str, Alignment | None]:
        return align_utterances({u: self.graphs[u] for u in utts}, self.emissions, self.model.trans.log_probs,
                                self.transition_scale, num_frames={u: frame_count(self.feats, u) for u in utts},
                                device=self.device)


# Worker state of parallel alignment (inherited through fork).
_ALIGN: dict = {}


def _align_share(utts: list[str]) -> dict[str, Alignment | None]:
    return _ALIGN["aligner"]._align(utts)


def save_alignment_outputs(ali_dir: Path, model, graphs: dict[str, AlignGraph],
                           alis: dict[str, Alignment], text: dict[str, list[str]]) -> None:
    """Write ali.{tid,pdf}.{ark,scp}, phones.ctm and words.ctm for aligned utterances."""
    # Alignment.tids[t] enters frame t; Kaldi's per-frame tid is the one leaving it.
    tids = {u: a.tids[1:] for u, a in alis.items()}
    pdf = {u: graphs[u].pdf[a.states] for u, a in alis.items()}
    write_alignments(ali_dir, tids, pdf, tree_fingerprint(model.trans, model.ctx, model.phones))
    shift = model.feature.frame_shift_ms / 1000
    spans = {u: frame_spans(model, graphs[u], a, text[u]) for u, a in alis.items()}
    write_ctm(ali_dir / "phones.ctm", {u: s["phones"] for u, s in spans.items()}, shift)
    write_ctm(ali_dir / "words.ctm", {u: s["words"] for u, s in spans.items()}, shift)


def frame_spans(model, g: AlignGraph, a: Alignment, words: list[str]) -> dict[str, list[tuple[str, int, int]]]:
    """Phone and word intervals of one alignment as ``(label, first frame, last frame)``."""
    inst = g.instance[a.states]
    starts = np.ones(len(inst), dtype=bool)
    starts[1:] = inst[1:] != inst[:-1]
    return {"words": [(words[w], b, e) for w, b, e in segments(g.word_pos[a.states]) if w >= 0],
            "phones": [(model.phones.sym(p), b, e) for p, b, e in segments(g.phone[a.states], starts)]}


def check_vocabulary(words: list[str], lexicon, what: str) -> None:
    """One error naming every out-of-vocabulary word of a transcript."""
    oov = sorted({w for w in words if w not in lexicon})
    if oov:
        raise AsrError(f"{what}: word(s) not in the lexicon: {', '.join(oov)}")


def align_audio(model_dir: str | Path, audio: str, words: list[str], opts: dict | None = None
                ) -> tuple[dict[str, list[tuple[str, float, float]]], float]:
    """Force-align one audio file to its transcript: tiers ("words" and "phones", or "tokens"
    for a CTC model) in seconds, and the duration."""
    opts = opts or {}
    if not words:
        raise AsrError(f"{audio}: the transcript is empty; give the words spoken, in quotes")
    model = load_model(model_dir)
    check_vocabulary(words, model.lexicon, audio)
    if is_long_file(audio):
        if hasattr(model, "align_spans"):
            # CTC's own forced alignment holds the whole (T, tokens) lattice: refuse rather than
            # grow without bound; the HMM models align long files in a streaming pass.
            raise AsrError(f"{audio}: too long for CTC forced alignment (over {LONG_FILE_SECONDS:g} s); align it "
                           "with a GMM or DNN model dir, which aligns long recordings in a streaming pass")
        return _align_long_file(model, audio, words, opts)
    feats = features_for_files(model, [audio])
    duration = len(feats[audio]) * model.feature.frame_shift_ms / 1000
    if hasattr(model, "align_spans"):  # a model with its own forced alignment (CTC)
        return to_seconds(model.align_spans(feats[audio], words, audio), frame_shift_s(model)), duration
    graphs, alis, _ = _force_align(model, feats, {audio: words}, opts)
    if audio not in alis:
        raise AsrError(f"{audio}: too short for its transcript, or no alignment fits")
    return to_seconds(frame_spans(model, graphs[audio], alis[audio], words), frame_shift_s(model)), duration


def _align_long_file(model, audio: str, words: list[str], opts: dict
                     ) -> tuple[dict[str, list[tuple[str, float, float]]], float]:
    """Align a long recording in bounded memory: features chunk by chunk, then beam-pruned
    streaming Viterbi scored block by block (:mod:`asr.hmm.align_long`). A SAT model aligns
    speaker-independently first and adapts to the file (Kaldi's align_fmllr.sh)."""
    feats = features_for_long_file(model, audio)
    g = build_align_graph(words, model.lexicon, model.phones, model.trans, model.ctx, model.silence_phone,
                          opts.get("sil_prob", 0.5), audio)
    if len(feats) < len(g.equal_path) // 3:
        raise AsrError(f"{audio}: too short for its transcript ({len(feats)} frames for {len(words)} words)")
    ali = _stream_align(model.first_pass() if getattr(model, "speaker_adaptive", False) else model,
                        feats, g, opts, audio)
    if getattr(model, "speaker_adaptive", False):
        adapted, _ = model.adapt({audio: feats}, {audio: g.pdf[ali.states]}, {audio: audio})
        feats = adapted[audio]
        ali = _stream_align(model, feats, g, opts, audio)
    return to_seconds(frame_spans(model, g, ali, words), frame_shift_s(model)), len(feats) * frame_shift_s(model)


def _stream_align(model, feats: np.ndarray, g: AlignGraph, opts: dict, name: str,
                  block_frames: int = 1000, context: int = 50) -> Alignment:
    """One streaming alignment of (T, D) features; Kaldi's beam, then its retry beam (x4)."""
    acoustic_scale, transition_scale, boost = align_scales(model, opts)
    tlp = scaled_transitions(model.trans.log_probs, transition_scale)
    arc = arc_scores(g.pred_tid, g.pred_graph, tlp)
    final = arc_scores(g.final_tid, g.final_graph, tlp)
    pdfs, cols = np.unique(g.pdf, return_inverse=True)
    bonus = acoustic_scale * silence_boost(model, g, boost)

    def blocks():
        # each block is scored with `context` frames either side, so that spliced-input
        # networks see the same frames as a whole-utterance pass
        for t in range(0, len(feats), block_frames):
            a, b = max(t - context, 0), min(t + block_frames + context, len(feats))
            scores = pdf_scores(model, feats[a:b], pdfs)
            yield np.float32(acoustic_scale) * scores[t - a:t - a + min(block_frames, len(feats) - t)]

    beam = float(opts.get("beam", 30.0))
    for attempt in (beam, 4 * beam):
        try:
            ali, peak = viterbi_streaming(g, blocks(), arc, final, cols, bonus, attempt)
        except AsrError as e:
            err = e
            continue
        if ali is not None:
            log.info("%s: aligned %d frames to %d words in a streaming pass (beam %g; at most %d back-pointers "
                     "held, against %d for exact Viterbi)", name, len(feats), int(g.word_pos.max()) + 1, attempt,
                     peak, len(feats) * g.num_states)
            return ali
        err = AsrError("no surviving path ends in a final state")
    raise AsrError(f"{name}: cannot align to its transcript: {err}")


def _force_align(model, feats: dict[str, np.ndarray], text: dict[str, list[str]], opts: dict,
                 utt2spk: dict[str, str] | None = None
                 ) -> tuple[dict[str, AlignGraph], dict[str, Alignment], dict[str, np.ndarray]]:
    """Training graphs of ``text``, their alignments and (a SAT model) the speakers' fMLLR
    transforms, with the ``[align]`` options (sil_prob, acoustic_scale, transition_scale,
    boost_silence, nj; the model's defaults otherwise). A SAT model adapts to each speaker of
    ``utt2spk`` (default: each utterance alone)."""
    nj = int(opts.get("nj", 1))  # processes (any nj: the same exact alignments)
    graphs = {u: build_align_graph(words, model.lexicon, model.phones, model.trans, model.ctx, model.silence_phone,
                                   opts.get("sil_prob", 0.5), u) for u, words in text.items()}
    scales = align_scales(model, opts)
    if getattr(model, "speaker_adaptive", False):
        # Kaldi's align_fmllr.sh: align speaker-independently, estimate each speaker's fMLLR
        # from that alignment, align again with the adapted features.
        first = Aligner(model.first_pass(), feats, graphs, *scales, nj=nj).align()
        feats, transforms = model.adapt(feats, {u: graphs[u].pdf[a.states] for u, a in first.items()},
                                        utt2spk or {})
        return graphs, Aligner(model, feats, graphs, *scales, nj=nj).align(), transforms
    return graphs, Aligner(model, feats, graphs, *scales, nj=nj).align(), {}


def align_data_dir(model_dir: str | Path, data_dir: str | Path, out_dir: str | Path, opts: dict | None = None
                   ) -> dict[str, tuple[dict[str, list[tuple[str, float, float]]], float]]:
    """Align every utterance of a data dir to its transcript (Kaldi's align_si.sh; with a DNN
    model dir, Kaldi's nnet realignment - retrain on the result with ``asr train-dnn --ali``).

    Returns utt -> (tiers in seconds, duration) of the aligned utterances.
    """
    opts = opts or {}
    model = load_model(model_dir)
    data = DataDir.load(data_dir)
    feats = load_features(data_dir, model.pipeline)
    graphs, alis, transforms = _force_align(model, feats, {u: data.text[u] for u in data.utts()}, opts,
                                            data.utt2spk)
    save_alignment_outputs(Path(out_dir), model, graphs, alis, data.text)
    if transforms:  # Kaldi's align_fmllr.sh trans.*: what a DNN on fMLLR features trains on
        save_transforms(Path(out_dir) / FMLLR_TRANSFORMS, transforms)
    shift = model.feature.frame_shift_ms / 1000
    frames = sum(len(a.states) for a in alis.values())
    log.info("aligned %d of %d utterances (%d frames) into %s; score/frame %.4f", len(alis), len(graphs), frames,
             out_dir, sum(a.score for a in alis.values()) / max(frames, 1))
    if not alis:
        raise AsrError(f"{data_dir}: none of its {len(graphs)} utterances could be aligned (audio too short for "
                       "its transcript, or a model that does not fit the data)")
    return {u: (to_seconds(frame_spans(model, graphs[u], a, data.text[u]), shift), len(feats[u]) * shift)
            for u, a in alis.items()}
