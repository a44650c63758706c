"""Audio input: wav/flac via soundfile, headerless big-endian ``.raw`` (AN4), Kaldi pipes.

Everything read is checked before it reaches the features: samples must be finite, the
sample rate plausible for speech (``MIN_RATE`` .. ``MAX_RATE``), a file whose header
promises more frames than it holds is named as truncated, and a wav.scp command's output
is read up to ``MAX_PIPE_BYTES``. Paths given on the command line are read as paths;
only wav.scp entries (:func:`read_wav_scp_entry`) may be shell commands.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from asr import backend
from asr.utils import AsrError, one_line

# Speech below 4 kHz sampling has no usable band; above 384 kHz is no recording format in
# use. Outside this range a header is wrong (a "1 Hz" wav would be upsampled 16000-fold).
MIN_RATE, MAX_RATE = 4000, 384000
# A wav.scp command writing more than this (about 6 h of 16 kHz 16-bit mono wav) is cut off
# with an error instead of being buffered without bound.
MAX_PIPE_BYTES = 1 << 30


def _check_rate(rate: int, name: str) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AsrError(f"{name}: implausible sample rate {rate} Hz (expected {MIN_RATE}..{MAX_RATE} Hz)")


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise AsrError(f"audio file not found: {path}" if not path.exists() else f"not an audio file: {path}")


def _finish(samples: np.ndarray, rate: int, target_rate: int | None, name: str) -> tuple[np.ndarray, int]:
    """Check, mix ``samples`` (N,) or (N, C) down to mono float32 and resample to ``target_rate``."""
    _check_rate(rate, name)
    if samples.ndim == 2:
        # Average channels rather than pick one: keeps energy from both sides.
        samples = samples.mean(axis=1)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AsrError(f"{name}: {bad} of {len(samples)} samples are NaN or infinite")
    if target_rate is not None and target_rate != rate:
        samples = backend.resample(samples, rate, target_rate)
        rate = target_rate
    return samples, rate


def _read_soundfile(source, name: str) -> tuple[np.ndarray, int]:
    """soundfile's read, with a short file (header frames > data frames) named as truncated."""
    with sf.SoundFile(source) as f:
        rate, promised = f.samplerate, f.frames
        samples = f.read(dtype="float32", always_2d=False)
    if len(samples) < promised:
        raise AsrError(f"{name}: truncated audio file: its header promises {promised} frames, "
                       f"it holds {len(samples)}")
    return samples, int(rate)


def _check_wav_size(path: Path) -> None:
    """A RIFF/WAVE whose data chunk claims more bytes than the file holds is truncated
    (libsndfile quietly reads what is there)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
        if chunk == b"data":
            have = path.stat().st_size - (pos + 8)
            if size != 0xFFFFFFFF and size > have:  # 0xFFFFFFFF: streamed, size unknown
                raise AsrError(f"{path}: truncated wav file: its data chunk claims {size} bytes, "
                               f"the file holds {have}")
            return
        pos += 8 + size + (size & 1)


def read_audio(
    path: str | Path, target_rate: int | None = None, *, raw_rate: int = 16000
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 mono samples in [-1, 1].

    ``.raw`` files are headerless 16-bit signed big-endian PCM at ``raw_rate`` Hz (AN4);
    anything else goes through soundfile. Returns ``(samples, rate)`` with samples of
    shape (N,); with ``target_rate`` the audio is resampled to that rate. The path is a
    path, never a command, whatever characters it holds.
    """
    path = Path(path)
    _require_file(path)
    try:
        if path.suffix.lower() == ".raw":
            data = path.read_bytes()
            if len(data) % 2:
                raise AsrError(f"raw audio file has an odd number of bytes (not 16-bit PCM): {path}")
            # ">i2": big-endian int16; scale to [-1, 1) like soundfile does for PCM_16.
            samples = np.frombuffer(data, dtype=">i2").astype(np.float32) / 32768.0
            rate = raw_rate
        else:
            _check_wav_size(path)
            samples, rate = _read_soundfile(str(path), str(path))
    except AsrError:
        raise
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError variants
        raise AsrError(f"cannot read audio file {path}: {one_line(e)}") from e
    return _finish(samples, int(rate), target_rate, str(path))


# Files longer than this are decoded in chunks (see read_audio_chunks), so memory depends on
# the chunk length, not on the recording's.
LONG_FILE_SECONDS = 60.0


def is_long_file(path: str | Path) -> bool:
    """Whether a file (from its header) is longer than LONG_FILE_SECONDS: decoded and aligned in chunks."""
    frames, rate = audio_info(path)
    return frames > LONG_FILE_SECONDS * rate


def audio_info(path: str | Path, *, raw_rate: int = 16000) -> tuple[int, int]:
    """(frames, sample rate) from a file's header (``.raw``: its size), without reading it."""
    path = Path(path)
    _require_file(path)
    if path.suffix.lower() == ".raw":
        return path.stat().st_size // 2, raw_rate
    try:
        info = sf.info(str(path))
    except Exception as e:
        raise AsrError(f"cannot read audio file {path}: {one_line(e)}") from e
    return int(info.frames), int(info.samplerate)


