"""Find a corpus archive in a local mirror or download it; extract it once."""

from __future__ import annotations

import os
import tarfile
import urllib.request
from pathlib import Path

from asr.utils import AsrError, atomic_open, ensure_dir, log

# Repo root = parent of the ``asr`` package directory.
REPO_ROOT = Path(__file__).resolve().parents[2]
DOWNLOAD_DIR = REPO_ROOT / "data" / "downloads"


def default_mirror() -> Path:
    """The mirror folder: ``$ASR_CORPUS_MIRROR`` or ``<repo root>/../shared/corpora``."""
    env = os.environ.get("ASR_CORPUS_MIRROR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "corpora"


def find_or_download(archive_name: str, url: str, mirror: str | Path | None = None) -> Path:
    """Return a local path to ``archive_name``.

    Looks in ``mirror`` (else the default mirror), then in ``data/downloads/``; otherwise
    downloads ``url`` there (atomically, so an interrupted download leaves no partial file).
    """
    mirror_dir = Path(mirror) if mirror is not None else default_mirror()
    candidate = mirror_dir / archive_name
    if candidate.is_file():
        log.info("using %s from mirror %s", archive_name, mirror_dir)
        return candidate
    dest = DOWNLOAD_DIR / archive_name
    if dest.is_file():
        log.info("using previously downloaded %s", dest)
        return dest
    log.info("%s not in mirror %s; downloading %s", archive_name, mirror_dir, url)
    try:
        from tqdm import tqdm

        with urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with atomic_open(dest, "wb") as out, tqdm(
                total=total, unit="B", unit_scale=True, desc=archive_name
            ) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as e:  # URLError and socket errors are OSErrors
        raise AsrError(f"cannot download {archive_name} from {url}: {e}") from e
    return dest


def extract(archive: Path, dest: Path) -> Path:
    """Untar ``archive`` into ``dest`` once; a ``.done`` marker makes reruns skip it.

    The marker is named after the archive (``dest/.<archive>.done``), as Kaldi's
    download_and_untar.sh does, so several corpora can share one ``dest``. Returns ``dest``.
    """
    archive, dest = Path(archive), Path(dest)
    marker = dest / f".{archive.name}.done"
    if marker.is_file():
        log.info("%s already extracted in %s", archive.name, dest)
        return dest
    if not archive.is_file():
        raise AsrError(f"archive not found: {archive}")
    ensure_dir(dest)
    log.info("extracting %s into %s", archive, dest)
    try:
        with tarfile.open(archive) as tar:
            # A partial earlier extraction is simply overwritten file by file.
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise AsrError(f"cannot extract {archive}: {e}") from e
    with atomic_open(marker) as f:
        f.write(f"{archive}\n")
    return dest


def write_lang_sources(
    local_dir: Path,
    lexicon: list[tuple[str, list[str]]],
    nonsilence_phones: list[str],
    silence_phones: tuple[str, ...] = ("SIL",),
) -> dict[str, Path]:
    """Write Kaldi ``data/local/dict``-style sources shared by the corpus preparers.

    ``lexicon`` is a list of (word, phones) lines, written as ``WORD PH1 PH2 ...``; returns
    the written paths keyed ``lexicon``, ``nonsilence_phones``, ``silence_phones``.
    """
    local_dir = Path(local_dir)
    paths = {
        "lexicon": local_dir / "lexicon.txt",
        "nonsilence_phones": local_dir / "nonsilence_phones.txt",
        "silence_phones": local_dir / "silence_phones.txt",
    }
    with atomic_open(paths["lexicon"]) as f:
        for word, phones in lexicon:
            f.write(f"{word} {' '.join(phones)}\n")
    with atomic_open(paths["nonsilence_phones"]) as f:
        f.writelines(f"{p}\n" for p in nonsilence_phones)
    with atomic_open(paths["silence_phones"]) as f:
        f.writelines(f"{p}\n" for p in silence_phones)
    return paths
