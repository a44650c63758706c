"""LibriSpeech (read English audiobooks): the 5-hour speaker-split subset, or the official archives.

Layout, LibriSpeech's own: ``LibriSpeech/<part>/<reader>/<chapter>/<reader>-<chapter>-<nnnn>.{flac,opus}``
and one ``<reader>-<chapter>.trans.txt`` per chapter (``UTTID WORD WORD ...``, upper case,
apostrophes kept). The subset (``librispeech_subset.tar.gz`` in the mirror) adds
``LibriSpeech/splits/{train,dev,test}.spk``; without it the official OpenSLR archives are
downloaded and the same speaker split (:data:`SPLITS`) is applied to them.

Data dirs are made as Kaldi's ``local/data_prep.sh`` makes them: utterance ids as in the
transcripts, and the *speaker* of an utterance is ``<reader>-<chapter>`` (so CMVN and
adaptation are per reader and recording session).
"""

from __future__ import annotations

from pathlib import Path

from asr.corpora.download import default_mirror, extract, find_or_download
from asr.datadir import DataDir
from asr.utils import AsrError, log, read_utf8

ARCHIVE = "librispeech_subset.tar.gz"
OFFICIAL = {
    "test-clean": "https://www.openslr.org/resources/12/test-clean.tar.gz",
    "train-clean-100": "https://www.openslr.org/resources/12/train-clean-100.tar.gz",
}
# The subset's speaker split (its splits/*.spk), used when only the official archives exist.
SPLITS = {
    "train": "61 237 260 672 908 1089 1188 1320 1580 1995 2300 2961 3570 3575 3729 4088 4406 4446 4507 "
             "4992 5142 5652 5683 6829 7021 7127 7176 7729 8226 8230 8455 8555".split(),
    "dev": "121 1284 6930 8224".split(),
    "test": "1221 2830 4077 8463".split(),
}
AUDIO_SUFFIXES = (".flac", ".opus", ".wav")


def _read_splits(root: Path) -> dict[str, list[str]]:
    """Reader ids per split: the archive's splits/*.spk if present, else :data:`SPLITS`."""
    split_dir = root / "splits"
    if not split_dir.is_dir():
        return SPLITS
    out = {}
    for name in SPLITS:
        path = split_dir / f"{name}.spk"
        if not path.exists():
            raise AsrError(f"{split_dir}: no {name}.spk speaker list")
        out[name] = [l.split()[0] for l in read_utf8(path).splitlines() if l.strip()]
    seen: dict[str, str] = {}
    for name, spks in out.items():
        for s in spks:
            if s in seen:
                raise AsrError(f"{split_dir}: speaker {s} is in both {seen[s]}.spk and {name}.spk")
            seen[s] = name
    return out


def _chapters(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/*/*.trans.txt"))


def prepare_librispeech(out_dir: Path, mirror: str | Path | None = None,
                        work_dir: Path = Path("data/local")) -> dict[str, DataDir]:
    """Prepare ``out_dir/{train,dev,test}`` from the subset (or the official archives).

    Returns ``{"train", "dev", "test"} -> DataDir``. An utterance whose audio is missing,
    or a transcript line without words, is an error naming the file.
    """
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    mirror_dir = Path(mirror) if mirror is not None else default_mirror()
    if (mirror_dir / ARCHIVE).is_file():
        extract(mirror_dir / ARCHIVE, work_dir)
    else:
        log.info("%s not in %s: using the official LibriSpeech archives", ARCHIVE, mirror_dir)
        for part, url in OFFICIAL.items():
            extract(find_or_download(Path(url).name, url, mirror), work_dir)
    root = work_dir / "LibriSpeech"
    if not root.is_dir():
        raise AsrError(f"{work_dir}: no LibriSpeech folder after extracting the archives")
    splits = _read_splits(root)
    split_of = {s: name for name, spks in splits.items() for s in spks}
    dirs = {name: DataDir() for name in SPLITS}
    for trans in _chapters(root):
        reader, chapter = trans.parent.parent.name, trans.parent.name
        name = split_of.get(reader)
        if name is None:
            continue  # a reader outside the split (the official archives hold many more)
        d = dirs[name]
        for no, line in enumerate(read_utf8(trans).splitlines(), 1):
            if not line.strip():
                continue
            utt, *words = line.split()
            if not words:
                raise AsrError(f"{trans}:{no}: utterance {utt} has no words")
            if not utt.startswith(f"{reader}-{chapter}-"):
                raise AsrError(f"{trans}:{no}: utterance id {utt} is not {reader}-{chapter}-NNNN")
            audio = next((trans.parent / f"{utt}{s}" for s in AUDIO_SUFFIXES
                          if (trans.parent / f"{utt}{s}").is_file()), None)
            if audio is None:
                raise AsrError(f"{trans}:{no}: no audio file for {utt} ({', '.join(AUDIO_SUFFIXES)})")
            d.wav[utt] = str(audio.resolve())
            d.text[utt] = words
            d.utt2spk[utt] = f"{reader}-{chapter}"
    for name, d in dirs.items():
        if not d.wav:
            raise AsrError(f"{root}: no utterances of the {name} speakers ({' '.join(splits[name][:5])} ...)")
        d.write(out_dir / name)
        readers = {s.split("-")[0] for s in d.spk2utt}
        log.info("librispeech %s: %d utterances, %d readers, %d chapters, %d words", name, len(d.wav),
                 len(readers), len(d.spk2utt), sum(len(t) for t in d.text.values()))
    return dirs
