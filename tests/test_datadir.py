from __future__ import annotations

import pytest

from asr.datadir import DataDir, read_kv, write_kv
from asr.utils import AsrError


def _example() -> DataDir:
    return DataDir(
        wav={"spkB-2": "/b2.wav", "spkA-1": "/a1.wav", "spkA-2": "cat /a2.wav |"},
        text={"spkA-1": ["HELLO", "WORLD"], "spkA-2": [], "spkB-2": ["YES"]},
        utt2spk={"spkA-1": "spkA", "spkA-2": "spkA", "spkB-2": "spkB"},
    )


def test_round_trip(tmp_path):
    d = _example()
    d.write(tmp_path / "d")
    assert (tmp_path / "d" / "spk2utt").read_text() == "spkA spkA-1 spkA-2\nspkB spkB-2\n"
    assert (tmp_path / "d" / "wav.scp").read_text().splitlines()[0] == "spkA-1 /a1.wav"
    e = DataDir.load(tmp_path / "d")
    assert e.wav == d.wav and e.text == d.text and e.utt2spk == d.utt2spk
    assert e.utts() == ["spkA-1", "spkA-2", "spkB-2"]
    assert e.spk2utt == {"spkA": ["spkA-1", "spkA-2"], "spkB": ["spkB-2"]}
    s = e.subset(["spkB-2", "spkA-1"])
    assert s.utts() == ["spkA-1", "spkB-2"] and s.text["spkB-2"] == ["YES"]


def _write_files(tmp_path, wav, text, utt2spk):
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text(wav)
    (d / "utt2spk").write_text(utt2spk)
    if text is not None:
        (d / "text").write_text(text)
    return d


def test_unsorted(tmp_path):
    d = _write_files(tmp_path, "s-2 /b\ns-1 /a\n", "s-1 A\ns-2 B\n", "s-1 s\ns-2 s\n")
    with pytest.raises(AsrError, match=r"wav.scp.*not sorted.*s-1"):
        DataDir.load(d)


def test_not_speaker_prefixed(tmp_path):
    d = _write_files(tmp_path, "u1 /a\n", "u1 A\n", "u1 bob\n")
    with pytest.raises(AsrError, match=r"'u1'.*'bob'"):
        DataDir.load(d)


def test_missing_text(tmp_path):
    d = _write_files(tmp_path, "s-1 /a\ns-2 /b\n", "s-1 A\n", "s-1 s\ns-2 s\n")
    with pytest.raises(AsrError, match=r"text.*'s-2'"):
        DataDir.load(d)


def test_missing_text_file(tmp_path):
    d = _write_files(tmp_path, "s-1 /a\n", None, "s-1 s\n")
    with pytest.raises(AsrError, match="text"):
        DataDir.load(d)
    assert DataDir.load(d, require_text=False).utts() == ["s-1"]


def test_missing_wav(tmp_path):
    d = _write_files(tmp_path, "s-1 /a\n", "s-1 A\ns-2 B\n", "s-1 s\ns-2 s\n")
    with pytest.raises(AsrError, match=r"wav.scp.*'s-2'"):
        DataDir.load(d)


def test_read_kv_errors(tmp_path):
    p = tmp_path / "kv"
    p.write_text("a 1\nb 2\na 3\n")
    with pytest.raises(AsrError, match=r"kv:3: duplicate key 'a'"):
        read_kv(p)
    p.write_text("a 1\nb\n")
    with pytest.raises(AsrError, match=r"kv:2: .*'b'"):
        read_kv(p)
    write_kv(p, {"z": "last", "a": "first one"})
    assert p.read_text() == "a first one\nz last\n"
    assert read_kv(p) == {"a": "first one", "z": "last"}


def test_subset_unknown():
    with pytest.raises(AsrError, match="nobody"):
        _example().subset(["nobody"])


def test_subset_data_dir_keeps_features_of_its_utterances_and_speakers(tmp_path):
    from asr.cli import main
    from asr.datadir import read_utt_list, subset_data_dir

    d = _example()
    d.write(tmp_path / "d")
    (tmp_path / "d" / "feats.scp").write_text("spkA-1 f.ark:1\nspkA-2 f.ark:2\nspkB-2 f.ark:3\n")
    (tmp_path / "d" / "utt2num_frames").write_text("spkA-1 10\nspkA-2 20\nspkB-2 30\n")
    (tmp_path / "d" / "cmvn.scp").write_text("spkA c.ark:1\nspkB c.ark:2\n")
    (tmp_path / "d" / "feats_conf.json").write_text('{"kind": "fbank"}\n')
    (tmp_path / "list").write_text("spkB-2\n\n")
    assert main(["subset-data", str(tmp_path / "d"), str(tmp_path / "s"), "--utt-list", str(tmp_path / "list")]) == 0
    s = tmp_path / "s"
    assert DataDir.load(s).utts() == ["spkB-2"]
    assert (s / "feats.scp").read_text() == "spkB-2 f.ark:3\n"
    assert (s / "utt2num_frames").read_text() == "spkB-2 30\n"
    assert (s / "cmvn.scp").read_text() == "spkB c.ark:2\n"
    assert (s / "feats_conf.json").read_text() == '{"kind": "fbank"}\n'
    with pytest.raises(AsrError, match="unknown utterance 'nope'"):
        subset_data_dir(tmp_path / "d", ["nope"], tmp_path / "t")
    with pytest.raises(AsrError, match="file not found"):
        read_utt_list(tmp_path / "missing")


def test_split_dev_holds_out_whole_speakers_spread_over_the_list(tmp_path):
    from asr.datadir import split_dev_speakers

    spk = [f"{g}{i:02d}" for g in "fm" for i in range(5)]  # f00..f04, m00..m04
    utts = {f"{s}-u{j}": s for s in spk for j in range(3)}
    DataDir(wav={u: f"/{u}.wav" for u in utts}, text={u: ["A"] for u in utts}, utt2spk=utts).write(tmp_path / "all")
    train, dev = split_dev_speakers(tmp_path / "all", tmp_path / "tr", tmp_path / "dev", 2)
    assert sorted(dev.spk2utt) == ["f02", "m02"]  # one from each half of the sorted list
    assert not set(train.spk2utt) & set(dev.spk2utt)
    assert sorted(train.utts() + dev.utts()) == sorted(utts) and len(dev.utts()) == 6
    assert DataDir.load(tmp_path / "dev").text == dev.text
    again = split_dev_speakers(tmp_path / "all", tmp_path / "tr2", tmp_path / "dev2", 2)[1]
    assert again.utts() == dev.utts()  # no random draw
    for bad in (0, 10):
        with pytest.raises(AsrError, match="cannot hold out"):
            split_dev_speakers(tmp_path / "all", tmp_path / "x", tmp_path / "y", bad)
