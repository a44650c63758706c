"""Kaldi ark/scp tables on disk (via kaldiio), written atomically."""

from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np

from asr.utils import atomic_path


def write_ark_scp(ark: Path, scp: Path, mats: dict[str, np.ndarray], dtype=None) -> None:
    """Write ``mats`` (sorted by key) to ``ark`` with its index ``scp``; both appear only when complete.

    The scp refers to the final (absolute) ark path, so it stays valid wherever it is read from.
    """
    with atomic_path(ark) as tmp_ark, atomic_path(scp) as tmp_scp:
        with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as writer:
            for key in sorted(mats):
                writer(key, mats[key] if dtype is None else np.asarray(mats[key], dtype=dtype))
        # kaldiio wrote offsets into the temporary ark; point the scp at the final name.
        text = Path(tmp_scp).read_text().replace(str(tmp_ark), str(Path(ark).resolve()))
        Path(tmp_scp).write_text(text)