def read_audio_chunks(path: str | Path, target_rate: int | None = None, chunk_seconds: float = 30.0,
                      search_seconds: float = 5.0, *, raw_rate: int = 16000):
    """Yield ``(start seconds, samples (N,) float32)`` for consecutive chunks of a long file.

    Each chunk is at most ``chunk_seconds`` long and ends at the quietest 10 ms of its last
    ``search_seconds`` (a pause between words, where cutting costs nothing), except the
    last. Only one chunk is in memory at a time; each is checked and resampled like
    :func:`read_audio`.
    """
    path = Path(path)
    total, rate = audio_info(path, raw_rate=raw_rate)
    _check_rate(rate, str(path))
    raw = path.suffix.lower() == ".raw"
    if not raw:
        _check_wav_size(path)
    step, search, hop = int(chunk_seconds * rate), int(search_seconds * rate), max(rate // 100, 1)
    try:
        with contextlib.ExitStack() as stack:
            source = np.memmap(path, dtype=">i2", mode="r") if raw else stack.enter_context(sf.SoundFile(str(path)))
            pos = 0
            while pos < total:
                end = min(pos + step, total)
                block = _read_block(source, raw, pos, end, total, path)
                if end < total:
                    block = block[:_quietest_cut(block, search, hop)]
                samples, _ = _finish(block, rate, target_rate, str(path))
                yield pos / rate, samples
                pos += len(block)
    except AsrError:
        raise
    except Exception as e:
        raise AsrError(f"cannot read audio file {path}: {one_line(e)}") from e


def _read_block(source, raw: bool, pos: int, end: int, total: int, path: Path) -> np.ndarray:
    """Frames ``pos:end`` of an open file (a memmap of .raw int16, or a SoundFile)."""
    if raw:
        return np.asarray(source[pos:end], dtype=np.float32) / 32768.0
    source.seek(pos)
    block = source.read(end - pos, dtype="float32", always_2d=False)
    if len(block) < end - pos:
        raise AsrError(f"{path}: truncated audio file: its header promises {total} frames, it holds {pos + len(block)}")
    return block


def _quietest_cut(block: np.ndarray, search: int, hop: int) -> int:
    """Where to end a chunk: the middle of the lowest-energy ``hop`` of its last ``search`` samples."""
    mono = block.mean(axis=1) if block.ndim == 2 else block
    tail = mono[max(len(mono) - search, 0):]
    n = len(tail) // hop
    energy = (tail[:n * hop].reshape(n, hop).astype(np.float64) ** 2).sum(axis=1)
    return max(len(mono) - len(tail) + int(np.argmin(energy)) * hop + hop // 2, hop)


def read_wav_scp_entry(entry: str, target_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read the audio named by a wav.scp value: a file path or a shell command ending in ``|``.

    A pipe command must write a wav (or other soundfile-readable) stream to stdout; at most
    ``MAX_PIPE_BYTES`` of it are read. Returns ``(samples (N,), rate)`` as :func:`read_audio`.
    """
    entry = entry.strip()
    if not entry:
        raise AsrError("empty wav.scp entry")
    if not entry.endswith("|"):
        return read_audio(entry, target_rate)
    cmd = entry[:-1].strip()
    stdout = _run_pipe(cmd)
    try:
        samples, rate = _read_soundfile(io.BytesIO(stdout), f"wav.scp command '{cmd}'")
    except AsrError:
        raise
    except Exception as e:
        raise AsrError(f"cannot decode audio from wav.scp command '{cmd}': {one_line(e)}") from e
    return _finish(samples, int(rate), target_rate, f"wav.scp command '{cmd}'")


def _run_pipe(cmd: str) -> bytes:
    """stdout of a wav.scp command, at most MAX_PIPE_BYTES (the command is killed beyond)."""
    # stderr goes to a file: a chatty command must not block on a full stderr pipe.
    errfile = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE, stderr=errfile)
    except OSError as e:
        errfile.close()
        raise AsrError(f"cannot run wav.scp command '{cmd}': {e}") from e
    chunks, total = [], 0
    while True:
        block = proc.stdout.read(1 << 20)
        if not block:
            break
        total += len(block)
        if total > MAX_PIPE_BYTES:
            proc.kill()
            proc.wait()
            errfile.close()
            raise AsrError(f"wav.scp command '{cmd}' wrote more than {MAX_PIPE_BYTES >> 20} MiB; "
                           "cut long recordings into segments")
        chunks.append(block)
    status = proc.wait()
    errfile.seek(0)
    err = errfile.read(1 << 16).decode(errors="replace").strip().splitlines()
    errfile.close()
    if status != 0:
        raise AsrError(f"wav.scp command '{cmd}' failed with status {proc.returncode}"
                       + (f": {err[-1]}" if err else ""))
    return b"".join(chunks)
