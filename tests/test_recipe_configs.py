"""Every recipe's TOML sections parse into the options class of the stage that reads them.

A misspelt key in a recipe config fails here in a second instead of, an hour into a LibriSpeech
run, as the stage's "unknown option" error (or, before [lang] had its own class, not at all).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from asr.augment import AugmentConfig
from asr.concat import ConcatConfig
from asr.decode.config import DecoderConfig
from asr.features import FeatureConfig
from asr.gmm.train_lda_mllt import LdaMlltConfig
from asr.gmm.train_mono import MonoConfig
from asr.gmm.train_sat import SatConfig
from asr.gmm.train_tri import TriConfig
from asr.lang.g2p import G2pConfig
from asr.lang.lstm_lm import LstmLmConfig
from asr.lang.prepare import LangConfig
from asr.nnet.ablation import read_rows
from asr.nnet.ctc_train import CtcTrainConfig
from asr.nnet.train import TrainConfig
from asr.utils import AsrError
from asr.vad import VadConfig

ROOT = Path(__file__).resolve().parents[1]
# Stage configs (--config); ablation.toml files hold rows for `asr ablation` instead.
CONFIGS = sorted(p for p in (ROOT / "recipes").rglob("*.toml") if p.name != "ablation.toml")
ABLATIONS = sorted((ROOT / "recipes").rglob("ablation.toml"))

# Section -> parser, as recipes/stages.mk and asr/cli.py pair them (--section <name>).
PARSERS = {
    "lang": LangConfig.from_dict,
    "features": FeatureConfig.from_dict,
    "fbank": FeatureConfig.from_dict,
    "augment": AugmentConfig.from_dict,
    "concat": ConcatConfig.from_dict,
    "mono": MonoConfig.from_dict,
    "tri1": TriConfig.from_dict,
    "tri2": LdaMlltConfig.from_dict,
    "tri3": SatConfig.from_dict,
    "dnn": TrainConfig.from_flat,
    "dnn_fmllr": TrainConfig.from_flat,
    "ctc": CtcTrainConfig.from_flat,
    "decode": DecoderConfig.from_dict,
    "vad": VadConfig.from_dict,
    "g2p": G2pConfig.from_dict,
    "lstm_lm": LstmLmConfig.from_dict,
}


def test_every_recipe_has_a_config():
    names = {p.parent.name for p in CONFIGS}
    assert {"yesno", "an4", "fsdd", "librispeech", "TEMPLATE"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_recipe_sections_parse(path: Path):
    sections = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = set(sections) - set(PARSERS)
    assert not unknown, f"{path}: sections no stage reads: {sorted(unknown)}"
    for name, opts in sections.items():
        PARSERS[name](dict(opts))  # raises AsrError naming a misspelt key


@pytest.mark.parametrize("path", ABLATIONS, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_ablation_rows_parse(path: Path):
    conf = tomllib.loads((path.parent / "conf.toml").read_text(encoding="utf-8"))
    base, rows = read_rows(path)
    for row in rows:  # a row trains with the recipe's section, then [base], then its own `set`
        ctc = row.get("trainer") == "ctc"
        opts = {**conf["ctc" if ctc else "dnn"], **base, **row.get("set", {})}
        (CtcTrainConfig.from_flat if ctc else TrainConfig.from_flat)(opts)


def test_a_misspelt_key_is_refused():
    with pytest.raises(AsrError, match="nonsil_state"):
        LangConfig.from_dict({"nonsil_state": 3})
    with pytest.raises(AsrError, match="hiden_dim"):
        CtcTrainConfig.from_flat({"hiden_dim": 256})
