"""Property-based tests (hypothesis): arbitrary bytes through the readers give a result or
our one-line AsrError, never another exception.

Each property runs EXAMPLES examples (200 by default; ASR_FUZZ_EXAMPLES=N for a longer
hunt), each on a fresh temporary directory.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr.audio import read_audio
from asr.datadir import DataDir
from asr.lang.arpa import lm_to_automaton, read_arpa
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.lang.ngram import read_sentences
from asr.score import read_text
from asr.utils import AsrError

EXAMPLES = int(os.environ.get("ASR_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)


def _wav_bytes(rate: int = 16000, n: int = 400, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.linspace(-0.5, 0.5, n, dtype=np.float32), rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def _mutated(base: bytes):
    """Strategy: ``base`` truncated, with bytes overwritten, or with bytes inserted."""
    def mutate(args):
        cut, edits, insert = args
        data = bytearray(base[:cut] if cut else base)
        for pos, val in edits:
            if data:
                data[pos % len(data)] = val
        if insert:
            pos, blob = insert
            data[pos % (len(data) + 1):pos % (len(data) + 1)] = blob
        return bytes(data)

    return st.tuples(st.integers(0, len(base)), st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)),
                                                         max_size=8),
                     st.none() | st.tuples(st.integers(0, 1 << 16), st.binary(max_size=16))).map(mutate)


def _expect_result_or_asr_error(fn, *args):
    try:
        return fn(*args)
    except AsrError as e:
        assert str(e) and "\n" not in str(e).strip(), repr(e)
        return None


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="asr-fuzz-"))


# ---------------------------------------------------------------- audio

AUDIO_BYTES = (st.binary(max_size=2048) | _mutated(_wav_bytes()) | _mutated(_wav_bytes(8000, 300, "FLOAT"))
               | _mutated(_wav_bytes(44100, 200, "PCM_24")))


@FUZZ
@given(data=AUDIO_BYTES, suffix=st.sampled_from([".wav", ".flac", ".raw", ".ogg", ""]),
       target=st.sampled_from([None, 16000, 8000]))
def test_audio_reader_gives_finite_audio_or_our_error(data: bytes, suffix: str, target: int | None) -> None:
    d = _tmp()
    try:
        path = d / f"x{suffix}"
        path.write_bytes(data)
        out = _expect_result_or_asr_error(read_audio, path, target)
        if out is not None:
            samples, rate = out
            assert samples.dtype == np.float32 and samples.ndim == 1 and np.isfinite(samples).all()
            assert rate == (target or rate) and 4000 <= rate <= 384000
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------- data dirs and text files

_LINE = st.lists(st.sampled_from(list("ab12 -_.\t|") + ["u1", "u2", "s1", "s1-u1 ", "\u00e9", "\n", "\r"]),
                 max_size=20).map("".join)
TEXT_BYTES = (st.binary(max_size=300) | _LINE.map(str.encode)
              | st.lists(_LINE, max_size=6).map(lambda ls: "\n".join(ls).encode()))


@FUZZ
@given(wav=TEXT_BYTES, utt2spk=TEXT_BYTES, text=TEXT_BYTES, segments=st.none() | TEXT_BYTES)
def test_data_dir_reader_gives_a_valid_dir_or_our_error(wav, utt2spk, text, segments) -> None:
    d = _tmp()
    try:
        (d / "wav.scp").write_bytes(wav)
        (d / "utt2spk").write_bytes(utt2spk)
        (d / "text").write_bytes(text)
        if segments is not None:
            (d / "segments").write_bytes(segments)
        data = _expect_result_or_asr_error(DataDir.load, d)
        if data is not None:
            assert set(data.utt2spk) == set(data.text)
    finally:
        shutil.rmtree(d)


@FUZZ
@given(content=TEXT_BYTES, reader=st.sampled_from([read_text, Lexicon.read, SymbolTable.read, read_sentences]))
def test_text_readers_give_a_result_or_our_error(content: bytes, reader) -> None:
    d = _tmp()
    try:
        (d / "f.txt").write_bytes(content)
        _expect_result_or_asr_error(reader, d / "f.txt")
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------- ARPA

_ARPA = ("\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1.0\t</s>\n-99\t<s>\t-0.3\n-0.5\tA\t-0.2\n\n"
         "\\2-grams:\n-0.1\t<s> A\n\n\\end\\\n").encode()
_ARPA_LINES = st.sampled_from(["\\data\\", "ngram 1=2", "ngram x=", "\\1-grams:", "\\2-grams:", "\\0-grams:",
                               "\\end\\", "-1.0\tA", "-1.0\tA B", "x\tA", "-1\t<s>\t-0.5", "-2 A B C D",
                               "nan\tA", "-1e999\tB", "", "\\\u00b2-grams:"])
ARPA_BYTES = _mutated(_ARPA) | st.lists(_ARPA_LINES, max_size=12).map(lambda ls: "\n".join(ls).encode())


@FUZZ
@given(content=ARPA_BYTES)
def test_arpa_reader_gives_an_lm_or_our_error(content: bytes) -> None:
    d = _tmp()
    try:
        (d / "G.arpa").write_bytes(content)
        lm = _expect_result_or_asr_error(read_arpa, d / "G.arpa")
        if lm is not None:
            assert lm.order >= 1
            _expect_result_or_asr_error(lm_to_automaton, lm, {"A", "B"})
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------- model dirs


@pytest.fixture(scope="module")
def model_dirs(tiny_mono, tmp_path_factory) -> dict[str, Path]:
    """A tiny DNN and a tiny GMM model dir written by the real writers."""
    import torch

    from asr.features import FeatureConfig, FeaturePipeline
    from asr.gmm.diag_gmm import DiagGmmSet
    from asr.gmm.model import GmmHmm
    from asr.nnet.model import DnnHmm
    from asr.nnet.network import AcousticNet, NetConfig
    from asr.nnet.train import state_log_priors

    t = tiny_mono
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    net = AcousticNet(NetConfig(num_layers=1, hidden_dim=8, context=1), 4, t.ctx.num_pdfs).eval()
    dnn = DnnHmm(t.phones, t.words, t.lex, t.trans, t.ctx, net, state_log_priors(np.arange(1, t.ctx.num_pdfs + 1)),
                 FeatureConfig(), FeaturePipeline(delta_order=0))
    dnn.save(root / "dnn")
    gmm = GmmHmm(gmm=DiagGmmSet.flat_start(t.ctx.num_pdfs, np.zeros(4), np.ones(4)),
                 phones=t.phones, words=t.words, lexicon=t.lex, trans=t.trans, ctx=t.ctx,
                 feature=FeatureConfig(), pipeline=FeaturePipeline(delta_order=0))
    gmm.save(root / "gmm")
    return {"dnn": root / "dnn", "gmm": root / "gmm"}


def _model_file_cases(kind: str):
    files = ["model.json", "model.npz", "phones.txt", "words.txt", "lexicon.txt"] + (["nnet.pt"] if kind == "dnn"
                                                                                     else [])
    return st.sampled_from(files)


@FUZZ
@given(kind=st.sampled_from(["dnn", "gmm"]), data=st.data())
def test_model_dir_loader_gives_a_model_or_our_error(model_dirs, kind: str, data) -> None:
    from asr.acoustic import load_model

    name = data.draw(_model_file_cases(kind))
    d = _tmp()
    try:
        model = d / kind
        shutil.copytree(model_dirs[kind], model)
        original = (model / name).read_bytes()
        (model / name).write_bytes(data.draw(st.binary(max_size=512) | _mutated(original)))
        loaded = _expect_result_or_asr_error(load_model, model)
        if loaded is not None:  # a mutation that still parses must still score
            _expect_result_or_asr_error(loaded.scores, np.zeros((5, 4), dtype=np.float32))
    finally:
        shutil.rmtree(d)
