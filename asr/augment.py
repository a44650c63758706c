"""Multi-condition copies of a data dir (Kaldi's ``steps/data/reverberate_data_dir.py`` and
``augment_data_dir.py``, with the noises and rooms simulated here instead of downloaded).

Each copy k of an utterance gets its own random chain of conditions, drawn from a
generator seeded by (seed, k, utterance id), so a rerun or a resumed run makes the same
audio: leading and trailing silence, room reverberation (an image-method impulse response
of a random shoebox room), additive noise at an SNR (white, pink, brown or babble mixed from
other speakers of the data), telephone band-limiting, a lossy codec round trip (Opus, MP3)
and a gain change. Padding is a whole number of 10 ms frames and every other condition
keeps the length, so a copy's frames line up with its source's and the source's alignment
serves it (:func:`copy_alignments`): noisy copies are not realigned by a GMM that would
align them worse than the clean originals.

Copies are named ``aug<k>-<utt>`` with speakers ``aug<k>-<spk>`` (per-speaker CMVN sees a
new channel); ``asr.perturb.original_id`` maps them back for held-out splits and targets.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from asr import backend
from asr.datadir import AudioReader, DataDir, write_kv
from asr.utils import AsrError, Config, atomic_open, ensure_dir, read_utf8, write_text_atomic

log = logging.getLogger(__name__)

SOUND_SPEED = 343.0  # m/s
NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f^exponent
CODECS = {"opus": ("OGG", "OPUS"), "mp3": ("MP3", "MPEG_LAYER_III")}
_AUG_PREFIX = re.compile(r"^aug[0-9]+-")


def augmented_id(copy: int, key: str) -> str:
    """``aug<copy>-key`` (copy >= 1)."""
    return f"aug{copy}-{key}"


def source_id(key: str) -> str:
    """The utterance an augmented copy was made from (``aug2-sp0.9-u`` -> ``sp0.9-u``)."""
    return _AUG_PREFIX.sub("", key, count=1)


# --- single conditions on (N,) float samples --------------------------------------------------

def signal_power(x: np.ndarray) -> float:
    """Mean square of (N,) samples."""
    return float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """(N,) ``x`` plus ``noise`` (tiled or cut to N) scaled so that power(x) / power(noise) is
    ``snr_db`` over the whole signal (Kaldi's wav-reverberate --additive-signals)."""
    if len(noise) == 0 or signal_power(noise) == 0:
        raise AsrError("add_noise: the noise is empty or silent")
    noise = np.resize(noise, len(x)).astype(np.float64)  # np.resize tiles
    ps, pn = signal_power(x), signal_power(noise)
    if ps == 0:
        return x.copy()
    scale = np.sqrt(ps / (pn * 10.0 ** (snr_db / 10.0)))
    return (x + scale * noise).astype(np.float32)


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) Gaussian noise of unit power whose power spectrum falls as 1 / f^exponent
    (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0  # no infinite DC; the DC bin is zeroed below
    spectrum *= f ** (-exponent / 2.0)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n)
    return (noise / np.sqrt(max(signal_power(noise), 1e-20))).astype(np.float32)


