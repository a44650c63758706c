"""N-best rescoring with a sentence-level LM (Kaldi's RNNLM n-best rescoring, icefall's
LM rescoring): ``asr nbest-rescore``.

From each lattice come the ``n`` best word sequences at the setting the lattices were
scored with, each with the graph and acoustic cost of its best path. The graph cost holds
the n-gram's cost of the words (besides HMM transitions and pronunciations), so another
LM is mixed in log-linearly by swapping part of it out:

    graph'(W) = graph(W) + weight * (C_other(W) - C_ngram(W))

(``weight`` 0: the n-gram alone; 1: the other LM alone). The best entry of each list is
then taken at every (LMWT, penalty, weight) of a grid: on dev the best setting is kept
(``rescore_config.json``), and test is scored once with it (``tune_on``).

The rescoring LM is any function from word sequences to costs (-ln P, nats), so this
layer sees no network class: the CLI hands it an LSTM LM's ``sentence_costs``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np
from tqdm import tqdm

from asr.utils import AsrError, ensure_dir, read_json, write_text_atomic

if TYPE_CHECKING:
    from asr.decode.lattice import Lattice

SentenceCosts = Callable[[list[list[str]]], np.ndarray]  # word sequences -> (S,) -ln P in nats
RESCORE_CONFIG = "rescore_config.json"


@dataclass
class NbestList:
    """One utterance's n-best list (k entries).

    Attributes:
        words: k word-id sequences.
        graph, acoustic: (k,) costs of each entry's best lattice path.
        ngram: (k,) -ln P of each sequence under the n-gram that is in the graph costs.
        other: (k,) -ln P under the rescoring LM.
    """

    words: list[list[int]]
    graph: np.ndarray
    acoustic: np.ndarray
    ngram: np.ndarray
    other: np.ndarray

    def best(self, acoustic_scale: float, word_penalty: float, weight: float) -> int:
        """Index of the cheapest entry at this setting."""
        lengths = np.array([len(w) for w in self.words], dtype=np.float64)
        cost = (self.graph + weight * (self.other - self.ngram) + acoustic_scale * self.acoustic
                + word_penalty * lengths)
        return int(np.argmin(cost))


@dataclass(frozen=True)
class RescoreSetting:
    lmwt: float
    word_penalty: float
    weight: float

    @property
    def acoustic_scale(self) -> float:
        return 1.0 / self.lmwt

    def to_dict(self) -> dict:
        return {"lmwt": self.lmwt, "word_penalty": self.word_penalty, "weight": self.weight}


def settings_grid(lmwts: list[float], penalties: list[float], weights: list[float]) -> list[RescoreSetting]:
    if not lmwts or not penalties or not weights:
        raise AsrError("n-best rescoring needs at least one LMWT, penalty and weight")
    if any(w < 0 or w > 1 for w in weights):
        raise AsrError(f"LM weights must lie in [0, 1], got {weights}")
    return [RescoreSetting(l, p, w) for l in lmwts for p in penalties for w in weights]


def tuned_setting(tune_on: str | Path, model_fp: str | None = None, other_name: str | None = None) -> RescoreSetting:
    """The setting a grid chose on the n-best-rescored dir ``tune_on``; with ``model_fp`` and
    ``other_name``, that dir must come from the same acoustic model and rescoring LM."""
    from asr.decode.run import check_tuned_with_same_model

    path = Path(tune_on) / RESCORE_CONFIG
    if not path.exists():
        raise AsrError(f"{tune_on}: no {RESCORE_CONFIG} to tune on; rescore that set with a grid first")
    if model_fp is not None:
        check_tuned_with_same_model(tune_on, model_fp)
    info_path = Path(tune_on) / "decode_info.json"
    tuned_lm = read_json(info_path).get("rescoring_lm") if info_path.exists() else None
    if other_name is not None and tuned_lm is not None and tuned_lm != other_name:
        raise AsrError(f"{tune_on} was rescored with {tuned_lm}, not {other_name}; rescore that set with this LM "
                       "before tuning on it")
    d = read_json(path)
    try:
        return RescoreSetting(float(d["lmwt"]), float(d["word_penalty"]), float(d["weight"]))
    except (KeyError, TypeError, ValueError):
        raise AsrError(f"{path}: expected lmwt, word_penalty and weight") from None


def build_nbest_lists(lattices: Iterable[tuple[str, "Lattice"]], n: int, acoustic_scale: float, word_penalty: float,
                      ngram_costs: Callable[[list[int]], float], other: SentenceCosts,
                      symbols: list[str]) -> dict[str, NbestList]:
    """Each (utterance, lattice)'s n-best list with both LMs' costs (the rescoring LM run over
    one utterance's entries at a time); lattices are read one by one, so memory holds lists only."""
    lists = {}
    for utt, lat in tqdm(lattices, desc="n-best", unit="utt", leave=False, disable=None):
        try:
            paths = lat.nbest_paths(n, acoustic_scale, word_penalty)
        except AsrError as e:
            raise AsrError(f"{utt}: {e}") from None
        words = [p[0] for p in paths]
        lists[utt] = NbestList(words, np.array([p[2] for p in paths]), np.array([p[3] for p in paths]),
                               np.array([ngram_costs(w) for w in words]),
                               np.asarray(other([[symbols[i] for i in w] for w in words]), dtype=np.float64))
    return lists


def best_hypotheses(lists: dict[str, NbestList], setting: RescoreSetting) -> dict[str, list[int]]:
    return {u: nb.words[nb.best(setting.acoustic_scale, setting.word_penalty, setting.weight)]
            for u, nb in lists.items()}


def nbest_rescore_dir(model_dir: str | Path, graph_lm: str | Path, other: SentenceCosts, other_name: str,
                      data_dir: str | Path, in_dir: str | Path, out_dir: str | Path, n: int = 100,
                      grid: list[RescoreSetting] | None = None, tune_on: str | Path | None = None):
    """Rescore a decode dir's lattices (decoded or rescored with the n-gram ``graph_lm``) with
    ``other`` through n-best lists, then score: the best of ``grid``, or the setting tuned on
    the decode dir ``tune_on``. Writes hyp.txt, wer.txt, per_utt.txt, rescore_config.json and
    decode_info.json into ``out_dir``; returns the error counts (None without a reference)."""
    from asr.acoustic import load_model
    from asr.decode.config import DecoderConfig
    from asr.decode.lattice import iter_lattices
    from asr.decode.run import decode_dir_lattices, models_fingerprint, write_decode_outputs
    from asr.lang.arpa_scorer import ArpaScorer
    from asr.score import read_text, score_texts

    t0 = time.time()
    if grid is None and tune_on is None:
        raise AsrError("n-best rescoring needs a grid of settings or a decode dir to tune on")
    model = load_model(model_dir)
    model_fp = models_fingerprint(model_dir)
    settings = [tuned_setting(tune_on, model_fp, other_name)] if tune_on is not None else grid
    lat_path = decode_dir_lattices(in_dir)
    first = DecoderConfig.from_dict(read_json(Path(in_dir) / "best_config.json"))
    ngram = ArpaScorer(graph_lm, model.words)
    lists = build_nbest_lists(iter_lattices(lat_path), n, first.acoustic_scale, first.word_penalty,
                              ngram.sentence_cost, other, model.words.symbols)
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    ref = read_text(data_dir / "text") if (data_dir / "text").exists() else None
    sym = model.words.symbols
    best = None
    for s in settings:
        hyp = {u: [sym[w] for w in words] for u, words in best_hypotheses(lists, s).items()}
        if ref is None:
            best = (None, s, hyp, [])
            break
        counts, per_utt = score_texts(ref, hyp)
        if best is None or counts.errors < best[0].errors:
            best = (counts, s, hyp, per_utt)
    counts, setting, hyp, per_utt = best
    ensure_dir(out_dir)
    write_text_atomic(out_dir / RESCORE_CONFIG, json.dumps(setting.to_dict(), indent=1) + "\n")
    info = {"model": str(model_dir), "model_fingerprint": model_fp, "data": str(data_dir),
            "utterances": len(lists), "rescored_from": str(in_dir), "graph_lm": str(graph_lm),
            "rescoring_lm": other_name, "nbest": n, "nbest_mean": round(float(np.mean(
                [len(nb.words) for nb in lists.values()])), 2) if lists else 0,
            "configs_tried": len(settings), "config": setting.to_dict(),
            "selection": "tuned on " + str(tune_on) if tune_on is not None else "best of grid on this set",
            "decode_seconds": round(time.time() - t0, 2)}
    comments = [f"# n-best {n} rescored with {other_name}: LMWT {setting.lmwt:g}, penalty {setting.word_penalty:g}, "
                f"LM weight {setting.weight:g}" + (f" tuned on {tune_on}" if tune_on is not None else
                                                   f" (best of {len(settings)} settings)")]
    write_decode_outputs(out_dir, hyp, counts, per_utt, info, comments)
    return counts
