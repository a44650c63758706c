"""Kaldi data directories: ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from asr.utils import AsrError, atomic_open, ensure_dir, read_utf8


def read_kv(path: str | os.PathLike) -> dict[str, str]:
    """Read a Kaldi key-value file: first token is the key, the rest of the line the value.

    Blank lines are skipped. A duplicate key or a key with no value is an AsrError naming
    the file and line number.
    """
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"file not found: {path}")
    out: dict[str, str] = {}
    for n, line in enumerate(read_utf8(path).splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            raise AsrError(f"{path}:{n}: key '{parts[0]}' has no value")
        key, value = parts[0], parts[1].strip()
        if key in out:
            raise AsrError(f"{path}:{n}: duplicate key '{key}'")
        out[key] = value
    return out


def write_kv(path: str | os.PathLike, data: dict[str, str]) -> None:
    """Write ``key value`` lines sorted by key (C-locale order), atomically."""
    with atomic_open(path) as f:
        for key in sorted(data):
            f.write(f"{key} {data[key]}\n")


def read_text_file(path: Path) -> dict[str, list[str]]:
    """Read a Kaldi ``text`` file; an utterance with no words is allowed."""
    out: dict[str, list[str]] = {}
    for n, line in enumerate(read_utf8(path).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] in out:
            raise AsrError(f"{path}:{n}: duplicate utterance '{parts[0]}'")
        out[parts[0]] = parts[1:]
    return out


def _check_sorted(path: Path, keys: list[str]) -> None:
    """Kaldi requires C-locale sorted, unique keys (plain Python string order)."""
    for a, b in zip(keys, keys[1:]):
        if a == b:
            raise AsrError(f"{path}: duplicate key '{b}'")
        if b < a:
            raise AsrError(f"{path}: not sorted: '{b}' comes after '{a}'")


@dataclass
class DataDir:
    """An in-memory Kaldi data directory.

    ``wav`` maps utterance -> wav.scp entry (path or pipe command), ``text`` utterance ->
    word list, ``utt2spk`` utterance -> speaker. ``spk2utt`` is derived. With a
    ``segments`` file (utterance -> recording, start s, end s), ``wav`` is keyed by
    recording instead, as in Kaldi.
    """

    path: Path | None = None
    wav: dict[str, str] = field(default_factory=dict)
    text: dict[str, list[str]] = field(default_factory=dict)
    utt2spk: dict[str, str] = field(default_factory=dict)
    segments: dict[str, tuple[str, float, float]] = field(default_factory=dict)

    def recording(self, utt: str) -> str:
        """The wav.scp key holding ``utt``'s audio."""
        return self.segments[utt][0] if self.segments else utt

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        """Speaker -> sorted list of its utterances."""
        out: dict[str, list[str]] = {}
        for utt in sorted(self.utt2spk):
            out.setdefault(self.utt2spk[utt], []).append(utt)
        return {spk: out[spk] for spk in sorted(out)}

    @classmethod
    def load(cls, path: str | os.PathLike, require_text: bool = True) -> "DataDir":
        """Load ``path/{wav.scp,utt2spk[,text]}`` and validate the result.

        Key order in the files is checked too (Kaldi tools rely on sorted files).
        """
        path = Path(path)
        if not path.is_dir():
            raise AsrError(f"data directory not found: {path}")
        wav_path, utt2spk_path, text_path = path / "wav.scp", path / "utt2spk", path / "text"
        wav = read_kv(wav_path)
        utt2spk = read_kv(utt2spk_path)
        _check_sorted(wav_path, list(wav))
        _check_sorted(utt2spk_path, list(utt2spk))
        segments: dict[str, tuple[str, float, float]] = {}
        if (path / "segments").is_file():
            for utt, value in read_kv(path / "segments").items():
                parts = value.split()
                try:
                    segments[utt] = (parts[0], float(parts[1]), float(parts[2]))
                    if not 0 <= segments[utt][1] < segments[utt][2] and segments[utt][2] != -1:
                        raise ValueError
                except (ValueError, IndexError):
                    raise AsrError(f"{path}/segments: bad line for '{utt}': expected RECORDING START END "
                                   f"(seconds), got {value!r}") from None
        text: dict[str, list[str]] = {}
        has_text = text_path.is_file()
        if has_text:
            text = read_text_file(text_path)
            _check_sorted(text_path, list(text))
        elif require_text:
            raise AsrError(f"file not found: {text_path}")
        d = cls(path=path, wav=wav, text=text, utt2spk=utt2spk, segments=segments)
        d.validate(check_text=has_text)
        return d

    def validate(self, check_text: bool = True) -> None:
        """Check Kaldi's rules; raise AsrError naming the file and utterance.

        Rules: non-empty keys without whitespace, utterance ids prefixed by their speaker
        id, and the same utterance set in utt2spk, wav.scp and (if ``check_text``) text.
        """
        where = str(self.path) if self.path is not None else "<data dir>"
        if self.segments:
            for utt in sorted(self.utt2spk):
                if utt not in self.segments:
                    raise AsrError(f"{where}/segments: no entry for utterance '{utt}' (in utt2spk)")
                if self.segments[utt][0] not in self.wav:
                    raise AsrError(f"{where}/wav.scp: no recording '{self.segments[utt][0]}' "
                                   f"(of utterance '{utt}' in segments)")
        for name, keys in (("wav.scp", {} if self.segments else self.wav), ("utt2spk", self.utt2spk),
                           ("text", self.text)):
            for k in keys:
                if not k or any(c.isspace() for c in k):
                    raise AsrError(f"{where}/{name}: bad utterance id {k!r}")
        for utt, spk in self.utt2spk.items():
            if not spk or any(c.isspace() for c in spk):
                raise AsrError(f"{where}/utt2spk: utterance '{utt}' has bad speaker id {spk!r}")
            # Speaker-prefixed ids make sorting by utt also group by speaker (Kaldi rule).
            if not utt.startswith(spk):
                raise AsrError(
                    f"{where}/utt2spk: utterance '{utt}' does not start with its speaker id '{spk}'"
                )
        for utt in sorted(self.utt2spk):
            if not self.segments and utt not in self.wav:
                raise AsrError(f"{where}/wav.scp: no entry for utterance '{utt}' (in utt2spk)")
            if check_text and utt not in self.text:
                raise AsrError(f"{where}/text: no entry for utterance '{utt}' (in utt2spk)")
        for utt in sorted(self.wav) if not self.segments else []:
            if utt not in self.utt2spk:
                raise AsrError(f"{where}/wav.scp: utterance '{utt}' is not in utt2spk")
            if not self.wav[utt].strip():
                raise AsrError(f"{where}/wav.scp: empty entry for utterance '{utt}'")
        if check_text:
            for utt in sorted(self.text):
                if utt not in self.utt2spk:
                    raise AsrError(f"{where}/text: utterance '{utt}' is not in utt2spk")

    def utts(self) -> list[str]:
        """Sorted utterance ids."""
        return sorted(self.utt2spk)

    def utts_by_recording(self) -> list[str]:
        """Utterance ids grouped by recording (then sorted), so that an AudioReader walking
        them reads each recording once."""
        return sorted(self.utt2spk, key=lambda u: (self.recording(u), u))

    def subset(self, utts: list[str]) -> "DataDir":
        """A new DataDir (no path) with only ``utts``; an unknown utterance is an AsrError."""
        for u in utts:
            if u not in self.utt2spk:
                raise AsrError(f"{self.path}: subset asks for unknown utterance '{u}'")
        keep = sorted(set(utts))
        recordings = {self.recording(u) for u in keep}
        return DataDir(
            path=None,
            wav={r: self.wav[r] for r in sorted(recordings)},
            text={u: list(self.text[u]) for u in keep if u in self.text},
            utt2spk={u: self.utt2spk[u] for u in keep},
            segments={u: self.segments[u] for u in keep} if self.segments else {},
        )

    def write(self, path: str | os.PathLike) -> None:
        """Validate, then write the four files sorted by key, each atomically."""
        path = Path(path)
        self.validate(check_text=bool(self.text))
        ensure_dir(path)
        write_kv(path / "wav.scp", self.wav)
        write_kv(path / "utt2spk", self.utt2spk)
        if self.segments:
            write_kv(path / "segments", {u: f"{r} {b:g} {e:g}" for u, (r, b, e) in self.segments.items()})
        write_kv(path / "spk2utt", {s: " ".join(u) for s, u in self.spk2utt.items()})
        if self.text:
            with atomic_open(path / "text") as f:
                for utt in sorted(self.text):
                    words = self.text[utt]
                    f.write(f"{utt} {' '.join(words)}\n" if words else f"{utt}\n")
        self.path = path