def babble(others: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) sum of other talkers, each cut at a random offset (tiled if short) to n samples and
    normalised to unit power before mixing, as babble noise is made of several voices."""
    mix = np.zeros(n, dtype=np.float64)
    for voice in others:
        if signal_power(voice) == 0:
            continue
        start = int(rng.integers(len(voice)))
        part = np.resize(np.roll(voice, -start), n).astype(np.float64)
        mix += part / np.sqrt(signal_power(part) or 1.0)
    if not mix.any():
        raise AsrError("babble: no talker with any signal")
    return mix.astype(np.float32)


def change_gain(x: np.ndarray, gain_db: float) -> np.ndarray:
    return (x * 10.0 ** (gain_db / 20.0)).astype(np.float32)


def pad_silence(x: np.ndarray, rate: int, lead: float, trail: float) -> np.ndarray:
    """``x`` with round(lead * rate) zeros before and round(trail * rate) after."""
    if lead < 0 or trail < 0:
        raise AsrError(f"pad_silence: padding must be >= 0 s, got {lead} and {trail}")
    return np.concatenate([np.zeros(int(round(lead * rate)), np.float32), x.astype(np.float32),
                           np.zeros(int(round(trail * rate)), np.float32)])


def band_limit(x: np.ndarray, rate: int, narrow_rate: int = 8000) -> np.ndarray:
    """(N,) ``x`` with nothing above narrow_rate / 2 (telephone audio at ``rate``): down to
    ``narrow_rate`` and back, the length kept."""
    if narrow_rate >= rate:
        return x.astype(np.float32)
    back = backend.resample(backend.resample(x.astype(np.float32), rate, narrow_rate), narrow_rate, rate)
    return np.resize(back, len(x)).astype(np.float32) if len(back) < len(x) else back[:len(x)].astype(np.float32)


def _lag(reference: np.ndarray, delayed: np.ndarray, max_lag: int) -> int:
    """Samples by which ``delayed`` lags ``reference`` (cross-correlation peak in +-max_lag)."""
    n = min(len(reference), len(delayed))
    size = 1 << int(np.ceil(np.log2(2 * n + 1)))
    xc = np.fft.irfft(np.fft.rfft(delayed[:n], size) * np.conj(np.fft.rfft(reference[:n], size)), size)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    return int(lags[np.argmax(xc[lags])])


def codec_round_trip(x: np.ndarray, rate: int, codec: str, compression: float = 0.5) -> np.ndarray:
    """(N,) ``x`` encoded with ``codec`` (opus or mp3, via libsndfile) at ``compression`` in [0, 1]
    (1 = lowest bitrate) and decoded; the codec's delay is removed so the length and timing
    are kept."""
    if codec not in CODECS:
        raise AsrError(f"unknown codec '{codec}' (known: {', '.join(CODECS)})")
    fmt, subtype = CODECS[codec]
    # libsndfile's LAME refuses its very lowest bitrate (level 1.0)
    compression = min(max(compression, 0.0), 0.95 if codec == "mp3" else 1.0)
    buf = io.BytesIO()
    try:
        sf.write(buf, np.clip(x, -1.0, 1.0), rate, format=fmt, subtype=subtype, compression_level=compression)
        buf.seek(0)
        y, _ = sf.read(buf, dtype="float32")
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AsrError(f"{codec} at {rate} Hz: libsndfile cannot encode it ({e})") from None
    y = y if y.ndim == 1 else y.mean(axis=1)
    lag = _lag(x, y, min(4096, len(x) // 2)) if len(x) > 16 else 0
    y = y[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, np.float32), y])
    return np.concatenate([y, np.zeros(max(0, len(x) - len(y)), np.float32)])[:len(x)].astype(np.float32)


# --- simulated rooms ------------------------------------------------------------------------------

def room_impulse_response(rate: int, room: tuple[float, float, float], source: tuple[float, float, float],
                          mic: tuple[float, float, float], rt60: float, seconds: float | None = None) -> np.ndarray:
    """(L,) impulse response from ``source`` to ``mic`` in a shoebox ``room`` (metres) whose walls
    all absorb alike, by Allen and Berkley's image method, normalised to a direct path of 1,
    with a measured decay (:func:`decay_time`) of ``rt60`` seconds.

    Eyring's formula gives the first absorption. With equal walls, paths near the room's
    axes meet fewer walls than the average ray, so the image method decays more slowly than
    Eyring predicts; two corrections of the target by the measured decay fix that.
    ``seconds`` (default ``rt60``) is the response's length.
    """
    dims = np.asarray(room, dtype=np.float64)
    src, rcv = np.asarray(source, dtype=np.float64), np.asarray(mic, dtype=np.float64)
    if dims.shape != (3,) or (dims <= 0).any():
        raise AsrError(f"room dimensions must be three positive lengths, got {room}")
    for name, p in (("source", src), ("mic", rcv)):
        if p.shape != (3,) or (p <= 0).any() or (p >= dims).any():
            raise AsrError(f"the {name} {tuple(p)} is not inside the room {tuple(dims)}")
    if rt60 <= 0:
        raise AsrError(f"rt60 must be positive, got {rt60}")
    seconds = rt60 if seconds is None else seconds
    volume = float(np.prod(dims))
    surface = 2.0 * (dims[0] * dims[1] + dims[0] * dims[2] + dims[1] * dims[2])
    target = rt60
    for _ in range(3):
        alpha = 1.0 - np.exp(-0.161 * volume / (surface * target))
        h = _image_method(rate, dims, src, rcv, np.sqrt(1.0 - alpha), seconds)
        try:
            target *= rt60 / decay_time(h, rate)
        except AsrError:
            break  # too short to measure: keep Eyring's
    return h


def _image_method(rate: int, dims: np.ndarray, src: np.ndarray, rcv: np.ndarray, beta: float,
                  seconds: float) -> np.ndarray:
    """(ceil(seconds * rate),) the image-method response for wall reflection coefficient ``beta``."""
    length = int(np.ceil(seconds * rate))
    max_dist = SOUND_SPEED * seconds
    # Per dimension: each image's coordinate minus the mic's, and the walls its path meets
    # (image (1 - 2q) s + 2 n L: |n - q| + |n| reflections).
    axis = []
    for d in range(3):
        reach = int(np.ceil(max_dist / (2 * dims[d]))) + 1
        n = np.arange(-reach, reach + 1)
        axis.append((np.concatenate([src[d] + 2 * n * dims[d] - rcv[d], -src[d] + 2 * n * dims[d] - rcv[d]]),
                     np.concatenate([2 * np.abs(n), np.abs(n - 1) + np.abs(n)])))
    h = np.zeros(length + 2, dtype=np.float64)
    yz2 = axis[1][0][:, None] ** 2 + axis[2][0][None, :] ** 2
    yzb = axis[1][1][:, None] + axis[2][1][None, :]
    for ox, bx in zip(*axis[0]):  # one x image at a time bounds memory
        dist = np.sqrt(ox * ox + yz2)
        keep = dist < max_dist
        if not keep.any():
            continue
        dist, refl = dist[keep], (bx + yzb)[keep]
        delay = dist / SOUND_SPEED * rate
        amp = beta ** refl / (4.0 * np.pi * np.maximum(dist, 1e-3))
        i = np.floor(delay).astype(np.int64)
        frac = delay - i
        # linear fractional delay: each arrival shared by its two neighbouring samples
        h += np.bincount(i, amp * (1 - frac), minlength=length + 2)[:length + 2]
        h += np.bincount(i + 1, amp * frac, minlength=length + 2)[:length + 2]
    h = h[:length]
    peak = np.abs(h).max()
    return (h / peak).astype(np.float32) if peak > 0 else h.astype(np.float32)


def random_room_rir(rate: int, rng: np.random.Generator, rt60_range: tuple[float, float]) -> tuple[np.ndarray, float]:
    """An impulse response of a random room (3-10 x 3-8 x 2.5-4 m, source and mic >= 0.5 m from
    the walls) with an RT60 drawn from ``rt60_range``; returns it and its RT60."""
    room = np.array([rng.uniform(3, 10), rng.uniform(3, 8), rng.uniform(2.5, 4)])
    src, mic = (np.array([rng.uniform(0.5, d - 0.5) for d in room]) for _ in range(2))
    rt60 = float(rng.uniform(*rt60_range))
    return room_impulse_response(rate, tuple(room), tuple(src), tuple(mic), rt60, min(rt60, 1.0)), rt60


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """(N,) ``x`` convolved with ``rir``, shifted so the direct path stays in place (the frames
    keep their alignment), cut to N samples and scaled back to the power of ``x``."""
    from scipy.signal import fftconvolve

    if len(rir) == 0 or not np.any(rir):
        raise AsrError("reverberate: the impulse response is empty")
    direct = int(np.argmax(np.abs(rir)))
    y = fftconvolve(x.astype(np.float64), rir.astype(np.float64))[direct:direct + len(x)]
    py = signal_power(y)
    return (y * np.sqrt(signal_power(x) / py) if py > 0 else y).astype(np.float32)


def decay_time(rir: np.ndarray, rate: int) -> float:
    """RT60 of an impulse response from its Schroeder energy decay curve (Kaldi's and ISO
    3382's T20: the -5 to -25 dB slope extrapolated to -60 dB)."""
    energy = np.cumsum(np.square(rir[::-1].astype(np.float64)))[::-1]
    edc = 10 * np.log10(np.maximum(energy / energy[0], 1e-30))
    t = np.arange(len(rir)) / rate
    sel = (edc <= -5) & (edc >= -25)
    if sel.sum() < 2:
        raise AsrError("decay_time: the response does not decay by 25 dB")
    slope = np.polyfit(t[sel], edc[sel], 1)[0]
    return float(-60.0 / slope)


# --- a data dir's augmented copies -------------------------------------------------------------

@dataclasses.dataclass
class AugmentConfig(Config):
    """How each augmented copy is drawn (the ``[augment]`` recipe section)."""

    copies: int = 1  # augmented copies of every utterance (the originals are kept too)
    seed: int = 0
    pad_prob: float = 0.5  # leading and trailing silence, each uniform in [0, pad_max_seconds]
    pad_max_seconds: float = 1.0
    reverb_prob: float = 0.3
    rt60_range: tuple[float, float] = (0.2, 0.8)
    num_rooms: int = 30  # simulated rooms drawn once and shared by the copies
    noise_prob: float = 0.6
    snr_range: tuple[float, float] = (0.0, 20.0)  # dB
    noise_kinds: tuple[str, ...] = ("white", "pink", "brown", "babble")
    babble_talkers: tuple[int, int] = (3, 7)
    band_limit_prob: float = 0.2  # telephone band (content below 4 kHz only)
    narrow_rate: int = 8000
    codec_prob: float = 0.2
    codecs: tuple[str, ...] = ("opus", "mp3")
    gain_range: tuple[float, float] = (-10.0, 6.0)  # dB; the result is clipped to [-1, 1)

    def __post_init__(self) -> None:
        self.rt60_range, self.snr_range, self.gain_range = (tuple(map(float, r)) for r in
                                                            (self.rt60_range, self.snr_range, self.gain_range))
        self.noise_kinds, self.codecs = tuple(self.noise_kinds), tuple(self.codecs)
        self.babble_talkers = tuple(int(v) for v in self.babble_talkers)
        if self.copies < 1:
            raise AsrError(f"augment: copies must be >= 1, got {self.copies}")
        for name in ("pad_prob", "reverb_prob", "noise_prob", "band_limit_prob", "codec_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise AsrError(f"augment: {name} must be a probability, got {getattr(self, name)}")
        bad = [k for k in self.noise_kinds if k not in NOISE_EXPONENTS and k != "babble"]
        bad += [c for c in self.codecs if c not in CODECS]
        if bad:
            raise AsrError(f"augment: unknown noise kind or codec {', '.join(bad)} "
                           f"(known: {', '.join([*NOISE_EXPONENTS, 'babble', *CODECS])})")


def _rng(seed: int, copy: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, copy, zlib.crc32(key.encode())])


class Augmenter:
    """Draws one copy's conditions (:meth:`plan`, cheap: no audio) and applies them
    (:meth:`apply`); ``utt2spk`` and ``audio`` give babble its voices (other speakers)."""

    def __init__(self, cfg: AugmentConfig, audio: AudioReader, utt2spk: dict[str, str]):
        self.cfg, self.audio, self.utt2spk = cfg, audio, utt2spk
        self._rooms: dict[int, list[tuple[np.ndarray, float]]] = {}
        self._others: dict[str, list[str]] = {}  # speaker -> the other speakers' utterances, sorted

    def rooms(self, rate: int) -> list[tuple[np.ndarray, float]]:
        """The ``num_rooms`` simulated rooms at ``rate``, drawn once from the seed."""
        if rate not in self._rooms:
            rng = np.random.default_rng([self.cfg.seed, 1 << 20])
            self._rooms[rate] = [random_room_rir(rate, rng, self.cfg.rt60_range) for _ in range(self.cfg.num_rooms)]
        return self._rooms[rate]

    def plan(self, utt: str, copy: int) -> dict:
        """The conditions of copy ``copy`` of ``utt``: {"pad": (lead, trail) s, "reverb": room index,
        "noise": (kind, snr dB, seed, talkers), "band": rate, "codec": (name, compression), "gain": dB}."""
        cfg, rng = self.cfg, _rng(self.cfg.seed, copy, utt)
        plan: dict = {"pad": (0.0, 0.0)}
        if rng.random() < cfg.pad_prob:
            # whole 10 ms frames, so the copy's frames are its source's plus silent ones
            plan["pad"] = tuple(round(float(rng.uniform(0, cfg.pad_max_seconds)), 2) for _ in range(2))
        if rng.random() < cfg.reverb_prob:
            plan["reverb"] = int(rng.integers(cfg.num_rooms))
        if rng.random() < cfg.noise_prob and cfg.noise_kinds:
            kind = cfg.noise_kinds[int(rng.integers(len(cfg.noise_kinds)))]
            talkers: list[str] = []
            if kind == "babble":
                others = self._other_talkers(self.utt2spk[utt])
                k = int(rng.integers(cfg.babble_talkers[0], cfg.babble_talkers[1] + 1))
                talkers = [others[int(i)] for i in rng.choice(len(others), size=min(k, len(others)), replace=False)]
                kind = kind if talkers else "pink"  # a single-speaker data dir has no babble
            plan["noise"] = (kind, round(float(rng.uniform(*cfg.snr_range)), 1), int(rng.integers(1 << 31)), talkers)
        if rng.random() < cfg.band_limit_prob:
            plan["band"] = cfg.narrow_rate
        if rng.random() < cfg.codec_prob and cfg.codecs:
            plan["codec"] = (cfg.codecs[int(rng.integers(len(cfg.codecs)))], round(float(rng.uniform(0.3, 1.0)), 2))
        plan["gain"] = round(float(rng.uniform(*cfg.gain_range)), 1)
        return plan

    def _other_talkers(self, spk: str) -> list[str]:
        if spk not in self._others:
            self._others[spk] = sorted(u for u, s in self.utt2spk.items() if s != spk)
        return self._others[spk]

    def apply(self, x: np.ndarray, rate: int, plan: dict) -> np.ndarray:
        """(N,) samples at ``rate`` -> the copy's (N + padding,) samples, clipped to [-1, 1)."""
        x = pad_silence(x, rate, *plan["pad"])
        if "reverb" in plan:
            x = reverberate(x, self.rooms(rate)[plan["reverb"]][0])
        if "noise" in plan:
            kind, snr, seed, talkers = plan["noise"]
            rng = np.random.default_rng(seed)
            if kind == "babble":
                voices = []
                for u in talkers:
                    samples, r = self.audio(u)
                    voices.append(samples if r == rate else backend.resample(samples, r, rate))
                noise = babble(voices, len(x), rng)
            else:
                noise = coloured_noise(len(x), NOISE_EXPONENTS[kind], rng)
            x = add_noise(x, noise, snr)
        if "band" in plan:
            x = band_limit(x, rate, plan["band"])
        if "codec" in plan:
            x = codec_round_trip(x, rate, *plan["codec"])
        return np.clip(change_gain(x, plan["gain"]), -1.0, 32767 / 32768)


def describe(plan: dict) -> str:
    """One utt2aug line: ``pad=0.31,0.05 room=12 noise=babble:7.2dB band=8000 codec=opus gain=-3.1dB``."""
    parts = [f"pad={plan['pad'][0]:.2f},{plan['pad'][1]:.2f}"]
    if "reverb" in plan:
        parts.append(f"room={plan['reverb']}")
    if "noise" in plan:
        parts.append(f"noise={plan['noise'][0]}:{plan['noise'][1]:.1f}dB")
    if "band" in plan:
        parts.append(f"band={plan['band']}")
    if "codec" in plan:
        parts.append(f"codec={plan['codec'][0]}")
    parts.append(f"gain={plan['gain']:.1f}dB")
    return " ".join(parts)


def start_copies_dir(out: Path, options_file: str, cfg: Config) -> Path:
    """Create ``out/wav`` for a data dir of generated copies and record ``cfg`` in ``out/options_file``.

    The kept wavs of a resumed run must have been drawn with the same options, so a dir made
    with other ones is refused. Returns the wav folder.
    """
    options = json.dumps(cfg.to_dict(), sort_keys=True)
    if (out / options_file).is_file() and read_utf8(out / options_file).strip() != options:
        raise AsrError(f"{out} was made with other options ({out}/{options_file}); remove it or write elsewhere")
    ensure_dir(out / "wav")
    write_text_atomic(out / options_file, options + "\n")
    return out / "wav"


def originals_of(data: DataDir) -> DataDir:
    """A new data dir holding ``data``'s utterances unchanged (copies are added to it)."""
    result = DataDir()
    for utt in data.utts():
        result.utt2spk[utt] = data.utt2spk[utt]
        if utt in data.text:
            result.text[utt] = list(data.text[utt])
        rec = data.recording(utt)
        result.wav[rec] = data.wav[rec]
        if data.segments:
            result.segments[utt] = data.segments[utt]
    return result


def augment_data_dir(src: str | Path, out: str | Path, cfg: AugmentConfig | None = None) -> DataDir:
    """Write data dir ``out``: the utterances of ``src`` and ``cfg.copies`` augmented copies of each.

    Copies are 16-bit wavs under ``out/wav`` (written atomically; one already there is kept,
    so an interrupted run resumes with the same audio). ``out/utt2aug`` says what each copy
    got and ``out/utt2pad`` its leading and trailing silence in seconds.
    """
    cfg = cfg or AugmentConfig()
    data = DataDir.load(src)
    out = Path(out)
    wav_dir = start_copies_dir(out, "augment.json", cfg)
    result = originals_of(data)
    audio = AudioReader(data)
    augmenter = Augmenter(cfg, AudioReader(data), data.utt2spk)  # its own reader: babble reads others
    utt2aug, utt2pad = {}, {}
    for copy in range(1, cfg.copies + 1):
        for utt in tqdm(data.utts_by_recording(), desc=f"augment copy {copy}", unit="utt", leave=False, disable=None):
            new = augmented_id(copy, utt)
            if new in result.utt2spk:
                raise AsrError(f"{src}: augmented id '{new}' clashes with an existing utterance")
            plan = augmenter.plan(utt, copy)
            path = (wav_dir / f"{new}.wav").resolve()
            if not path.exists():
                samples, rate = audio(utt)
                with atomic_open(path, "wb") as f:
                    sf.write(f, augmenter.apply(samples, rate, plan), rate, subtype="PCM_16", format="WAV")
            result.utt2spk[new] = augmented_id(copy, data.utt2spk[utt])
            if utt in data.text:
                result.text[new] = list(data.text[utt])
            result.wav[new] = str(path)
            if data.segments:
                result.segments[new] = (new, 0.0, -1.0)
            utt2aug[new] = describe(plan)
            utt2pad[new] = f"{plan['pad'][0]:.2f} {plan['pad'][1]:.2f}"
    result.write(out)
    write_kv(out / "utt2aug", utt2aug)
    write_kv(out / "utt2pad", utt2pad)
    log.info("%s: %d utterances and %d augmented copies in %s", src, len(data.utt2spk), len(utt2aug), out)
    return result


def padded_alignments(tids: dict[str, np.ndarray], pdfs: dict[str, np.ndarray], utts: list[str],
                      pads: dict[str, tuple[int, int]], silent_tids: set[int],
                      silence_path: list[tuple[int, int]] | None = None):
    """Each of ``utts`` gets its source's (T,) tid and pdf alignment (:func:`source_id`) with its
    (lead, trail) padding frames added.

    A source that begins (ends) in silence is extended by more frames of that first (last)
    state, more self-loops of the same HMM state. One that begins (ends) in speech gets a
    whole pass through the silence HMM, ``silence_path``'s (tid, pdf) per state split evenly
    over the padding, as optional silence would be aligned; without a path such a copy is
    left out. Returns the tid and pdf dicts and the counts of utterances without a source
    alignment and of copies left out."""
    def pad(n: int, edge_t: int, edge_p: int):
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if edge_t in silent_tids:
            return np.full(n, edge_t), np.full(n, edge_p)
        if not silence_path:
            return None
        S = len(silence_path)
        # every state a run when there are frames enough, else the first, the last and some between
        k = np.arange(n) * S // n if n >= S else np.round(np.linspace(0, S - 1, n)).astype(np.int64)
        path = np.asarray(silence_path, dtype=np.int64)[k]
        return path[:, 0], path[:, 1]

    out_t, out_p, missing, left_out = {}, {}, 0, 0
    for utt in utts:
        src = source_id(utt)
        if src not in tids:
            missing += 1
            continue
        t, p = tids[src], pdfs[src]
        lead, trail = pads.get(utt, (0, 0))
        before, after = pad(lead, int(t[0]), int(p[0])), pad(trail, int(t[-1]), int(p[-1]))
        if before is None or after is None:
            left_out += 1
            continue
        out_t[utt] = np.concatenate([before[0], t, after[0]])
        out_p[utt] = np.concatenate([before[1], p, after[1]])
    return out_t, out_p, missing, left_out


def silence_hmm_path(tids: dict[str, np.ndarray], pdfs: dict[str, np.ndarray], trans, silence: int) -> list[tuple[int, int]]:
    """The most frequent (tid, pdf) of each state of phone ``silence``'s HMM in an alignment, in
    state order: a pass through silence for padding next to speech. Empty if a state never occurs."""
    counts: dict[tuple[int, int, int], int] = {}
    for u, t in tids.items():
        phone = trans.tstate_phone[trans.tid_tstate[t]]
        sel = phone == silence
        if not sel.any():
            continue
        state = trans.tstate_hmm_state[trans.tid_tstate[t[sel]]]
        keys, n = np.unique(np.stack([state, t[sel], pdfs[u][sel]]), axis=1, return_counts=True)
        for (s, tid, pdf), c in zip(keys.T.tolist(), n.tolist()):
            counts[(s, tid, pdf)] = counts.get((s, tid, pdf), 0) + c
    best: dict[int, tuple[int, tuple[int, int]]] = {}
    for (s, tid, pdf), c in counts.items():
        if c > best.get(s, (0, (0, 0)))[0]:
            best[s] = (c, (tid, pdf))
    num_states = int(trans.phone_num_states[silence]) if silence < len(trans.phone_num_states) else 0
    if num_states == 0 or any(s not in best for s in range(num_states)):
        return []
    return [best[s][1] for s in range(num_states)]


def copy_alignments(ali_dir: str | Path, data_dir: str | Path, out_dir: str | Path, model_dir: str | Path) -> None:
    """Alignments for an augmented data dir from its sources' (Kaldi's copy of clean alignments
    to reverberated copies): each copy takes its source's frames, with its padding's frames
    given silence states (:func:`padded_alignments`)."""
    from asr.acoustic import frame_shift_s, load_model
    from asr.datadir import read_kv
    from asr.hmm.alignments import TREE_FINGERPRINT, read_alignments, write_alignments

    ali_dir, data_dir, out_dir = Path(ali_dir), Path(data_dir), Path(out_dir)
    model = load_model(model_dir)
    data = DataDir.load(data_dir, require_text=False)
    tids, pdfs = read_alignments(ali_dir, "tid"), read_alignments(ali_dir, "pdf")
    pads = {}
    if (data_dir / "utt2pad").exists():
        for utt, v in read_kv(data_dir / "utt2pad").items():
            try:
                lead, trail = (int(round(float(s) * 100)) for s in v.split())
            except ValueError:
                raise AsrError(f"{data_dir}/utt2pad: '{utt}' needs two paddings in seconds, got '{v}'") from None
            pads[utt] = (lead, trail)
    shift = frame_shift_s(model)
    if abs(shift - 0.01) > 1e-9 and pads:
        raise AsrError(f"{model_dir}: copy_alignments assumes 10 ms frames, the model has {shift * 1000:g} ms")
    trans = model.trans
    sil = model.phones.id(model.silence_phone)
    silent_tids = set(np.flatnonzero(trans.tstate_phone[trans.tid_tstate] == sil).tolist())
    path = silence_hmm_path(tids, pdfs, trans, sil) if pads else []
    out_t, out_p, missing, left_out = padded_alignments(tids, pdfs, data.utts(), pads, silent_tids, path)
    if not out_t:
        raise AsrError(f"{ali_dir}: no utterance of {data_dir} (or its source) has an alignment")
    tree = (ali_dir / TREE_FINGERPRINT).read_text().strip() if (ali_dir / TREE_FINGERPRINT).exists() else None
    write_alignments(out_dir, out_t, out_p, tree)
    log.info("%s: alignments of %d utterances copied from %s (%d without a source alignment, %d padded next to "
             "speech left out: no silence path)", out_dir, len(out_t), ali_dir, missing, left_out)
