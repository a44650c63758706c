"""Kaldi's yesno corpus: 60 wav files of one speaker saying 8 Hebrew yes/no words."""

from __future__ import annotations

from pathlib import Path

from asr.corpora.download import extract, find_or_download, write_lang_sources
from asr.datadir import DataDir
from asr.utils import AsrError, log

ARCHIVE = "waves_yesno.tar.gz"
URL = "https://www.openslr.org/resources/1/waves_yesno.tar.gz"
SPEAKER = "global"
N_TRAIN = 31  # Kaldi's split: first 31 sorted files train, last 29 test
LEXICON = [("YES", ["Y"]), ("NO", ["N"]), ("<UNK>", ["SIL"])]


def prepare_yesno(
    out_dir: Path, mirror: str | Path | None = None, work_dir: Path = Path("data/local")
) -> dict[str, DataDir]:
    """Prepare ``out_dir/{train,test}`` data dirs and ``out_dir/local`` lexicon sources.

    Returns ``{"train": DataDir, "test": DataDir}``; wav.scp holds absolute paths.
    """
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    archive = find_or_download(ARCHIVE, URL, mirror)
    wav_dir = (extract(archive, work_dir) / "waves_yesno").resolve()
    wavs = sorted(p for p in wav_dir.glob("*.wav"))
    if len(wavs) != 60:
        raise AsrError(f"{wav_dir}: expected 60 wav files, found {len(wavs)}")
    splits = {"train": wavs[:N_TRAIN], "test": wavs[N_TRAIN:]}
    result: dict[str, DataDir] = {}
    for name, files in splits.items():
        d = DataDir()
        for p in files:
            labels = p.stem.split("_")
            if not labels or any(x not in ("0", "1") for x in labels):
                raise AsrError(f"{p}: file name is not a 0/1 label sequence")
            utt = f"{SPEAKER}_{p.stem}"
            d.wav[utt] = str(p)
            d.text[utt] = ["YES" if x == "1" else "NO" for x in labels]
            d.utt2spk[utt] = SPEAKER
        d.write(out_dir / name)
        n_words = sum(len(w) for w in d.text.values())
        log.info("yesno %s: %d utterances, %d speakers, %d words", name, len(d.wav), len(d.spk2utt), n_words)
        result[name] = d
    write_lang_sources(out_dir / "local", LEXICON, ["Y", "N"])
    return result
