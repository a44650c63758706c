"""Decoder options, kept apart from the decoder so model dirs can carry them cheaply."""

from __future__ import annotations

import math
from dataclasses import dataclass

from asr.utils import AsrError, Config


@dataclass
class DecoderConfig(Config):
    """Search options (Kaldi's gmm-latgen-faster names and defaults; LMWT = 1 / acoustic_scale)."""

    beam: float = 13.0
    max_active: int = 7000
    lattice_beam: float = 8.0
    acoustic_scale: float = 0.1
    transition_scale: float = 0.1
    word_penalty: float = 0.0
    # Speaker-adapted (SAT) models: fMLLR estimates, each from the previous pass's best paths
    # (Kaldi's decode_fmllr.sh estimates twice); other models ignore it.
    fmllr_passes: int = 2
    # ... and the speaker-independent pass may search narrower (Kaldi's decode_fmllr.sh
    # first_beam 10, first_max_active 2000); 0 = as the final pass.
    first_beam: float = 0.0
    first_max_active: int = 0

    def __post_init__(self) -> None:
        # Options come from flags, recipe TOML and model.json alike: check them once here.
        for name in ("beam", "lattice_beam", "acoustic_scale", "transition_scale", "word_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise AsrError(f"decoder option {name} must be a finite number, got {value!r}")
        if self.beam <= 0 or self.acoustic_scale <= 0 or self.lattice_beam < 0:
            raise AsrError(f"decoder beam and acoustic_scale must be > 0 and lattice_beam >= 0, got "
                           f"{self.beam}, {self.acoustic_scale} and {self.lattice_beam}")
        if isinstance(self.max_active, bool) or not isinstance(self.max_active, int) or self.max_active < 1:
            raise AsrError(f"decoder option max_active must be an integer >= 1, got {self.max_active!r}")
        if not (isinstance(self.first_beam, (int, float)) and self.first_beam >= 0) or isinstance(self.first_beam, bool) \
                or isinstance(self.first_max_active, bool) or not isinstance(self.first_max_active, int) \
                or self.first_max_active < 0:
            raise AsrError(f"decoder options first_beam and first_max_active must be >= 0 (0: as the final pass), "
                           f"got {self.first_beam!r} and {self.first_max_active!r}")
        if isinstance(self.fmllr_passes, bool) or not isinstance(self.fmllr_passes, int) or self.fmllr_passes < 1:
            raise AsrError(f"decoder option fmllr_passes must be an integer >= 1, got {self.fmllr_passes!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "DecoderConfig":
        d = dict(d)
        if d.get("lm_weight", 1.0) != 1.0:
            raise AsrError("decoder option lm_weight is gone: the LM weight is 1 / acoustic_scale (LMWT), "
                           "as in Kaldi")
        d.pop("lm_weight", None)  # model dirs written before the WFST decoder carry lm_weight = 1
        return super().from_dict(d)
