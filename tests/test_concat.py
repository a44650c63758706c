"""Connected-speech copies: strings of one speaker's utterances, their audio laid out exactly as
``utt2parts`` says, reproducible, and their ids mapped back to speakers for held-out splits."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from asr import concat as C
from asr.cli import main
from asr.datadir import DataDir, read_kv
from asr.perturb import is_perturbed, original_id
from asr.utils import AsrError

RATE = 8000
WORDS = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"]


def _data_dir(tmp_path, speakers=("a", "b"), per_speaker=9):
    rng = np.random.default_rng(0)
    wavs, text, utt2spk = {}, {}, {}
    for spk in speakers:
        for i in range(per_speaker):
            u = f"{spk}-{i}"
            x = (0.2 * rng.standard_normal(int(RATE * rng.uniform(0.2, 0.5)))).clip(-0.9, 0.9)
            sf.write(tmp_path / f"{u}.wav", x, RATE, subtype="PCM_16")
            wavs[u], text[u], utt2spk[u] = str(tmp_path / f"{u}.wav"), [WORDS[i % 10]], spk
    DataDir(wav=wavs, text=text, utt2spk=utt2spk).write(tmp_path / "src")
    return tmp_path / "src"


def test_join_audio_puts_each_part_after_exactly_the_silence_asked():
    parts = [np.ones(5, np.float32), 2 * np.ones(3, np.float32), 3 * np.ones(4, np.float32)]
    y, starts = C.join_audio(parts, 100, [0.02, 0.0], lead=0.01, trail=0.03)
    assert starts == [1, 8, 11] and len(y) == 1 + 5 + 2 + 3 + 0 + 4 + 3
    np.testing.assert_array_equal(y, [0, 1, 1, 1, 1, 1, 0, 0, 2, 2, 2, 3, 3, 3, 3, 0, 0, 0])
    with pytest.raises(AsrError):
        C.join_audio(parts, 100, [0.02], 0.0, 0.0)
    with pytest.raises(AsrError):
        C.join_audio(parts, 100, [0.02, -0.01], 0.0, 0.0)


def test_plan_strings_uses_every_utterance_once_in_strings_of_the_lengths_asked():
    utts = [f"u{i}" for i in range(50)]
    strings = C.plan_strings(utts, C.ConcatConfig(lengths=(2, 4)), np.random.default_rng(3))
    assert sorted(u for s in strings for u in s) == sorted(utts)
    assert all(2 <= len(s) <= 4 for s in strings[:-1]) and 1 <= len(strings[-1]) <= 4
    assert len({len(s) for s in strings}) > 1  # lengths are drawn, not fixed


def test_concat_data_dir_joins_one_speakers_utterances_as_utt2parts_says(tmp_path):
    src = _data_dir(tmp_path)
    cfg = C.ConcatConfig(copies=2, lengths=(2, 4), gap_seconds=(0.0, 0.2), edge_seconds=(0.05, 0.3))
    d = C.concat_data_dir(src, tmp_path / "cat", cfg)
    orig = DataDir.load(src)
    parts = read_kv(tmp_path / "cat" / "utt2parts")
    strings = [u for u in d.utt2spk if u.startswith("cat")]
    assert set(orig.utt2spk) <= set(d.utt2spk) and sorted(parts) == sorted(strings)
    for k in (1, 2):  # each copy uses every utterance exactly once
        used = [p for u in strings if u.startswith(f"cat{k}-") for p in parts[u].split()[::2]]
        assert sorted(used) == sorted(orig.utt2spk)
    for u in strings:
        names, starts = parts[u].split()[::2], [float(s) for s in parts[u].split()[1::2]]
        spk = d.utt2spk[u]
        assert {original_id(spk)} == {orig.utt2spk[p] for p in names} and spk.startswith("cat")
        assert d.text[u] == [w for p in names for w in orig.text[p]]
        y, rate = sf.read(d.wav[u], dtype="float32")
        assert rate == RATE
        mask = np.zeros(len(y), bool)
        for p, start in zip(names, starts):
            x, _ = sf.read(orig.wav[p], dtype="float32")
            b = round(start * RATE)
            np.testing.assert_array_equal(y[b:b + len(x)], x)
            mask[b:b + len(x)] = True
        assert not np.any(y[~mask])  # the rest is silence
        lead, trail = np.argmax(mask), np.argmax(mask[::-1])
        assert 0.05 * RATE - 1 <= lead <= 0.3 * RATE + 1 and 0.05 * RATE - 1 <= trail <= 0.3 * RATE + 1
    assert is_perturbed(strings[0]) and original_id("cat1-sp0.9-a") == "a"
    # A rerun keeps the files; a fresh dir gets the same strings; other options are refused.
    stamp = (tmp_path / "cat" / "wav" / f"{strings[0]}.wav").stat().st_mtime_ns
    assert C.concat_data_dir(src, tmp_path / "cat", cfg).text == d.text
    assert (tmp_path / "cat" / "wav" / f"{strings[0]}.wav").stat().st_mtime_ns == stamp
    again = C.concat_data_dir(src, tmp_path / "cat_again", cfg)
    assert again.text == d.text and read_kv(tmp_path / "cat_again" / "utt2parts") == parts
    with pytest.raises(AsrError, match="other options"):
        C.concat_data_dir(src, tmp_path / "cat", C.ConcatConfig(**{**cfg.to_dict(), "seed": 1}))


def test_concat_refuses_bad_options_and_untranscribed_data(tmp_path):
    for bad in ({"copies": 0}, {"lengths": [0, 3]}, {"lengths": [4, 2]}, {"gap_seconds": [-0.1, 0.2]}):
        with pytest.raises(AsrError):
            C.ConcatConfig.from_dict(bad)
    src = _data_dir(tmp_path, speakers=("a",), per_speaker=3)
    (src / "text").write_text("a-0 ZERO\na-1 ONE\n")
    with pytest.raises(AsrError, match="a-2"):
        C.concat_data_dir(src, tmp_path / "x")
    assert main(["concat-utts", str(src), str(tmp_path / "y"), "--set", "lengths=[1, 0]"]) == 1