# What a data dir's features are computed from: a change to any of these makes them stale.
FEATURE_INPUT_FILES = ("wav.scp", "segments", "utt2spk")


def feature_input_hashes(path: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of each of FEATURE_INPUT_FILES present in data dir ``path``, plus one over the
    size and modification time of every audio file wav.scp names (a recording rewritten in
    place changes the features too; commands are covered by wav.scp's own hash)."""
    path = Path(path)
    out = {}
    for name in FEATURE_INPUT_FILES:
        if (path / name).is_file():
            out[name] = hashlib.sha256((path / name).read_bytes()).hexdigest()
    audio = hashlib.sha256()
    if (path / "wav.scp").is_file():
        for key, entry in sorted(read_kv(path / "wav.scp").items()):
            if not entry.endswith("|"):
                try:
                    st = os.stat(entry)
                    audio.update(f"{key} {st.st_size} {st.st_mtime_ns}\n".encode())
                except OSError:
                    audio.update(f"{key} missing\n".encode())
    out["audio files"] = audio.hexdigest()
    return out


# Files of a data dir keyed by utterance or by speaker that a subset filters (Kaldi's
# utils/subset_data_dir.sh); files of the whole dir (feature options) are copied.
_PER_UTT_FILES = ("feats.scp", "utt2num_frames", "utt2dur")
_PER_SPK_FILES = ("cmvn.scp",)
_WHOLE_DIR_FILES = ("feats_conf.json",)
FEATS_INPUTS = "feats_inputs.json"  # feature_input_hashes() when the features were made


def subset_data_dir(src: str | os.PathLike, utts: list[str], out: str | os.PathLike) -> DataDir:
    """Write data dir ``out`` with only ``utts`` of ``src``, features included.

    The features stay in ``src``'s ark files (the scp lines are copied), and speakers keep
    their CMVN statistics, so a subset of whole speakers sees exactly the features it had.
    """
    src, out = Path(src), Path(out)
    data = DataDir.load(src, require_text=False)
    sub = data.subset(utts)
    sub.write(out)
    speakers = set(sub.utt2spk.values())
    for name in _PER_UTT_FILES + _PER_SPK_FILES:
        if (src / name).is_file():
            keep = speakers if name in _PER_SPK_FILES else sub.utt2spk
            write_kv(out / name, {k: v for k, v in read_kv(src / name).items() if k in keep})
    for name in _WHOLE_DIR_FILES:
        if (src / name).is_file():
            with atomic_open(out / name) as f:
                f.write(read_utf8(src / name))
    if (src / FEATS_INPUTS).is_file():  # the copied features belong to the subset's own inputs
        with atomic_open(out / FEATS_INPUTS) as f:
            f.write(json.dumps(feature_input_hashes(out), indent=1) + "\n")
    return sub


def split_dev_speakers(src: str | os.PathLike, train_out: str | os.PathLike, dev_out: str | os.PathLike,
                       num_speakers: int) -> tuple[DataDir, DataDir]:
    """Hold ``num_speakers`` whole speakers of ``src`` out as a dev set (Kaldi's
    subset_data_dir.sh --spk-list): ``dev_out`` gets their utterances, ``train_out`` the rest.

    The dev speakers are spread evenly over the sorted speaker list (no random draw, so
    the split is the same everywhere; corpora that name speakers by gender first, as AN4's
    f*/m* ids do, get both).
    """
    data = DataDir.load(src, require_text=False)
    speakers = sorted(data.spk2utt)
    if not 1 <= num_speakers < len(speakers):
        raise AsrError(f"{src}: cannot hold out {num_speakers} of its {len(speakers)} speakers as a dev set")
    picked = {speakers[int((i + 0.5) * len(speakers) / num_speakers)] for i in range(num_speakers)}
    dev_utts = [u for u in data.utts() if data.utt2spk[u] in picked]
    train_utts = [u for u in data.utts() if data.utt2spk[u] not in picked]
    return subset_data_dir(src, train_utts, train_out), subset_data_dir(src, dev_utts, dev_out)


def shortest_utts(data_dir: str | os.PathLike, n: int) -> list[str]:
    """The ``n`` utterances with the fewest feature frames (Kaldi's subset_data_dir.sh
    --shortest: a flat start learns fastest from short utterances), ties by id."""
    import kaldiio

    scp = Path(data_dir) / "feats.scp"
    if not scp.is_file():
        raise AsrError(f"{data_dir}: missing feats.scp; run the features stage first")
    frames = {u: m.shape[0] for u, m in kaldiio.load_scp(str(scp)).items()}
    if n <= 0:
        raise AsrError(f"--shortest needs a positive number of utterances, got {n}")
    return sorted(sorted(frames), key=lambda u: frames[u])[:n]


def read_utt_list(path: str | os.PathLike) -> list[str]:
    """Utterance ids, the first token of each non-blank line (Kaldi uttlist files)."""
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"file not found: {path}")
    return [line.split()[0] for line in read_utf8(path).splitlines() if line.strip()]


class AudioReader:
    """Reads utterances' audio from a data dir, cutting ``segments`` out of their recordings
    (the last recording read is kept, so segments in recording order read each file once)."""

    def __init__(self, data: DataDir, target_rate: int | None = None):
        self.data, self.target_rate = data, target_rate
        self._cached: tuple[str, object, int] | None = None

    def __call__(self, utt: str):
        """(samples (N,) float32, rate) of one utterance."""
        from asr.audio import read_wav_scp_entry

        rec = self.data.recording(utt)
        if self._cached is None or self._cached[0] != rec:
            samples, rate = read_wav_scp_entry(self.data.wav[rec], self.target_rate)
            self._cached = (rec, samples, rate)
        _, samples, rate = self._cached
        if not self.data.segments:
            return samples, rate
        _, start, end = self.data.segments[utt]
        b = int(round(start * rate))
        e = len(samples) if end == -1 else int(round(end * rate))
        if b >= len(samples):
            raise AsrError(f"{self.data.path}/segments: utterance '{utt}' starts after the end of recording '{rec}'")
        return samples[b:e], rate

