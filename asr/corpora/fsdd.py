"""Free Spoken Digit Dataset: 6 speakers x 10 digits x 50 takes, 8 kHz isolated digits."""

from __future__ import annotations

import re
from pathlib import Path

from asr.corpora.download import extract, find_or_download, write_lang_sources
from asr.datadir import DataDir
from asr.utils import AsrError, log

ARCHIVE = "free-spoken-digit-dataset.tar.gz"
# The official source is the GitHub repository; its tarball unpacks to ``...-master``.
URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.tar.gz"
DIGITS = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"]
LEXICON = [
    ("ZERO", "Z IH R OW"),
    ("ONE", "W AH N"),
    ("TWO", "T UW"),
    ("THREE", "TH R IY"),
    ("FOUR", "F AO R"),
    ("FIVE", "F AY V"),
    ("SIX", "S IH K S"),
    ("SEVEN", "S EH V AH N"),
    ("EIGHT", "EY T"),
    ("NINE", "N AY N"),
    ("<UNK>", "SIL"),
]
_NAME = re.compile(r"^(\d)_([A-Za-z0-9]+)_(\d+)$")


def _split_of(index: int) -> str:
    """Official test is takes 0-4; takes 5-9 of the official train part are held out as dev."""
    if index < 5:
        return "test"
    if index < 10:
        return "dev"
    return "train"


def prepare_fsdd(
    out_dir: Path, mirror: str | Path | None = None, work_dir: Path = Path("data/local")
) -> dict[str, DataDir]:
    """Prepare ``out_dir/{train,dev,test}`` and ``out_dir/local`` lexicon sources.

    Utterance ids are ``<speaker>_<digit>_<index>`` (speaker-prefixed, e.g. ``george_0_12``);
    wav.scp holds absolute paths. Returns ``{"train", "dev", "test"} -> DataDir``.
    """
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    archive = find_or_download(ARCHIVE, URL, mirror)
    root = extract(archive, work_dir)
    rec_dirs = sorted(root.glob("free-spoken-digit-dataset*/recordings"))
    if not rec_dirs:
        raise AsrError(f"{root}: no free-spoken-digit-dataset*/recordings folder after extracting {archive}")
    rec_dir = rec_dirs[0].resolve()
    dirs = {name: DataDir() for name in ("train", "dev", "test")}
    for p in sorted(rec_dir.glob("*.wav")):
        m = _NAME.match(p.stem)
        if not m:
            raise AsrError(f"{p}: file name is not <digit>_<speaker>_<index>.wav")
        digit, spk, idx = int(m.group(1)), m.group(2), int(m.group(3))
        d = dirs[_split_of(idx)]
        utt = f"{spk}_{digit}_{idx}"
        d.wav[utt] = str(p)
        d.text[utt] = [DIGITS[digit]]
        d.utt2spk[utt] = spk
    for name, d in dirs.items():
        if not d.wav:
            raise AsrError(f"{rec_dir}: no recordings for the {name} split")
        d.write(out_dir / name)
        log.info("fsdd %s: %d utterances, %d speakers, %d words", name, len(d.wav), len(d.spk2utt), len(d.text))
    phones = sorted({ph for _, pron in LEXICON[:-1] for ph in pron.split()})
    write_lang_sources(out_dir / "local", [(w, p.split()) for w, p in LEXICON], phones)
    return dirs
