"""`asr prepare librispeech` on tiny archives in LibriSpeech's layout (flac and opus, with and without a split list)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import read_audio
from asr.corpora import librispeech
from asr.corpora.librispeech import prepare_librispeech
from asr.datadir import DataDir
from asr.utils import AsrError

# reader -> (part, chapter, [transcripts]); 1 and 2 train, 3 dev, 4 test
READERS = {"1": ("test-clean", "10", ["HELLO WORLD", "IT'S A TEST"]), "2": ("train-clean-100", "20", ["ONE TWO"]),
           "3": ("test-clean", "30", ["DEV WORDS"]), "4": ("test-clean", "40", ["TEST WORDS HERE"]),
           "9": ("test-clean", "90", ["NOT IN ANY SPLIT"])}
SPLIT = {"train": ["1", "2"], "dev": ["3"], "test": ["4"]}


def _make_tree(root: Path, fmt: str, with_splits: bool) -> Path:
    top = root / "LibriSpeech"
    t = np.arange(8000) / 16000
    for reader, (part, chapter, lines) in READERS.items():
        d = top / part / reader / chapter
        d.mkdir(parents=True)
        trans = []
        for k, words in enumerate(lines):
            utt = f"{reader}-{chapter}-{k:04d}"
            x = 0.1 * np.sin(2 * np.pi * (200 + 50 * k) * t)
            if fmt == "opus":
                sf.write(d / f"{utt}.opus", x, 16000, format="OGG", subtype="OPUS")
            else:
                sf.write(d / f"{utt}.flac", x, 16000)
            trans.append(f"{utt} {words}")
        (d / f"{reader}-{chapter}.trans.txt").write_text("\n".join(trans) + "\n")
    if with_splits:
        (top / "splits").mkdir()
        for name, spks in SPLIT.items():
            (top / "splits" / f"{name}.spk").write_text("\n".join(spks) + "\n")
    return top


def _archive(tmp_path: Path, fmt: str, with_splits: bool = True) -> Path:
    src = tmp_path / "src"
    _make_tree(src, fmt, with_splits)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / librispeech.ARCHIVE, "w:gz") as tar:
        tar.add(src / "LibriSpeech", arcname="LibriSpeech")
    return mirror


@pytest.mark.parametrize("fmt", ["flac", "opus"])
def test_prepare_makes_kaldi_data_dirs_by_speaker_split(tmp_path, fmt):
    mirror = _archive(tmp_path, fmt)
    dirs = prepare_librispeech(tmp_path / "data", mirror=mirror, work_dir=tmp_path / "work")
    assert sorted(dirs) == ["dev", "test", "train"]
    train = DataDir.load(tmp_path / "data" / "train")
    assert train.utts() == ["1-10-0000", "1-10-0001", "2-20-0000"]
    assert train.utt2spk["1-10-0001"] == "1-10" and sorted(train.spk2utt) == ["1-10", "2-20"]
    assert train.text["1-10-0001"] == ["IT'S", "A", "TEST"]
    assert DataDir.load(tmp_path / "data" / "dev").utts() == ["3-30-0000"]
    assert DataDir.load(tmp_path / "data" / "test").text["4-40-0000"] == ["TEST", "WORDS", "HERE"]
    samples, rate = read_audio(train.wav["2-20-0000"], target_rate=16000)
    assert rate == 16000 and abs(len(samples) - 8000) < 400  # opus pads a little
    # reader 9 is in no split: left out everywhere
    assert not any(u.startswith("9-") for d in dirs.values() for u in d.wav)


def test_official_layout_without_split_lists_uses_the_subset_split(tmp_path, monkeypatch):
    mirror = _archive(tmp_path, "flac", with_splits=False)
    monkeypatch.setattr(librispeech, "SPLITS", SPLIT)
    dirs = prepare_librispeech(tmp_path / "data", mirror=mirror, work_dir=tmp_path / "work")
    assert sorted(dirs["train"].wav) == ["1-10-0000", "1-10-0001", "2-20-0000"]


def test_bad_input_names_the_file(tmp_path):
    mirror = _archive(tmp_path, "flac")
    work = tmp_path / "work"
    prepare_librispeech(tmp_path / "data", mirror=mirror, work_dir=work)
    trans = work / "LibriSpeech" / "test-clean" / "1" / "10" / "1-10.trans.txt"
    trans.write_text("1-10-0000 HELLO\n1-10-0007 NO AUDIO\n")
    with pytest.raises(AsrError, match=r"1-10.trans.txt:2: no audio file for 1-10-0007"):
        prepare_librispeech(tmp_path / "data2", mirror=mirror, work_dir=work)
    trans.write_text("9-90-0000 WRONG READER\n")
    with pytest.raises(AsrError, match="is not 1-10-NNNN"):
        prepare_librispeech(tmp_path / "data3", mirror=mirror, work_dir=work)
    (work / "LibriSpeech" / "splits" / "dev.spk").write_text("1\n3\n")
    with pytest.raises(AsrError, match="speaker 1 is in both"):
        prepare_librispeech(tmp_path / "data4", mirror=mirror, work_dir=work)


def test_the_mirror_subset_split_matches_the_embedded_one():
    """The split applied to the official archives is the subset's own (read from the mirror's
    archive without unpacking the audio)."""
    from conftest import MIRROR

    path = MIRROR / librispeech.ARCHIVE
    if not path.exists():
        pytest.skip(f"no {librispeech.ARCHIVE} in {MIRROR}")
    found = {}
    with tarfile.open(path) as tar:
        for member in tar:  # the split lists come first: stop there, unpack no audio
            if member.name.startswith("LibriSpeech/splits/"):
                found[Path(member.name).stem] = tar.extractfile(member).read().decode().split()
            if len(found) == 3 or member.name.endswith(".opus"):
                break
    assert found == librispeech.SPLITS


def test_the_recipe_wires_every_stage_in_order(tmp_path):
    """`make -n` of recipes/librispeech from nothing: lexicon (CMUdict + G2P), book-text LMs
    (pruned first pass, unpruned for rescoring), the GMM ladder, decoding tuned on dev."""
    import shutil
    import subprocess

    from conftest import ASR, ROOT

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "-C", str(ROOT / "recipes" / "librispeech"), f"ASR={ASR}",
                          f"DATA_ROOT={tmp_path / 'data'}", f"EXP_ROOT={tmp_path / 'exp'}", "all"],
                         capture_output=True, text=True, check=True).stdout
    steps = ["prepare librispeech", "g2p train", "lexicon --vocab", "lm-text", "--max-ngrams 1500000", "asr lang",
             "asr features", "subset-data", "train-mono", "asr align", "train-tri", "train-lda-mllt", "train-sat",
             "mkgraph", "decode_dev --nj 2 --sweep 7:17 --then", "/test:", "decode_test", "lmrescore", "asr results"]
    missing = [s for s in steps if s not in out]
    assert not missing, missing
    # Make interleaves the systems; each chain keeps its order.
    for before, after in zip(steps, steps[1:]):
        if before != "mkgraph" and after != "mkgraph":
            assert out.find(before) < out.rfind(after), (before, after)
    for sys in ("mono", "tri1", "tri2", "tri3"):
        assert out.find(f"{sys}/decode_dev ") < out.find(f"{sys}/decode_test ") < out.find(f"{sys}/decode_test_big")
    assert "--tune-on" in out.split("decode_test_big")[1].split("\n")[0]
    assert out.rfind("lmrescore") < out.find("asr results")
