"""Augmentation: each condition on synthetic signals, the copies of a data dir, and the
alignments they inherit from their sources."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from asr import augment as A
from asr.cli import main
from asr.datadir import DataDir, read_kv
from asr.perturb import is_perturbed, original_id
from asr.utils import AsrError

RATE = 16000


def _tone(seconds: float = 1.0, hz: float = 440.0, amp: float = 0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(int(seconds * RATE)) / RATE)).astype(np.float32)


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 20.0])
@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
def test_noise_is_added_at_the_snr_asked(snr, kind):
    x = _tone()
    noise = A.coloured_noise(len(x), A.NOISE_EXPONENTS[kind], np.random.default_rng(1))
    y = A.add_noise(x, noise, snr)
    achieved = 10 * np.log10(A.signal_power(x) / A.signal_power(y.astype(np.float64) - x))
    assert abs(achieved - snr) < 0.5
    # A short noise is tiled over the signal; a silent one is refused.
    assert len(A.add_noise(x, noise[:1000], snr)) == len(x)
    with pytest.raises(AsrError):
        A.add_noise(x, np.zeros(100), snr)


def test_coloured_noise_spectra_fall_as_asked():
    rng = np.random.default_rng(0)
    for kind, exponent in A.NOISE_EXPONENTS.items():
        n = A.coloured_noise(1 << 16, exponent, rng)
        power = np.abs(np.fft.rfft(n)) ** 2
        f = np.arange(len(power))
        low, high = power[(f > 200) & (f < 400)].mean(), power[(f > 3200) & (f < 6400)].mean()
        # 16x the frequency: 1 / f^exponent gives 16^exponent less power (12 dB per octave for brown)
        assert 10 * np.log10(low / high) == pytest.approx(10 * np.log10(16.0 ** exponent), abs=1.5), kind
        assert A.signal_power(n) == pytest.approx(1.0, rel=1e-3)


def test_babble_mixes_every_talker():
    rng = np.random.default_rng(0)
    voices = [_tone(0.3, hz) for hz in (300.0, 700.0, 1100.0)]
    mix = A.babble(voices, RATE, rng)
    spectrum = np.abs(np.fft.rfft(mix))
    for hz in (300, 700, 1100):  # each voice is present at comparable level
        assert spectrum[hz] > 0.3 * spectrum.max()
    with pytest.raises(AsrError):
        A.babble([np.zeros(100)], RATE, rng)


def test_padding_adds_exactly_the_silence_asked():
    x = _tone(0.5)
    y = A.pad_silence(x, RATE, 0.25, 0.6)
    assert len(y) == len(x) + 4000 + 9600
    assert not y[:4000].any() and not y[-9600:].any()
    np.testing.assert_array_equal(y[4000:4000 + len(x)], x)
    with pytest.raises(AsrError):
        A.pad_silence(x, RATE, -0.1, 0)


@pytest.mark.parametrize("rt60", [0.25, 0.5, 0.8])
def test_room_response_decays_as_asked_and_reverberation_keeps_it(rt60):
    h = A.room_impulse_response(RATE, (6.0, 4.0, 3.0), (1.0, 1.2, 1.5), (4.5, 2.5, 1.2), rt60)
    assert A.decay_time(h, RATE) == pytest.approx(rt60, rel=0.1)
    # The direct path comes first after the distance's delay and is the strongest arrival.
    dist = np.linalg.norm(np.subtract((1.0, 1.2, 1.5), (4.5, 2.5, 1.2)))
    assert abs(int(np.argmax(np.abs(h))) - dist / A.SOUND_SPEED * RATE) <= 1
    assert not h[:int(dist / A.SOUND_SPEED * RATE) - 1].any()
    # A reverberated impulse is the response itself (from the direct path on): the same decay.
    impulse = np.zeros(2 * len(h), np.float32)
    impulse[100] = 1.0
    y = A.reverberate(impulse, h)
    assert len(y) == len(impulse) and int(np.argmax(np.abs(y))) == 100
    direct = int(np.argmax(np.abs(h)))
    tail = y[100:100 + len(h) - direct]
    np.testing.assert_allclose(tail / tail[0], h[direct:] / h[direct], atol=1e-4)
    assert A.decay_time(y[100:], RATE) == pytest.approx(A.decay_time(h[direct:], RATE), rel=0.02)
    # Reverberation keeps a signal's power and length.
    x = _tone()
    r = A.reverberate(x, h)
    assert len(r) == len(x) and A.signal_power(r) == pytest.approx(A.signal_power(x), rel=1e-4)


def test_room_response_rejects_impossible_rooms():
    for room, src in (((6, 4, -3), (1, 1, 1)), ((6, 4, 3), (7, 1, 1))):
        with pytest.raises(AsrError):
            A.room_impulse_response(RATE, room, src, (2, 2, 2), 0.4)
    with pytest.raises(AsrError):
        A.room_impulse_response(RATE, (6, 4, 3), (1, 1, 1), (2, 2, 2), 0.0)


def test_band_limit_removes_the_upper_band():
    x = _tone(1.0, 1000.0) + _tone(1.0, 6000.0)
    y = A.band_limit(x, RATE, 8000)
    spectrum = np.abs(np.fft.rfft(y))
    assert len(y) == len(x)
    assert spectrum[6000] < 1e-3 * spectrum[1000]
    assert spectrum[1000] == pytest.approx(np.abs(np.fft.rfft(x))[1000], rel=0.05)


@pytest.mark.parametrize("codec", ["opus", "mp3"])
def test_codec_round_trip_keeps_length_and_timing(codec):
    rng = np.random.default_rng(0)
    # a tone with a click: the delay of the codec is removed, so the click stays in place
    x = _tone(1.0, 500.0, 0.2) + 0.05 * rng.standard_normal(RATE).astype(np.float32)
    for level in (0.0, 1.0):  # the whole range encodes
        assert len(A.codec_round_trip(x, RATE, codec, level)) == len(x)
    y = A.codec_round_trip(x, RATE, codec, 0.5)
    assert len(y) == len(x)
    assert np.corrcoef(x[1000:-1000], y[1000:-1000])[0, 1] > 0.9
    assert A._lag(x, y, 2000) == 0
    assert not np.array_equal(x, y)  # it is lossy
    with pytest.raises(AsrError):
        A.codec_round_trip(x, RATE, "aac")


def _data_dir(tmp_path):
    rng = np.random.default_rng(3)
    wavs = {f"{s}-{i}": _tone(0.6 + 0.1 * i, 200.0 + 150 * k) + 0.01 * rng.standard_normal(int((0.6 + 0.1 * i) * RATE))
            for k, s in enumerate("abc") for i in range(2)}
    for u, x in wavs.items():
        sf.write(tmp_path / f"{u}.wav", x, RATE, subtype="PCM_16")
    d = DataDir(wav={u: str(tmp_path / f"{u}.wav") for u in wavs}, text={u: ["YES"] for u in wavs},
                utt2spk={u: u.split("-")[0] for u in wavs})
    d.write(tmp_path / "src")
    return tmp_path / "src", wavs


def test_augment_data_dir_makes_reproducible_copies(tmp_path):
    src, wavs = _data_dir(tmp_path)
    cfg = A.AugmentConfig(copies=2, pad_prob=1.0, reverb_prob=0.5, noise_prob=1.0, codec_prob=0.5,
                          band_limit_prob=0.5, num_rooms=3)
    d = A.augment_data_dir(src, tmp_path / "aug", cfg)
    assert sorted(d.utt2spk) == sorted([*wavs, *(f"aug{k}-{u}" for k in (1, 2) for u in wavs)])
    assert d.utt2spk["aug2-b-1"] == "aug2-b" and d.text["aug1-c-0"] == ["YES"]
    assert original_id("aug2-b-1") == "b-1" and is_perturbed("aug1-sp0.9-b-1") and A.source_id("aug1-sp0.9-b") == "sp0.9-b"
    pads, descriptions = read_kv(tmp_path / "aug" / "utt2pad"), read_kv(tmp_path / "aug" / "utt2aug")
    kinds = set()
    for u, x in wavs.items():
        for k in (1, 2):
            new = f"aug{k}-{u}"
            y, rate = sf.read(d.wav[new])
            lead, trail = (float(v) for v in pads[new].split())
            assert rate == RATE and len(y) == len(x) + round(lead * RATE) + round(trail * RATE)
            assert lead * 100 == pytest.approx(round(lead * 100)) and descriptions[new].startswith("pad=")
            kinds.update(part.split("=")[0] for part in descriptions[new].split())
    assert {"pad", "noise", "gain"} <= kinds and len(kinds) >= 5
    # A rerun keeps the files and describes them alike; another seed draws other copies.
    stamp = (tmp_path / "aug" / "wav" / "aug1-a-0.wav").stat().st_mtime_ns
    A.augment_data_dir(src, tmp_path / "aug", cfg)
    assert (tmp_path / "aug" / "wav" / "aug1-a-0.wav").stat().st_mtime_ns == stamp
    assert read_kv(tmp_path / "aug" / "utt2aug") == descriptions
    fresh = A.augment_data_dir(src, tmp_path / "aug_again", cfg)
    np.testing.assert_array_equal(sf.read(fresh.wav["aug2-c-1"])[0], sf.read(d.wav["aug2-c-1"])[0])
    with pytest.raises(AsrError, match="other options"):  # its kept wavs were drawn otherwise
        A.augment_data_dir(src, tmp_path / "aug", A.AugmentConfig(**{**cfg.to_dict(), "seed": 5}))
    other = A.augment_data_dir(src, tmp_path / "aug_seed", A.AugmentConfig(**{**cfg.to_dict(), "seed": 5}))
    assert read_kv(tmp_path / "aug_seed" / "utt2aug") != descriptions
    assert not np.array_equal(sf.read(other.wav["aug2-c-1"])[0], sf.read(d.wav["aug2-c-1"])[0])


def test_augment_config_and_cli_reject_bad_options(tmp_path):
    for bad in ({"copies": 0}, {"noise_prob": 1.5}, {"noise_kinds": ["music"]}, {"codecs": ["aac"]}):
        with pytest.raises(AsrError):
            A.AugmentConfig.from_dict(bad)
    src, _ = _data_dir(tmp_path)
    assert main(["augment", str(src), str(tmp_path / "x"), "--set", "snr_rang=[0, 5]"]) == 1


def test_babble_copies_use_other_speakers_only(tmp_path):
    src, _ = _data_dir(tmp_path)
    data = DataDir.load(src)
    from asr.datadir import AudioReader

    aug = A.Augmenter(A.AugmentConfig(noise_prob=1.0, noise_kinds=["babble"], babble_talkers=(2, 3)),
                      AudioReader(data), data.utt2spk)
    for utt in data.utts():
        kind, _, _, talkers = aug.plan(utt, 1)["noise"]
        assert kind == "babble" and 2 <= len(talkers) <= 3
        assert all(data.utt2spk[t] != data.utt2spk[utt] for t in talkers)


def test_padded_copies_inherit_their_sources_alignment():
    tids = {"u": np.array([1, 1, 5, 6, 7, 2]), "v": np.array([5, 6, 2]), "w": np.array([1, 5, 6])}
    pdfs = {k: v * 10 for k, v in tids.items()}
    silent = {1, 2}
    pads = {"aug1-u": (2, 3), "aug1-v": (1, 0), "aug1-w": (0, 2), "aug2-w": (3, 0)}
    utts = ["u", "aug1-u", "aug1-v", "aug1-w", "aug2-w", "aug1-x"]
    out_t, out_p, missing, not_sil = A.padded_alignments(tids, pdfs, utts, pads, silent)
    np.testing.assert_array_equal(out_t["aug1-u"], [1, 1, 1, 1, 5, 6, 7, 2, 2, 2, 2])
    np.testing.assert_array_equal(out_p["aug1-u"], 10 * out_t["aug1-u"])
    np.testing.assert_array_equal(out_t["u"], tids["u"])
    np.testing.assert_array_equal(out_t["aug2-w"], [1, 1, 1, 1, 5, 6])
    # v starts in speech and w ends in it: without a silence path their padded copies are left out
    assert set(out_t) == {"u", "aug1-u", "aug2-w"} and missing == 1 and not_sil == 2
    # ... with one, the padding next to speech is a pass through the silence HMM's states
    path = [(1, 10), (3, 30), (2, 20)]
    out_t, out_p, missing, left = A.padded_alignments(tids, pdfs, utts, pads, silent, path)
    assert set(out_t) == {"u", "aug1-u", "aug1-v", "aug1-w", "aug2-w"} and missing == 1 and left == 0
    np.testing.assert_array_equal(out_t["aug1-v"], [1, 5, 6, 2])  # one frame: the first state
    np.testing.assert_array_equal(out_t["aug1-w"], [1, 5, 6, 1, 2])  # two frames over three states
    np.testing.assert_array_equal(out_p["aug1-w"], 10 * out_t["aug1-w"])


def test_silence_hmm_path_takes_each_states_commonest_ids(tiny_mono):
    trans = tiny_mono.trans
    sil = tiny_mono.phones.id("SIL")

    def tid(phone: int, state: int) -> int:  # the self-loop of (phone, state)
        ts = trans.tstate(phone, state)
        return next(t for t, dest in trans.arcs(ts) if dest == state)

    a_tid = tid(tiny_mono.phones.id("A"), 0)
    seq = [tid(sil, 0)] * 3 + [tid(sil, 1)] * 2 + [tid(sil, 2)] * 4 + [a_tid] * 5
    tids = {"u": np.array(seq)}
    pdfs = {"u": np.array([7] * 3 + [8] * 2 + [9, 9, 9, 4] + [1] * 5)}
    assert A.silence_hmm_path(tids, pdfs, trans, sil) == [(tid(sil, 0), 7), (tid(sil, 1), 8), (tid(sil, 2), 9)]
    assert A.silence_hmm_path({"u": np.array([a_tid])}, {"u": np.array([1])}, trans, sil) == []
