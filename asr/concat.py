"""Connected-speech copies of an isolated-word data dir: each speaker's utterances joined into strings.

A corpus of isolated words (FSDD's single digits, each clip trimmed to the word) teaches a
model words with silence on both sides and nothing about one word running into the next;
decoded on connected strings (AN4's "ONE FIVE TWO ONE TWO"), such a model mistakes word
boundaries. Each copy k here shuffles every speaker's utterances and cuts the sequence into
strings of ``lengths`` words, joined by short gaps of silence (some none at all) and with a
little silence before and after, as in a connected-digit recording. The words keep their own
audio (no coarticulation is made up), so a GMM aligns the strings like any other data dir.

Copies are named ``cat<k>-<spk>-<n>`` with speakers ``cat<k>-<spk>`` (per-speaker CMVN of
the strings, as for ``aug<k>-`` copies); ``utt2parts`` lists the utterances each is made
of, each with the second it starts at. The draws come from a generator seeded by (seed,
copy, speaker), so a rerun or a resumed run writes the same strings.
"""

from __future__ import annotations

import dataclasses
import logging
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from asr.augment import originals_of, start_copies_dir
from asr.datadir import AudioReader, DataDir, write_kv
from asr.utils import AsrError, Config, atomic_open

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ConcatConfig(Config):
    """How the strings are drawn (the ``[concat]`` recipe section)."""

    copies: int = 1  # string copies of the data (the originals are kept too)
    seed: int = 0
    lengths: tuple[int, int] = (2, 7)  # words per string, uniform in [min, max]
    gap_seconds: tuple[float, float] = (0.0, 0.25)  # silence between words, uniform
    edge_seconds: tuple[float, float] = (0.05, 0.5)  # silence before the first and after the last word

    def __post_init__(self) -> None:
        self.lengths = tuple(int(v) for v in self.lengths)
        self.gap_seconds, self.edge_seconds = (tuple(map(float, r)) for r in (self.gap_seconds, self.edge_seconds))
        if self.copies < 1:
            raise AsrError(f"concat: copies must be >= 1, got {self.copies}")
        for name in ("lengths", "gap_seconds", "edge_seconds"):
            lo, hi = getattr(self, name)
            if lo < 0 or hi < lo or (name == "lengths" and lo < 1):
                raise AsrError(f"concat: {name} must be a range [min, max] with 0 <= min <= max "
                               f"(lengths >= 1), got {[lo, hi]}")


def concat_id(copy: int, key: str) -> str:
    """``cat<copy>-key`` (copy >= 1)."""
    return f"cat{copy}-{key}"


def plan_strings(utts: list[str], cfg: ConcatConfig, rng: np.random.Generator) -> list[list[str]]:
    """Every utterance of ``utts`` once, shuffled and cut into strings of ``cfg.lengths`` words."""
    order = [utts[i] for i in rng.permutation(len(utts))]
    strings, i = [], 0
    while i < len(order):
        n = int(rng.integers(cfg.lengths[0], cfg.lengths[1] + 1))
        strings.append(order[i:i + n])
        i += n
    return strings


def join_audio(parts: list[np.ndarray], rate: int, gaps: list[float], lead: float, trail: float
               ) -> tuple[np.ndarray, list[int]]:
    """(N,) float32 ``parts`` one after another, ``gaps[i]`` seconds of zeros between parts i and
    i + 1 (len(parts) - 1 gaps), ``lead`` before and ``trail`` after; and the sample each part starts at."""
    if len(gaps) != len(parts) - 1 or min([lead, trail, *gaps]) < 0:
        raise AsrError(f"join_audio: {len(parts)} parts need {len(parts) - 1} gaps >= 0 s, got {gaps}")
    silence = [np.zeros(int(round(s * rate)), np.float32) for s in (lead, *gaps, trail)]
    pieces, starts, at = [silence[0]], [], len(silence[0])
    for k, part in enumerate(parts):
        starts.append(at)
        pieces += [np.asarray(part, np.float32), silence[k + 1]]
        at += len(part) + len(silence[k + 1])
    return np.concatenate(pieces), starts


def concat_data_dir(src: str | Path, out: str | Path, cfg: ConcatConfig | None = None) -> DataDir:
    """Write data dir ``out``: the utterances of ``src`` and ``cfg.copies`` copies joined into strings.

    Strings are 16-bit wavs under ``out/wav`` (written atomically; one already there is kept,
    so an interrupted run resumes with the same audio); ``out/utt2parts`` names their parts.
    Every utterance of ``src`` needs a transcript and the parts of a string one sample rate.
    """
    cfg = cfg or ConcatConfig()
    data = DataDir.load(src)
    missing = [u for u in data.utts() if u not in data.text]
    if missing:
        raise AsrError(f"{src}: utterance '{missing[0]}' has no transcript; strings need every word's text")
    out = Path(out)
    wav_dir = start_copies_dir(out, "concat.json", cfg)
    result = originals_of(data)
    audio = AudioReader(data)
    utt2parts = {}
    for copy in range(1, cfg.copies + 1):
        for spk, utts in tqdm(data.spk2utt.items(), desc=f"concat copy {copy}", unit="spk", leave=False,
                              disable=None):
            rng = np.random.default_rng([cfg.seed, copy, zlib.crc32(spk.encode())])
            for n, parts in enumerate(plan_strings(utts, cfg, rng)):
                new = concat_id(copy, f"{spk}-{n:05d}")
                if new in result.utt2spk:
                    raise AsrError(f"{src}: string id '{new}' clashes with an existing utterance")
                gaps = rng.uniform(*cfg.gap_seconds, size=len(parts) - 1).tolist()
                lead, trail = rng.uniform(*cfg.edge_seconds, size=2).tolist()
                path = (wav_dir / f"{new}.wav").resolve()
                samples, rates = zip(*(audio(u) for u in parts))
                if len(set(rates)) > 1:
                    raise AsrError(f"{src}: utterances {', '.join(parts)} have different sample rates "
                                   f"({sorted(set(rates))}); resample the data dir first")
                joined, starts = join_audio(list(samples), rates[0], gaps, lead, trail)
                if not path.exists():
                    with atomic_open(path, "wb") as f:
                        sf.write(f, np.clip(joined, -1.0, 32767 / 32768), rates[0], subtype="PCM_16", format="WAV")
                result.utt2spk[new] = concat_id(copy, spk)
                result.text[new] = [w for u in parts for w in data.text[u]]
                result.wav[new] = str(path)
                if data.segments:
                    result.segments[new] = (new, 0.0, -1.0)
                utt2parts[new] = " ".join(f"{u} {b / rates[0]:.4f}" for u, b in zip(parts, starts))
    result.write(out)
    write_kv(out / "utt2parts", utt2parts)
    log.info("%s: %d utterances and %d strings of them in %s", src, len(data.utt2spk), len(utt2parts), out)
    return result
