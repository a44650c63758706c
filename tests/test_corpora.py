from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr.audio import read_wav_scp_entry
from asr.corpora import PREPARERS, prepare_corpus
from asr.datadir import DataDir
from asr.utils import AsrError

MIRROR = Path("/work/shared/corpora")


def _prepared(tmp_path_factory, name: str, archive: str) -> tuple[Path, dict[str, DataDir]]:
    if not (MIRROR / archive).is_file():
        pytest.skip(f"corpus mirror {MIRROR / archive} not available")
    root = tmp_path_factory.mktemp(name)
    out = root / "data"
    dirs = PREPARERS[name](out, mirror=MIRROR, work_dir=root / "work")
    return out, dirs


@pytest.fixture(scope="session")
def yesno(tmp_path_factory):
    return _prepared(tmp_path_factory, "yesno", "waves_yesno.tar.gz")


@pytest.fixture(scope="session")
def an4(tmp_path_factory):
    return _prepared(tmp_path_factory, "an4", "an4_raw.bigendian.tar.gz")


@pytest.fixture(scope="session")
def fsdd(tmp_path_factory):
    return _prepared(tmp_path_factory, "fsdd", "free-spoken-digit-dataset.tar.gz")


def test_unknown_corpus(tmp_path):
    with pytest.raises(AsrError, match="unknown corpus 'timit'"):
        prepare_corpus("timit", tmp_path)


def test_yesno(yesno):
    out, dirs = yesno
    train, test = DataDir.load(out / "train"), DataDir.load(out / "test")
    assert len(train.utts()) == 31 and len(test.utts()) == 29
    words = [w for ws in test.text.values() for w in ws]
    assert len(words) == 232 and set(words) == {"YES", "NO"}
    assert max(train.utts()) < min(test.utts())
    assert all(Path(p).is_absolute() for p in train.wav.values())
    assert test.utts()[0].startswith("global_") and set(test.utt2spk.values()) == {"global"}
    assert (out / "local" / "lexicon.txt").read_text() == "YES Y\nNO N\n<UNK> SIL\n"
    x, rate = read_wav_scp_entry(train.wav[train.utts()[0]])
    assert rate == 8000 and x.ndim == 1


def test_yesno_idempotent(yesno, tmp_path):
    out, dirs = yesno
    work = next(iter(dirs["train"].wav.values()))
    # Rerun into the same out dir: same content, extraction skipped (marker present).
    before = (out / "test" / "text").read_text()
    again = PREPARERS["yesno"](out, mirror=MIRROR, work_dir=Path(work).parents[1])
    assert (out / "test" / "text").read_text() == before and again["test"].text == dirs["test"].text


def test_an4(an4):
    out, dirs = an4
    train, test = DataDir.load(out / "train"), DataDir.load(out / "test")
    assert len(train.utts()) == 948 and len(test.utts()) == 130
    assert sum(len(w) for w in test.text.values()) == 773
    assert "fash-an251-b" in train.utt2spk and train.text["fash-an251-b"] == ["YES"]
    assert test.text["fcaw-an406-b"] == "RUBOUT G M E F THREE NINE".split()
    assert len(train.spk2utt) == 74 and len(test.spk2utt) == 10
    for d in (train, test):
        assert all(u.startswith(s) for u, s in d.utt2spk.items())
        assert all(w not in ("<s>", "</s>") and not w.startswith("(") for ws in d.text.values() for w in ws)
    x, rate = read_wav_scp_entry(train.wav[train.utts()[0]])
    assert rate == 16000 and x.dtype == np.float32
    assert np.abs(x).max() < 1.0 and x.std() > 0.001
    local = out / "local"
    lex = [ln.split() for ln in (local / "lexicon.txt").read_text().splitlines()]
    words = {ln[0] for ln in lex}
    assert ["<UNK>", "SIL"] in lex and ["A", "EY"] in lex and ["A", "AH"] in lex
    assert not any("(" in w for w in words)
    assert all(w in words for d in (train, test) for ws in d.text.values() for w in ws)
    nonsil = (local / "nonsilence_phones.txt").read_text().split()
    assert "SIL" not in nonsil and len(nonsil) == 33
    assert (local / "silence_phones.txt").read_text() == "SIL\n"
    assert "\\data\\" in (local / "lm.arpa").read_text()


def test_fsdd(fsdd):
    out, dirs = fsdd
    loaded = {k: DataDir.load(out / k) for k in ("train", "dev", "test")}
    assert [len(loaded[k].utts()) for k in ("train", "dev", "test")] == [2400, 300, 300]
    assert all(len(d.spk2utt) == 6 for d in loaded.values())
    assert loaded["train"].text["george_0_12"] == ["ZERO"]
    assert "george_0_3" in loaded["test"].utt2spk and "george_0_7" in loaded["dev"].utt2spk
    lex = (out / "local" / "lexicon.txt").read_text().splitlines()
    assert "SEVEN S EH V AH N" in lex and "<UNK> SIL" in lex and len(lex) == 11
