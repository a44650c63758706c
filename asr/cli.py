"""The ``asr`` command: one subcommand per pipeline stage (Kaldi's small programs).

Every subcommand reads files and writes files, so a recipe can run, rerun and inspect
any stage alone. Options come from a recipe's TOML config (``--config conf.toml``, the
subcommand's section) and can be overridden with ``--set key=value``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import re
import sys
import tomllib
from pathlib import Path

from asr.parallel import blas_threads
from asr.utils import AsrError, one_line, read_json, read_utf8, setup_logging

log = logging.getLogger("asr")


def _load_section(config: str | None, section: str, overrides: list[str]) -> dict:
    """Options for one stage: the TOML section, then ``key=value`` overrides (parsed as TOML values)."""
    opts: dict = {}
    if config:
        path = Path(config)
        if not path.exists():
            raise AsrError(f"missing config file {path}")
        try:
            opts.update(tomllib.loads(read_utf8(path)).get(section, {}))
        except tomllib.TOMLDecodeError as e:
            raise AsrError(f"{path}: {e}") from None
    for item in overrides or []:
        if "=" not in item:
            raise AsrError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            opts[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            opts[key.strip()] = value
    return opts


def cmd_prepare(a: argparse.Namespace) -> None:
    from asr.corpora import prepare_corpus

    prepare_corpus(a.corpus, Path(a.out), mirror=a.mirror, work_dir=Path(a.work_dir) if a.work_dir else None)


def cmd_split_dev(a: argparse.Namespace) -> None:
    from asr.datadir import split_dev_speakers

    train, dev = split_dev_speakers(a.src, a.train_out, a.dev_out, a.speakers)
    log.info("%s: %d utterances of %d speakers in %s, %d of %d held-out speakers in %s", a.src, len(train.utt2spk),
             len(train.spk2utt), a.train_out, len(dev.utt2spk), len(dev.spk2utt), a.dev_out)


def cmd_lang(a: argparse.Namespace) -> None:
    from asr.lang.prepare import LangConfig, prepare_lang

    cfg = LangConfig.from_dict(_load_section(a.config, "lang", a.set))
    prepare_lang(a.dict_dir, a.out, lm=a.lm, **cfg.to_dict())


def cmd_features(a: argparse.Namespace) -> None:
    from asr.datadir import DataDir
    from asr.features import FeatureConfig, make_features

    cfg = FeatureConfig.from_dict(_load_section(a.config, a.section, a.set))
    for d in a.data:
        if a.suffix:
            # A second feature type for the same utterances (Kaldi's copy_data_dir.sh + e.g. data/train_fbank).
            target = Path(str(Path(d)).rstrip("/") + a.suffix)
            DataDir.load(d, require_text=False).write(target)
            d = target
        make_features(d, cfg, nj=a.nj)


def cmd_perturb_speed(a: argparse.Namespace) -> None:
    from asr.perturb import perturb_speed

    try:
        factors = [float(f) for f in a.factors.split(",")]
    except ValueError:
        raise AsrError(f"--factors expects numbers separated by commas, got {a.factors!r}") from None
    perturb_speed(a.data, a.out, factors)


def cmd_augment(a: argparse.Namespace) -> None:
    from asr.augment import AugmentConfig, augment_data_dir

    augment_data_dir(a.data, a.out, AugmentConfig.from_dict(_load_section(a.config, a.section, a.set)))


def cmd_concat_utts(a: argparse.Namespace) -> None:
    from asr.concat import ConcatConfig, concat_data_dir

    concat_data_dir(a.data, a.out, ConcatConfig.from_dict(_load_section(a.config, a.section, a.set)))


def cmd_copy_ali(a: argparse.Namespace) -> None:
    from asr.augment import copy_alignments

    copy_alignments(a.ali, a.data, a.out, a.model)


def cmd_subset_data(a: argparse.Namespace) -> None:
    from asr.datadir import read_utt_list, shortest_utts, subset_data_dir

    utts = shortest_utts(a.data, a.shortest) if a.shortest is not None else read_utt_list(a.utt_list)
    subset_data_dir(a.data, utts, a.out)


def cmd_train_mono(a: argparse.Namespace) -> None:
    from asr.gmm.train_mono import MonoConfig, train_mono

    cfg = MonoConfig.from_dict(_load_section(a.config, "mono", a.set))
    with blas_threads(cfg.blas_threads):
        train_mono(a.data, a.lang, a.out, cfg)


def cmd_train_tri(a: argparse.Namespace) -> None:
    from asr.gmm.train_tri import TriConfig, train_tri

    cfg = TriConfig.from_dict(_load_section(a.config, a.section, a.set))
    with blas_threads(cfg.blas_threads):
        train_tri(a.data, a.lang, a.ali, a.out, cfg)


def cmd_train_lda_mllt(a: argparse.Namespace) -> None:
    from asr.gmm.train_lda_mllt import LdaMlltConfig, train_lda_mllt

    cfg = LdaMlltConfig.from_dict(_load_section(a.config, a.section, a.set))
    with blas_threads(cfg.blas_threads):
        train_lda_mllt(a.data, a.lang, a.ali, a.out, cfg)


def cmd_train_sat(a: argparse.Namespace) -> None:
    from asr.gmm.train_sat import SatConfig, train_sat

    cfg = SatConfig.from_dict(_load_section(a.config, a.section, a.set))
    with blas_threads(cfg.blas_threads):
        train_sat(a.data, a.lang, a.ali or f"{a.prev}/ali", a.prev, a.out, cfg)


def cmd_train_dnn(a: argparse.Namespace) -> None:
    from asr.nnet.train import TrainConfig, train_dnn

    opts = _load_section(a.config, a.section, a.set)
    if a.device:
        opts["device"] = a.device
    train_dnn(a.data, a.ali, a.gmm, a.out, TrainConfig.from_flat(opts))


def cmd_train_ctc(a: argparse.Namespace) -> None:
    from asr.nnet.ctc_train import CtcTrainConfig, train_ctc

    opts = _load_section(a.config, a.section, a.set)
    if a.device:
        opts["device"] = a.device
    train_ctc(a.data, a.lang, a.out, CtcTrainConfig.from_flat(opts))


def cmd_nnet_search(a: argparse.Namespace) -> None:
    from asr.nnet.search import parse_space, search

    section = a.section or a.kind
    base = _load_section(a.config, section, a.set)
    if a.device:
        base["device"] = a.device
    try:
        lmwt = tuple(float(x) for x in a.sweep.split(":"))
        if len(lmwt) not in (2, 3):
            raise ValueError
    except ValueError:
        raise AsrError(f"--sweep expects MIN:MAX[:STEP], got {a.sweep!r}") from None
    search(base, parse_space(a.space), a.data, a.ali, a.gmm, a.dev, a.out, num_random=a.random, lmwt=lmwt,
           nj=a.nj, sampler=a.sampler, num_trials=a.trials, kind=a.kind, lang_dir=a.lang,
           graph_opts=_load_section(a.config, "graph", []), seed=a.seed)


def cmd_mkgraph(a: argparse.Namespace) -> None:
    from asr.graph.mkgraph import make_graph

    make_graph(a.model, a.lang, _load_section(a.config, "graph", a.set), a.reuse)


def _decoder_config(model_dir: str, a: argparse.Namespace):
    from asr.decode.config import DecoderConfig

    from asr.acoustic import model_dirs

    meta = model_dirs(model_dir)[0] / "model.json"
    if not meta.exists():
        raise AsrError(f"{model_dir} is not a model dir (no model.json)")
    d = read_json(meta).get("decoder", {})  # the model's defaults, without loading it
    d.update(_load_section(a.config, "decode", a.set))
    for key in ("beam", "acoustic_scale", "lattice_beam", "word_penalty", "max_active"):
        if getattr(a, key, None) is not None:
            d[key] = getattr(a, key)
    return DecoderConfig.from_dict(d)


def cmd_ablation(a: argparse.Namespace) -> None:
    from asr.nnet.ablation import Setup, run_ablation

    config = {}
    if a.config:
        try:
            config = tomllib.loads(read_utf8(Path(a.config)))
        except tomllib.TOMLDecodeError as e:
            raise AsrError(f"{a.config}: {e}") from None
    lmwt = lambda text: tuple(float(x) for x in (text.split(":") + ["1"])[:3])  # noqa: E731
    setup = Setup(config=config, data=Path(a.data), dev=Path(a.dev), test=Path(a.test), lang=Path(a.lang),
                  out=Path(a.out), ali=Path(a.ali) if a.ali else None, gmm=Path(a.gmm) if a.gmm else None,
                  lmwt=lmwt(a.sweep), ctc_lmwt=lmwt(a.ctc_sweep), nj=a.nj,
                  base=_load_section(None, "", a.set))
    run_ablation(setup, a.rows, a.table, [n for n in (a.only or "").split(",") if n], a.title)


def cmd_vote(a: argparse.Namespace) -> None:
    from asr.decode.vote import vote_decode_dirs

    vote_decode_dirs(a.decode_dirs, a.data, a.dir)


def cmd_decode(a: argparse.Namespace) -> None:
    from asr.decode.run import decode_data_dir, keep_loaded

    if a.vad and (a.data or a.search != "graph"):
        raise AsrError("--vad decodes audio files (FILES or --scp) with the graph search, not --data or --search")
    if (a.words or a.lm) and a.search != "graph":
        raise AsrError("--words and --lm are grammars of the graph search, not of --search greedy/prefix")
    if a.search != "graph":
        return _ctc_search(a)
    if a.data:
        if not a.dir:
            raise AsrError("--data needs --dir (the decode output folder)")
        # The model's defaults, then the config's [decode] section, then flags: always applied.
        base = _decoder_config(a.model, a)
        grid = _sweep_grid(a, base) or [base]
        then = [_data_and_dir(x) for x in a.then]
        grammar = _grammar(a)
        with keep_loaded(a.model, grammar, a.mc_dropout) if then else contextlib.nullcontext():
            decode_data_dir(a.model, a.data, a.dir, grid=grid, tune_on=a.tune_on, nj=a.nj, grammar=grammar,
                            mc_samples=a.mc_dropout)
            for data, out in then:
                decode_data_dir(a.model, data, out, tune_on=a.dir, nj=a.nj, grammar=grammar, mc_samples=a.mc_dropout)
        return
    if a.then:
        raise AsrError("--then decodes more data dirs after --data; it needs --data")
    if a.nbest > 1 and a.format == "ctm":
        raise AsrError("--nbest prints word sequences (text or json), not CTM")
    keys, paths = _decode_inputs(a)
    from asr.decode.output import format_hypothesis, format_nbest
    from asr.decode.run import iter_decode_files

    out = []
    vad_cfg = None
    if a.vad:
        from asr.vad import VadConfig

        vad_cfg = VadConfig.from_dict(_load_section(a.config, "vad", []))
    results = iter_decode_files(a.model, paths, _decoder_config(a.model, a), nj=a.nj, device=a.device,
                                scp_entries=bool(a.scp), nbest=a.nbest, vad=a.vad, vad_cfg=vad_cfg,
                                grammar=_grammar(a), mc_samples=a.mc_dropout)
    for key, (_, hyp) in zip(keys, results):
        if a.nbest > 1:
            line = format_nbest(key, hyp.nbest, a.format)
        else:
            line = format_hypothesis(key, hyp, a.format, with_key=bool(a.scp) or a.format != "text")
        if a.format == "ctm" and not line:
            continue  # no words, no CTM lines
        if a.out:
            out.append(line)
        else:
            print(line, flush=True)  # as each file is done
    if a.out:
        from asr.utils import write_text_atomic

        write_text_atomic(a.out, "".join(l + "\n" for l in out))


def _data_and_dir(spec: str) -> tuple[str, str]:
    """``--then DATA:DIR`` -> (DATA, DIR)."""
    data, sep, out = spec.rpartition(":")
    if not sep or not data or not out:
        raise AsrError(f"--then expects DATA_DIR:DECODE_DIR, got {spec!r}")
    return data, out


def _grammar(a: argparse.Namespace):
    """``--words`` / ``--lm``: the grammar to decode with instead of the model's graph (or None)."""
    if not (a.words or a.lm):
        return None
    if a.words and a.lm:
        raise AsrError("--words and --lm are two grammars: give one")
    from asr.decode.run import Grammar

    return Grammar(a.words, a.lm, _load_section(a.config, "graph", []))


def _sweep_grid(a: argparse.Namespace, base):
    """The --sweep MIN:MAX[:STEP] x --penalties grid around ``base`` (None without --sweep)."""
    from asr.decode.run import lmwt_grid

    if not a.sweep:
        return None
    try:
        lo, hi, *step = (float(x) for x in a.sweep.split(":"))
        pens = tuple(float(x) for x in a.penalties.split(","))
        if len(step) > 1:
            raise ValueError
    except ValueError:
        raise AsrError(f"--sweep expects MIN:MAX[:STEP] and --penalties numbers, got "
                       f"{a.sweep!r} and {a.penalties!r}") from None
    return lmwt_grid(lo, hi, pens, base, step[0] if step else 1.0)


def cmd_lmrescore(a: argparse.Namespace) -> None:
    from asr.decode.run import lmrescore_dir

    lmrescore_dir(a.model, a.old_lm, a.new_lm, a.data, a.lattices, a.dir, _sweep_grid(a, _decoder_config(a.model, a)),
                  a.tune_on, a.prune_beam)


def _lm_weights(a: argparse.Namespace) -> list[float]:
    """--weights W1,W2,..: LSTM LM weights in [0, 1]."""
    try:
        return [float(x) for x in a.weights.split(",")]
    except ValueError:
        raise AsrError(f"--weights expects numbers in [0, 1], got {a.weights!r}") from None


def cmd_nbest_rescore(a: argparse.Namespace) -> None:
    from asr.decode.nbest_rescore import nbest_rescore_dir, settings_grid
    from asr.lang.lstm_lm import LstmLm

    grid = None
    if a.tune_on is None:
        if not a.sweep:
            raise AsrError("give --sweep MIN:MAX[:STEP] (a grid, on dev) or --tune-on DEV_DIR (test)")
        base = _sweep_grid(a, _decoder_config(a.model, a))
        grid = settings_grid(sorted({round(1.0 / c.acoustic_scale, 6) for c in base}),
                             sorted({c.word_penalty for c in base}), _lm_weights(a))
    lm = LstmLm.load(a.lstm_lm, a.device)
    # The LM's name carries a hash of its weights: --tune-on refuses a dev dir of another LM.
    weights = hashlib.sha256((Path(a.lstm_lm) / "lstm_lm.pt").read_bytes()).hexdigest()[:16]
    nbest_rescore_dir(a.model, a.graph_lm, lm.sentence_costs, f"{a.lstm_lm} (weights {weights})", a.data, a.lattices,
                      a.dir, a.nbest, grid, a.tune_on)


def cmd_lstm_lm(a: argparse.Namespace) -> None:
    from asr.lang.lstm_lm import LstmLm, LstmLmConfig, train_lstm_lm
    from asr.lang.ngram import iter_text_sentences

    if a.action == "train":
        if not a.text:
            raise AsrError("give the LM training text (files, one sentence per line)")
        opts = _load_section(a.config, "lstm_lm", a.set)
        if a.device:
            opts["device"] = a.device
        vocab = [l.split()[0] for l in read_utf8(a.vocab).splitlines() if l.strip()] if a.vocab else None
        info = train_lstm_lm(lambda: iter_text_sentences(a.text), a.model, LstmLmConfig.from_dict(opts), vocab)
        print(f"{a.model}: held-out perplexity {info['heldout_ppl']:.2f} (best epoch {info['best_epoch']})")
        return
    from asr.datadir import read_text_file

    if len(a.text) != 1:
        raise AsrError("eval: give one text file")
    path = Path(a.text[0])
    sentences = list(read_text_file(path).values()) if a.kaldi_text else list(iter_text_sentences([path]))
    lm = LstmLm.load(a.model, a.device or "cpu")
    r = lm.perplexity(sentences)
    print(f"{path}: {r['sentences']} sentences, {r['words']} words, {r['oovs']} OOVs ({r['oov_rate']:.2f}%)")
    print(f"logprob= {r['logprob']:.2f} ppl= {r['ppl']:.2f}")
    if a.ngram:
        from asr.lang.arpa_scorer import ArpaScorer
        from asr.lang.lstm_lm import interpolated_perplexity

        for w, ppl in interpolated_perplexity(lm, ArpaScorer(a.ngram), sentences, _lm_weights(a)).items():
            print(f"{w:g} x LSTM + {1 - w:g} x {Path(a.ngram).name}: ppl= {ppl:.2f}")


def cmd_lattice_copy(a: argparse.Namespace) -> None:
    from asr.decode.lattice import read_lattices, write_lattices

    lattices = read_lattices(a.input)
    write_lattices(a.output, lattices)
    print(f"{a.output}: {len(lattices)} lattices, {sum(lat.num_arcs for lat in lattices.values())} arcs")


def _decode_inputs(a: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(keys, audio paths or wav.scp entries) of ``asr decode FILE...`` or ``--scp``."""
    from asr.datadir import read_kv

    if a.scp:
        entries = read_kv(a.scp)
        keys = sorted(entries)
        return keys, [entries[k] for k in keys]
    if not a.files:
        raise AsrError("give audio files, --scp wav.scp, or --data DIR")
    return list(a.files), list(a.files)


def _ctc_search(a: argparse.Namespace) -> None:
    """``asr decode --search greedy|prefix``: a CTC model's own outputs, no graph."""
    from asr.decode.ctc_run import search_data_dir, search_files

    from asr.decode.output import format_nbest

    if a.data:
        if not a.dir:
            raise AsrError("--data needs --dir (the decode output folder)")
        search_data_dir(a.model, a.data, a.dir, a.search, a.ctc_beam)
        return
    if a.format == "ctm":
        raise AsrError("--format ctm needs word times: use the graph search (the default)")
    keys, paths = _decode_inputs(a)
    hyps = search_files(a.model, paths, a.search, a.ctc_beam, a.nbest, a.device, scp_entries=bool(a.scp))
    lines = []
    for k, p in zip(keys, paths):
        if a.nbest > 1 or a.format == "json":
            lines.append(format_nbest(k, hyps[p], a.format))
        else:
            units = " ".join(hyps[p][0][0])
            lines.append(f"{k} {units}".rstrip() if a.scp else units)
    if a.out:
        from asr.utils import write_text_atomic

        write_text_atomic(a.out, "".join(l + "\n" for l in lines))
    else:
        print("\n".join(lines), flush=True)


def cmd_lm(a: argparse.Namespace) -> None:
    import time

    from asr.lang.ngram import estimate, iter_text_sentences, prune

    t0 = time.time()
    vocab = None
    if a.vocab:
        vocab = [l.split()[0] for l in read_utf8(a.vocab).splitlines() if l.strip()]
    lm = estimate(iter_text_sentences(a.text), a.order, a.method, vocab)
    counts = " ".join(f"{k + 1}-grams {len(x)}" for k, x in enumerate(lm.keys))
    log.info("estimated %s (%.1f s)", counts, time.time() - t0)
    if a.prune is not None or a.max_ngrams is not None:
        lm = prune(lm, a.prune, a.max_ngrams)
        log.info("pruned to %s (%.1f s)", " ".join(f"{k + 1}-grams {len(x)}" for k, x in enumerate(lm.keys)),
                 time.time() - t0)
    lm.write_arpa(a.out if a.out else sys.stdout)


def cmd_g2p(a: argparse.Namespace) -> None:
    from asr.lang.g2p import G2p, G2pConfig, cmudict_entries, train_g2p
    from asr.lang.lexicon import Lexicon

    if a.action == "train":
        if a.dict:
            lex = Lexicon.read(a.dict)
            entries = [(w, p) for w, alts in lex.prons.items() for p in alts]
        else:
            entries = cmudict_entries()
        opts = _load_section(a.config, "g2p", a.set)
        train_g2p(entries, a.model, G2pConfig.from_dict(opts))
        return
    words = list(a.words)
    if a.word_list:
        words += [l.split()[0] for l in read_utf8(a.word_list).splitlines() if l.strip()]
    if not words:
        raise AsrError("give words to pronounce (arguments or --word-list FILE)")
    g2p = G2p.load(a.model)
    lines = [f"{w} {' '.join(p)}" for w, p in zip(words, g2p.pronounce(words))]
    if a.out:
        from asr.utils import write_text_atomic

        write_text_atomic(a.out, "".join(l + "\n" for l in lines))
    else:
        print("\n".join(lines))


def cmd_lexicon(a: argparse.Namespace) -> None:
    from asr.corpora.download import write_lang_sources
    from asr.datadir import read_text_file
    from asr.lang.g2p import G2p, build_lexicon

    words = [l.split()[0] for l in read_utf8(a.vocab).splitlines() if l.strip()] if a.vocab else []
    for t in a.text:
        words += [w for ws in read_text_file(Path(t)).values() for w in ws]
    words = [w for w in words if not w.startswith("<")]
    if not words:
        raise AsrError("no words: give --vocab and/or --text")
    entries, counts = build_lexicon(words, G2p.load(a.g2p) if a.g2p else None)
    entries.append(("<UNK>", ["SPN"]))
    phones = sorted({p for _, pron in entries for p in pron} - {"SIL", "SPN"})
    write_lang_sources(Path(a.out), entries, phones, silence_phones=("SIL", "SPN"))
    log.info("lexicon %s: %d words (%d from CMUdict, %d by G2P, %d without a pronunciation), %d entries, %d phones",
             Path(a.out) / "lexicon.txt", counts["words"], counts["cmudict"], counts["g2p"],
             counts["without_pronunciation"], len(entries), len(phones))


def cmd_lm_eval(a: argparse.Namespace) -> None:
    import json

    from asr.datadir import read_text_file
    from asr.lang.arpa_scorer import ArpaScorer, perplexity

    from asr.lang.ngram import iter_text_sentences

    path = Path(a.text)
    sentences = read_text_file(path).values() if a.kaldi_text else iter_text_sentences([path])
    r = perplexity(ArpaScorer(a.lm), sentences, a.unk)
    print(f"{a.text}: {r['sentences']} sentences, {r['words']} words, {r['oovs']} OOVs ({r['oov_rate']:.2f}%)")
    print(f"logprob= {r['logprob']:.2f} ppl= {r['ppl']:.2f}")
    if a.json:
        from asr.utils import write_text_atomic

        write_text_atomic(a.json, json.dumps(r, indent=1) + "\n")


def cmd_lm_text(a: argparse.Namespace) -> None:
    from asr.lang.book_text import archive_sentences
    from asr.utils import atomic_open

    n = words = 0
    with atomic_open(a.out, "w") as f:
        for sent in tqdm_iter(archive_sentences(a.archive), "sentences"):
            f.write(sent + "\n")
            n += 1
            words += sent.count(" ") + 1
    log.info("wrote %d sentences, %d words to %s", n, words, a.out)


def tqdm_iter(it, unit: str):
    from tqdm import tqdm

    return tqdm(it, unit=f" {unit}", leave=False, disable=None)


def cmd_score(a: argparse.Namespace) -> None:
    from asr.score import read_text, score_texts

    counts, _ = score_texts(read_text(a.ref), read_text(a.hyp))
    print(counts.kaldi_line())
    print(counts.ser_line())


def cmd_align(a: argparse.Namespace) -> None:
    from asr.hmm.align_data import align_audio, align_data_dir
    from asr.hmm.align_output import to_ctm, to_json, to_textgrid
    from asr.model_dir import read_meta
    from asr.utils import atomic_open, write_text_atomic

    opts = _load_section(a.config, "align", a.set)
    if a.nj > 1:
        opts["nj"] = a.nj
    if a.data:
        if a.audio or not a.out:
            raise AsrError("--data DIR aligns a data dir into --out DIR (no AUDIO TRANSCRIPT with it)")
        if read_meta(Path(a.model)).get("type") == "ctc":
            from asr.nnet.ctc_align import align_ctc_data_dir

            results = align_ctc_data_dir(a.model, a.data, a.out)
        else:
            results = align_data_dir(a.model, a.data, a.out, opts)
        out = Path(a.out)
        if a.format == "json":
            with atomic_open(out / "alignments.jsonl") as f:
                for u in sorted(results):
                    f.write(to_json(u, *results[u]))
        elif a.format == "textgrid":
            for u, (tiers, duration) in results.items():
                write_text_atomic(out / "textgrid" / f"{u}.TextGrid", to_textgrid(tiers, duration))
        return
    if not a.audio or a.transcript is None:
        raise AsrError("give AUDIO \"TRANSCRIPT\", or --data DIR --out DIR")
    tiers, duration = align_audio(a.model, a.audio, a.transcript.split(), opts)
    text = {"ctm": lambda: "".join(to_ctm(a.audio, tiers, t) for t in tiers), "json": lambda: to_json(a.audio, tiers, duration),
            "textgrid": lambda: to_textgrid(tiers, duration)}[a.format]()
    if a.out:
        write_text_atomic(a.out, text)
    else:
        sys.stdout.write(text)


def cmd_plot(a: argparse.Namespace) -> None:
    from asr import plot

    need = {"align": 3, "posteriors": 2, "training": 1, "wer": 1}[a.kind]
    if len(a.args) != need:
        raise AsrError(f"asr plot {a.kind} takes {need} argument(s): "
                       + {"align": "MODEL AUDIO \"TRANSCRIPT\"", "posteriors": "MODEL AUDIO",
                          "training": "MODEL_DIR", "wer": "EXP_DIR"}[a.kind])
    if a.kind == "align":
        from asr.hmm.align_data import align_audio

        tiers, _ = align_audio(a.args[0], a.args[1], a.args[2].split())
        out = plot.plot_alignment(a.args[1], tiers, a.out)
    elif a.kind == "posteriors":
        import numpy as np

        from asr.acoustic import features_for_files, frame_shift_s, load_model

        model = load_model(a.args[0])
        if not hasattr(model, "log_posteriors"):
            raise AsrError(f"{a.args[0]}: a posteriorgram needs a network model (DNN or CTC)")
        feats = features_for_files(model, [a.args[1]])[a.args[1]]
        labels = model.tokens.symbols if hasattr(model, "tokens") else None
        out = plot.plot_posteriors(np.asarray(model.log_posteriors(feats)), labels, frame_shift_s(model),
                                   f"{a.args[0]}: {Path(a.args[1]).name}", a.out)
    elif a.kind == "training":
        out = plot.plot_training(a.args[0], a.out)
    else:
        out = plot.plot_wer(a.args[0], a.out)
    print(out)


def cmd_results(a: argparse.Namespace) -> None:
    from asr.results import write_cross_results, write_results

    if a.cross:
        print(write_cross_results(a.exp, a.out or Path(a.exp) / "RESULTS.md", a.notes, a.label))
        return
    text = write_results(a.exp, a.out or Path(a.exp) / "RESULTS.md", a.title, a.commands, a.notes, a.label)
    print(text)


def _number(kind, test, what):
    """An argparse type: ``kind`` parsed, finite, and passing ``test`` (else "must be WHAT")."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or not test(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    parse.__name__ = what  # argparse names the type in some messages
    return parse


positive_float = _number(float, lambda v: v > 0, "a finite number > 0")
finite_float = _number(float, lambda v: True, "a finite number")
positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")


def device_name(text: str) -> str:
    """--device: cpu, or cuda[:N] when torch sees that GPU."""
    if text == "cpu":
        return text
    if not re.fullmatch(r"cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected cpu or cuda[:N], got {text!r}")
    import torch

    index = int(text.split(":")[1]) if ":" in text else 0
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text} was asked for, but torch sees "
                                         f"{torch.cuda.device_count() if torch.cuda.is_available() else 'no'} GPU(s)")
    return text


class _VersionAction(argparse.Action):
    """``asr --version``: one ``name version`` line per component, then a check that
    torchaudio's compiled extension loads with this torch (exit 1 with what to install)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from asr import backend

        for name, version in backend.versions().items():
            print(f"{name} {version}")
        try:
            backend.check()
        except AsrError as e:
            print(f"asr: error: {e}", file=sys.stderr)
            parser.exit(1)
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action=_VersionAction,
                   help="print the versions of asr, torch, torchaudio, numpy and the audio backend, and check "
                        "that torchaudio loads")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name: str, func, help: str, example: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=f"{help}\n\nexample:\n  {example}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(func=func)
        return sp

    def config_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", help="recipe TOML config (this stage's section is used)")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override an option")

    sp = add("prepare", cmd_prepare, "prepare a corpus into Kaldi data dirs",
             "asr prepare yesno --out data")
    sp.add_argument("corpus", help="yesno, an4, fsdd or librispeech")
    sp.add_argument("--out", default="data")
    sp.add_argument("--mirror", help="folder holding the corpus archives (default $ASR_CORPUS_MIRROR or ../shared/corpora)")
    sp.add_argument("--work-dir", help="where archives are extracted (default data/local)")

    sp = add("split-dev", cmd_split_dev, "hold whole training speakers out as a dev set (for tuning, never test)",
             "asr split-dev data/an4/train data/an4/train_nodev data/an4/dev --speakers 10")
    sp.add_argument("src")
    sp.add_argument("train_out")
    sp.add_argument("dev_out")
    sp.add_argument("--speakers", type=positive_int, required=True, help="how many speakers to hold out")

    sp = add("lang", cmd_lang, "build a lang dir (phones, words, lexicon, topology, LM)",
             "asr lang --dict data/local --lm data/local/lm.arpa --out data/lang")
    sp.add_argument("--dict", dest="dict_dir", required=True)
    sp.add_argument("--lm", help="ARPA LM (default: a uniform word loop over the lexicon)")
    sp.add_argument("--out", required=True)
    config_opts(sp)

    sp = add("features", cmd_features, "compute MFCC/fbank features and CMVN stats of data dirs",
             "asr features --config conf.toml data/train data/test")
    sp.add_argument("data", nargs="+")
    sp.add_argument("--section", default="features", help="config section with the options (e.g. fbank)")
    sp.add_argument("--suffix", help="compute into a copy of each data dir named DIR+SUFFIX (e.g. _fbank)")
    sp.add_argument("--nj", type=positive_int, default=1, help="parallel processes (the same features for any nj)")
    config_opts(sp)

    sp = add("perturb-speed", cmd_perturb_speed, "copy a data dir at several speeds (Kaldi's 3-way speed perturbation)",
             "asr perturb-speed data/an4/train data/an4/train_sp --factors 0.9,1.0,1.1")
    sp.add_argument("data", help="source data dir")
    sp.add_argument("out", help="new data dir: utterances sp<f>-<utt> (factor 1 keeps the ids), wavs in OUT/wav")
    sp.add_argument("--factors", default="0.9,1.0,1.1", help="speed factors (default 0.9,1.0,1.1)")

    sp = add("augment", cmd_augment, "multi-condition copies of a data dir: silence, reverberation, noise, "
             "band-limiting, codecs, gain ([augment] section)",
             "asr augment data/an4/train_sp data/an4/train_sp_aug --config conf.toml --set copies=2")
    sp.add_argument("data", help="source data dir")
    sp.add_argument("out", help="new data dir: the originals plus copies aug<k>-<utt>, wavs in OUT/wav")
    sp.add_argument("--section", default="augment", help="config section with the options")
    config_opts(sp)

    sp = add("concat-utts", cmd_concat_utts, "connected-speech copies of an isolated-word data dir: each "
             "speaker's utterances joined into strings ([concat] section)",
             "asr concat-utts data/fsdd/train_sp5 data/fsdd/train_sp5_cat --config conf.toml --set copies=2")
    sp.add_argument("data", help="source data dir (every utterance with a transcript)")
    sp.add_argument("out", help="new data dir: the originals plus strings cat<k>-<spk>-<n>, wavs in OUT/wav")
    sp.add_argument("--section", default="concat", help="config section with the options")
    config_opts(sp)

    sp = add("copy-ali", cmd_copy_ali, "alignments of an augmented data dir from its sources' (no realignment)",
             "asr copy-ali exp/an4/tri1_ali_sp data/an4/train_sp_aug exp/an4/tri1_ali_sp_aug --model exp/an4/tri1")
    sp.add_argument("ali", help="alignment dir of the source data")
    sp.add_argument("data", help="the augmented data dir (asr augment)")
    sp.add_argument("out", help="new alignment dir")
    sp.add_argument("--model", required=True, help="the model that made the alignments (its silence phone)")

    sp = add("subset-data", cmd_subset_data, "copy the utterances of a list out of a data dir, features included",
             "asr subset-data data/an4/train_fbank data/an4/heldout_fbank --utt-list exp/an4/dnn/heldout_utts")
    sp.add_argument("data", help="source data dir")
    sp.add_argument("out", help="new data dir (its feats.scp points into the source's ark files)")
    which = sp.add_mutually_exclusive_group(required=True)
    which.add_argument("--utt-list", help="file with one utterance id per line")
    which.add_argument("--shortest", type=int, metavar="N", help="the N utterances with the fewest frames "
                       "(Kaldi's subset_data_dir.sh --shortest)")

    sp = add("train-mono", cmd_train_mono, "train a monophone GMM-HMM from a flat start",
             "asr train-mono --data data/train --lang data/lang --out exp/mono")
    sp.add_argument("--data", required=True)
    sp.add_argument("--lang", required=True)
    sp.add_argument("--out", required=True)
    config_opts(sp)

    def tied_gmm_opts(sp: argparse.ArgumentParser, section: str, ali_help: str, ali_required: bool = True) -> None:
        """Options of the tied-state GMM trainers (tri1, tri2, tri3)."""
        sp.add_argument("--data", required=True)
        sp.add_argument("--lang", required=True)
        sp.add_argument("--ali", required=ali_required, help=ali_help)
        sp.add_argument("--out", required=True)
        sp.add_argument("--section", default=section, help=f"config section with the options (default {section})")
        config_opts(sp)

    sp = add("train-tri", cmd_train_tri, "train a triphone GMM-HMM (decision-tree tied states) from an alignment",
             "asr train-tri --data data/train --lang data/lang --ali exp/mono/ali --out exp/tri1 --set num_leaves=1800")
    tied_gmm_opts(sp, "tri1", "alignment dir of the previous model (e.g. exp/mono/ali)")

    sp = add("train-lda-mllt", cmd_train_lda_mllt, "train tri2: triphones on LDA+MLLT features (spliced MFCCs)",
             "asr train-lda-mllt --data data/train --lang data/lang --ali exp/tri1/ali --out exp/tri2")
    tied_gmm_opts(sp, "tri2", "alignment dir of the previous model (e.g. exp/tri1/ali)")

    sp = add("train-sat", cmd_train_sat, "train tri3: speaker-adaptive training with per-speaker fMLLR",
             "asr train-sat --data data/train --lang data/lang --prev exp/tri2 --out exp/tri3")
    sp.add_argument("--prev", required=True, help="the speaker-independent system to start from (e.g. exp/tri2)")
    tied_gmm_opts(sp, "tri3", "its alignment of --data (default PREV/ali)", ali_required=False)

    sp = add("train-dnn", cmd_train_dnn, "train a hybrid DNN (or TDNN) on the tied states of a GMM alignment",
             "asr train-dnn --data data/an4/train_fbank --ali exp/an4/tri1/ali --gmm exp/an4/tri1 --out exp/an4/dnn")
    sp.add_argument("--data", required=True, help="training data dir with the network's features")
    sp.add_argument("--ali", required=True, help="alignment dir (ali.pdf.scp) of the GMM system")
    sp.add_argument("--gmm", required=True, help="the GMM model dir that produced the alignment (tree, HMMs)")
    sp.add_argument("--out", required=True)
    sp.add_argument("--device", type=device_name, help="cpu or cuda (default: the config's, else cpu)")
    sp.add_argument("--section", default="dnn", help="config section with the options (default dnn)")
    config_opts(sp)

    sp = add("train-ctc", cmd_train_ctc, "train a (Bi)LSTM with CTC on whole utterances (no alignment needed)",
             "asr train-ctc --data data/an4/train_fbank --lang data/an4/lang --out exp/an4/ctc --set tokens=char")
    sp.add_argument("--data", required=True, help="training data dir with fbank features")
    sp.add_argument("--lang", required=True, help="lang dir: lexicon (phone tokens), words, LM side")
    sp.add_argument("--out", required=True)
    sp.add_argument("--device", type=device_name, help="cpu or cuda (default: the config's, else cpu)")
    sp.add_argument("--section", default="ctc", help="config section with the options (default ctc)")
    config_opts(sp)

    sp = add("nnet-search", cmd_nnet_search,
             "hyper-parameter search (grid, random, TPE or GP) for the DNN or CTC model, scored on a dev set",
             "asr nnet-search --data data/fsdd/train_fbank --ali exp/fsdd/tri1/ali --gmm exp/fsdd/tri1 "
             "--lang data/fsdd/lang --dev data/fsdd/dev_fbank --out exp/fsdd/dnn_search --sampler tpe --trials 12 "
             "--space learning_rate=log:1e-4:1e-2 --space hidden_dim=256,512 --space dropout=uniform:0:0.3")
    sp.add_argument("--kind", choices=["dnn", "ctc"], default="dnn", help="what each trial trains")
    sp.add_argument("--data", required=True)
    sp.add_argument("--ali", help="alignment dir (dnn)")
    sp.add_argument("--gmm", help="the GMM the alignment came from; its graph decodes every trial (dnn)")
    sp.add_argument("--lang", required=True, help="lang dir: the lexicon and G.arpa of the trials' graphs")
    sp.add_argument("--dev", required=True, help="dev data dir with text (never the test set)")
    sp.add_argument("--out", required=True)
    sp.add_argument("--space", action="append", default=[], metavar="NAME=SPEC",
                    help="NAME=V1,V2,... (choices) or NAME=log:LO:HI | uniform:LO:HI | int:LO:HI (ranges)")
    sp.add_argument("--sampler", choices=["grid", "random", "tpe", "gp"],
                    help="grid (choices only; the default), random, tpe (Bayesian, Parzen estimators) or gp "
                         "(Bayesian, Gaussian process)")
    sp.add_argument("--trials", type=_number(int, lambda v: v >= 0, "an integer >= 0"), default=0,
                    help="trials in all (random, tpe, gp); a rerun resumes up to this many")
    sp.add_argument("--random", type=_number(int, lambda v: v >= 0, "an integer >= 0"), default=0,
                    help="shorthand for --sampler random --trials N")
    sp.add_argument("--sweep", default="7:17", metavar="MIN:MAX[:STEP]", help="dev LMWT grid (ctc: e.g. 0.25:2:0.25)")
    sp.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    sp.add_argument("--device", type=device_name)
    sp.add_argument("--nj", type=positive_int, default=1)
    sp.add_argument("--section", help="config section of the base options (default: the kind, dnn or ctc)")
    config_opts(sp)

    sp = add("mkgraph", cmd_mkgraph, "compile the decoding graph into a model dir",
             "asr mkgraph exp/mono --lang data/lang")
    sp.add_argument("model")
    sp.add_argument("--lang", required=True)
    sp.add_argument("--reuse", metavar="MODEL_DIR", help="copy that model's graph when it was made from the same "
                    "tree, lexicon and LM (a DNN on a GMM's tied states), else compile")
    config_opts(sp)

    sp = add("align", cmd_align, "force-align audio to its transcript: word and phone times (CTM, JSON, TextGrid)",
             "asr align exp/an4/tri1 a.wav \"GO TO SEVEN\" --format textgrid --out a.TextGrid"
             "   |   asr align exp/mono --data data/train --out exp/mono_ali")
    sp.add_argument("model")
    sp.add_argument("audio", nargs="?", help="one audio file (wav, flac, AN4 .raw)")
    sp.add_argument("transcript", nargs="?", help="its words, in quotes")
    sp.add_argument("--data", "--data-dir", dest="data", help="align every utterance of a data dir (its text file)")
    sp.add_argument("--nj", type=positive_int, default=1, help="parallel processes for --data (the same alignments)")
    sp.add_argument("--out", help="output file (one audio; default stdout) or folder (--data: alignments, "
                                  "words.ctm, phones.ctm, and the --format files)")
    sp.add_argument("--format", default="ctm", choices=["ctm", "json", "textgrid"],
                    help="ctm: Kaldi CTM per tier; json: all tiers with times; textgrid: Praat TextGrid")
    config_opts(sp)

    sp = add("decode", cmd_decode, "decode audio files or a data dir",
             "asr decode exp/mono a.wav b.wav   |   asr decode exp/mono --data data/test --dir exp/mono/decode_test")
    sp.add_argument("model", help="model dir; DNN (or CTC) dirs joined by commas (A,B) decode as an ensemble")
    sp.add_argument("files", nargs="*", help="audio files (wav, flac, AN4 .raw)")
    sp.add_argument("--scp", help="Kaldi wav.scp to decode")
    sp.add_argument("--out", help="write Kaldi text (with --scp) or transcripts here instead of stdout")
    sp.add_argument("--data", help="data dir to decode (and score if it has text)")
    sp.add_argument("--dir", help="decode output folder for --data")
    sp.add_argument("--sweep", metavar="MIN:MAX[:STEP]",
                    help="try LMWT MIN..MAX (step 1, or STEP) and report the best (Kaldi best_wer)")
    sp.add_argument("--penalties", default="0,0.5,1", help="word insertion penalties for --sweep")
    sp.add_argument("--tune-on", help="use the best settings found by a --sweep of another decode dir (dev)")
    sp.add_argument("--then", action="append", default=[], metavar="DATA:DIR",
                    help="after --data, decode this data dir into DIR with the setting --data's grid chose "
                         "(as --tune-on would), in the same process (repeatable)")
    sp.add_argument("--beam", type=positive_float)
    sp.add_argument("--max-active", type=positive_int)
    sp.add_argument("--acoustic-scale", type=positive_float)
    sp.add_argument("--lattice-beam", type=positive_float, help="keep lattice paths within this of the best")
    sp.add_argument("--word-penalty", type=finite_float)
    sp.add_argument("--nj", type=positive_int, default=1, help="parallel decoding processes")
    sp.add_argument("--search", default="graph", choices=["graph", "greedy", "prefix"],
                    help="graph: lexicon + LM Viterbi search (any model); greedy / prefix: a CTC model's "
                         "best path / prefix beam search without lexicon or LM")
    sp.add_argument("--ctc-beam", type=positive_int, default=8, help="prefix beam search width")
    sp.add_argument("--format", default="text", choices=["text", "json", "ctm"],
                    help="text: the words; json: one object per file with word times and confidences; "
                         "ctm: Kaldi CTM lines (file 1 start duration word confidence)")
    sp.add_argument("--nbest", type=positive_int, default=1, help="N best word sequences (from the lattice, or the CTC prefix search)")
    sp.add_argument("--words", help="decode with a uniform loop over the words of this list file instead of the "
                                    "model's graph (every word needs a pronunciation; compiled once, cached)")
    sp.add_argument("--lm", help="decode with this ARPA LM instead of the model's graph (compiled once, cached)")
    sp.add_argument("--vad", choices=["trim", "segment"],
                    help="energy VAD first ([vad] section): trim the silence around the speech, or decode each "
                         "speech segment alone (files over a minute are cut at pauses anyway)")
    sp.add_argument("--mc-dropout", type=positive_int, default=0, metavar="N",
                    help="Monte-Carlo dropout: average the posteriors of N dropout draws (hybrid networks)")
    sp.add_argument("--device", type=device_name, default="cpu", help="cpu or cuda (network models)")
    config_opts(sp)

    sp = add("ablation", cmd_ablation, "train, decode and table one network variant per row of an ablation file",
             "asr ablation recipes/fsdd/ablation.toml --config recipes/fsdd/conf.toml --data data/fsdd/train_fbank "
             "--ali exp/fsdd/tri1/ali --gmm exp/fsdd/tri1 --lang data/fsdd/lang --dev data/fsdd/dev_fbank "
             "--test data/fsdd/test_fbank --out exp/fsdd/ablation --table recipes/fsdd/ABLATION.md")
    sp.add_argument("rows", help="TOML file of [base] options and [[row]] variants (see asr.nnet.ablation)")
    sp.add_argument("--data", required=True, help="training data dir")
    sp.add_argument("--ali", help="alignment dir (hybrid rows)")
    sp.add_argument("--gmm", help="the GMM of the alignment (hybrid rows)")
    sp.add_argument("--lang", required=True, help="lang dir (graphs)")
    sp.add_argument("--dev", required=True, help="dev data dir: every choice is made here")
    sp.add_argument("--test", required=True, help="test data dir: decoded once per row with dev's setting")
    sp.add_argument("--out", required=True, help="exp dir of the rows")
    sp.add_argument("--table", help="write the Markdown table here")
    sp.add_argument("--title", default="", help="the table's heading")
    sp.add_argument("--only", help="comma-separated row names to run (the table shows every finished row)")
    sp.add_argument("--sweep", default="7:17", metavar="MIN:MAX[:STEP]", help="dev LMWT grid of hybrid rows")
    sp.add_argument("--ctc-sweep", default="0.25:2:0.25", metavar="MIN:MAX[:STEP]", help="dev LMWT grid of CTC rows")
    sp.add_argument("--nj", type=positive_int, default=1)
    config_opts(sp)

    sp = add("vote", cmd_vote, "majority vote (ROVER) over several systems' decodes of one data dir",
             "asr vote exp/an4/dnn/decode_test exp/an4/tdnn/decode_test exp/an4/ctc/decode_test "
             "--data data/an4/test --dir exp/an4/vote/decode_test")
    sp.add_argument("decode_dirs", nargs="+", help="decode dirs with hyp.txt, best system (on dev) first")
    sp.add_argument("--data", help="the data dir decoded (scored when it has text)")
    sp.add_argument("--dir", required=True, help="output decode dir")

    sp = add("lmrescore", cmd_lmrescore, "rescore a decode dir's lattices with a bigger LM (Kaldi's lmrescore.sh)",
             "asr lmrescore exp/ls/tri1 --old-lm data/lang/G.arpa --new-lm data/local/lm_big.arpa "
             "--data data/ls/dev --lattices exp/ls/tri1/decode_dev --dir exp/ls/tri1/decode_dev_big --sweep 7:17")
    sp.add_argument("model", help="the model dir the lattices were decoded with")
    sp.add_argument("--old-lm", required=True, help="ARPA LM the decoding graph was built from")
    sp.add_argument("--new-lm", required=True, help="ARPA LM to rescore with (up to 3-grams)")
    sp.add_argument("--data", required=True, help="the data dir that was decoded (its text is scored)")
    sp.add_argument("--lattices", required=True, help="decode dir holding lat.npz (or lat.gz)")
    sp.add_argument("--dir", required=True, help="output decode dir")
    sp.add_argument("--sweep", metavar="MIN:MAX[:STEP]", help="LMWT grid to score (Kaldi best_wer)")
    sp.add_argument("--penalties", default="0,0.5,1", help="word insertion penalties for --sweep")
    sp.add_argument("--tune-on", help="use the best setting of another rescored dir (dev)")
    sp.add_argument("--prune-beam", type=float, default=6.0,
                    help="prune each lattice to this beam before rescoring (Kaldi's lattice-prune; 0: not)")
    config_opts(sp)

    sp = add("nbest-rescore", cmd_nbest_rescore,
             "rescore a decode dir's lattices with an LSTM LM through n-best lists (Kaldi's RNNLM rescoring)",
             "asr nbest-rescore exp/ls/tri3 --graph-lm data/local/lm_big.arpa --lstm-lm exp/ls/lstm_lm "
             "--data data/ls/dev --lattices exp/ls/tri3/decode_dev_big --dir exp/ls/tri3/decode_dev_lstm --sweep 7:17")
    sp.add_argument("model", help="the model dir the lattices were decoded with")
    sp.add_argument("--graph-lm", required=True,
                    help="ARPA LM whose costs the lattices hold (the graph's, or the one they were rescored with)")
    sp.add_argument("--lstm-lm", required=True, help="LSTM LM dir (asr lstm-lm train)")
    sp.add_argument("--data", required=True, help="the data dir that was decoded (its text is scored)")
    sp.add_argument("--lattices", required=True, help="decode dir holding lat.npz and best_config.json")
    sp.add_argument("--dir", required=True, help="output decode dir")
    sp.add_argument("--nbest", type=positive_int, default=100, help="hypotheses per utterance")
    sp.add_argument("--sweep", metavar="MIN:MAX[:STEP]", help="LMWT grid to score (Kaldi best_wer)")
    sp.add_argument("--penalties", default="0,0.5,1", help="word insertion penalties for --sweep")
    sp.add_argument("--weights", default="0,0.25,0.5,0.75,1",
                    help="LSTM LM weights for --sweep (log-linear with the n-gram; 0: the n-gram alone)")
    sp.add_argument("--tune-on", help="use the best setting of another n-best-rescored dir (dev)")
    sp.add_argument("--device", default="cpu", help="where the LSTM LM runs (cpu, cuda)")
    config_opts(sp)

    sp = add("lstm-lm", cmd_lstm_lm, "train a word-level LSTM LM on text, or give its perplexity on a text",
             "asr lstm-lm train exp/ls/lstm_lm data/local/lm_text.txt --vocab vocab.txt --config conf.toml   |   "
             "asr lstm-lm eval exp/ls/lstm_lm data/ls/dev/text --kaldi-text")
    sp.add_argument("action", choices=["train", "eval"])
    sp.add_argument("model", help="LSTM LM dir (written by train, read by eval)")
    sp.add_argument("text", nargs="*", help="train: text files, one sentence per line; eval: one text file")
    sp.add_argument("--vocab", help="train: the word list it scores (first field per line; default: the text's words)")
    sp.add_argument("--kaldi-text", action="store_true", help="eval: the text's first field is an utterance id")
    sp.add_argument("--ngram", help="eval: also the perplexity of a linear mix with this ARPA LM")
    sp.add_argument("--weights", default="0,0.25,0.5,0.75,1", help="eval: LSTM weights of the mix with --ngram")
    sp.add_argument("--device", help="cpu or cuda (train: overrides the config's device)")
    config_opts(sp)

    sp = add("lattice-copy", cmd_lattice_copy,
             "convert a lattice archive: binary (.npz, what decode dirs hold) <-> Kaldi text (.gz or plain)",
             "asr lattice-copy exp/an4/tri1/decode_test/lat.npz lat.txt.gz   # then Kaldi: "
             "lattice-copy 'ark:gunzip -c lat.txt.gz|' ark:lat.ark")
    sp.add_argument("input", help="lattice archive to read (.npz binary, else Kaldi text, gzipped if .gz)")
    sp.add_argument("output", help="archive to write: .npz binary, else Kaldi text (gzipped if .gz)")

    sp = add("lm", cmd_lm, "estimate an n-gram LM (ARPA) from a text file, one sentence per line",
             "asr lm --order 3 corpus.txt > lm.arpa   # then: asr lang --dict D --lm lm.arpa --out data/lang")
    sp.add_argument("text", nargs="+", help="training text files: one sentence per line, words separated by spaces")
    sp.add_argument("--order", type=positive_int, default=3)
    sp.add_argument("--method", choices=["kn", "mkn", "wb"], default="kn",
                    help="interpolated Kneser-Ney (one discount per order), modified Kneser-Ney (three per "
                         "order, Chen & Goodman; SRILM -kndiscount) or Witten-Bell")
    sp.add_argument("--vocab", help="word list (first field per line): other words become <UNK>")
    prune_opts = sp.add_mutually_exclusive_group()
    prune_opts.add_argument("--prune", type=positive_float, metavar="THRESHOLD",
                            help="relative-entropy pruning threshold (SRILM -prune)")
    prune_opts.add_argument("--max-ngrams", type=positive_int, metavar="N",
                            help="prune (relative entropy) to at most N n-grams in all")
    sp.add_argument("--out", help="ARPA file to write (default: stdout)")

    sp = add("g2p", cmd_g2p, "train a grapheme-to-phoneme model (CMUdict by default), or pronounce words with one",
             "asr g2p train exp/g2p   |   asr g2p apply exp/g2p TOLKIEN HOGWARTS   |   "
             "asr g2p apply exp/g2p --word-list oov.txt --out oov_lexicon.txt")
    sp.add_argument("action", choices=["train", "apply"])
    sp.add_argument("model", help="G2P model dir (written by train, read by apply)")
    sp.add_argument("words", nargs="*", help="apply: words to pronounce")
    sp.add_argument("--dict", help="train: a lexicon.txt to learn from (default: CMUdict, stress dropped)")
    sp.add_argument("--word-list", help="apply: a file of words (first field per line)")
    sp.add_argument("--out", help="apply: write WORD PHONES lines here instead of stdout")
    config_opts(sp)

    sp = add("lexicon", cmd_lexicon, "a dict dir (lexicon.txt, phone lists) from CMUdict plus a G2P for other words",
             "asr lexicon --vocab ../shared/corpora/librispeech-vocab.txt --text data/librispeech/train/text "
             "--g2p exp/g2p --out data/librispeech/local/dict")
    sp.add_argument("--vocab", help="word list (first field per line)")
    sp.add_argument("--text", action="append", default=[], help="Kaldi text file whose words must be covered")
    sp.add_argument("--g2p", help="G2P model dir for words CMUdict lacks (without: they are left out)")
    sp.add_argument("--out", required=True, help="dict dir to write")

    sp = add("lm-eval", cmd_lm_eval, "perplexity and OOV rate of an ARPA LM on text (SRILM's ppl)",
             "asr lm-eval data/local/lm.arpa data/librispeech/dev/text --kaldi-text")
    sp.add_argument("lm", help="ARPA LM (up to 3-grams)")
    sp.add_argument("text", help="one sentence per line (or a Kaldi text file with --kaldi-text)")
    sp.add_argument("--kaldi-text", action="store_true", help="lines start with an utterance id")
    sp.add_argument("--unk", default="<UNK>", help="the LM's unknown-word symbol")
    sp.add_argument("--json", help="also write the figures here")

    sp = add("lm-text", cmd_lm_text, "LM training sentences from a tar of Project Gutenberg books (LibriSpeech style)",
             "asr lm-text ../shared/corpora/gutenberg_lm_text.tar.gz --out data/local/lm_text.txt")
    sp.add_argument("archive", help="tar(.gz) archive of .txt books")
    sp.add_argument("--out", required=True, help="text file to write, one sentence per line")

    sp = add("plot", cmd_plot, "draw a PNG: alignment over the spectrogram, posteriorgram, training curves, WER bars",
             "asr plot align exp/yesno/tri1 a.wav \"YES NO\" --out a.png   |   asr plot posteriors exp/yesno/ctc a.wav "
             "--out p.png   |   asr plot training exp/an4/dnn --out t.png   |   asr plot wer exp/an4 --out w.png")
    sp.add_argument("kind", choices=["align", "posteriors", "training", "wer"])
    sp.add_argument("args", nargs="+", help="align: MODEL AUDIO TRANSCRIPT; posteriors: MODEL AUDIO; "
                                            "training: MODEL_DIR; wer: EXP_DIR")
    sp.add_argument("--out", required=True, help="PNG file to write")

    sp = add("score", cmd_score, "WER of a hypothesis text against a reference text",
             "asr score data/test/text exp/mono/decode_test/hyp.txt")
    sp.add_argument("ref")
    sp.add_argument("hyp")
    sp = add("results", cmd_results, "Markdown table of every decoded system in an experiment folder",
             "asr results exp/an4 --out recipes/an4/RESULTS.md   |   asr results --cross exp/cross")
    sp.add_argument("exp")
    sp.add_argument("--out", help="where to write the table (default EXP/RESULTS.md)")
    sp.add_argument("--title", default="")
    sp.add_argument("--commands", default="", help="the commands that produced the results, for the record")
    sp.add_argument("--notes", help="a Markdown file appended to the table (references, remarks)")
    sp.add_argument("--cross", action="store_true",
                    help="EXP holds cross-corpus decodes (recipes/cross): one row per model, one column per target")
    sp.add_argument("--label", action="append", default=[], metavar="SYSTEM=TEXT",
                    help="append TEXT to the 'chosen how' of SYSTEM's rows (SYSTEM* for a prefix), e.g. "
                         "'tri1=test-tuned: Gaussians read on test'")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Every failure ends as one line on stderr and exit status 1: our
    own AsrError as it is, anything else with its type and "run with -v for the traceback"
    (with -v the traceback is printed too)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        args.func(args)
    except AsrError as e:
        print(f"asr {args.cmd}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"asr {args.cmd}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug or an unforeseen input: still one line
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"asr {args.cmd}: error: {_describe(e)}"
              + ("" if args.verbose else " (run with -v for the traceback)"), file=sys.stderr)
        return 1
    return 0


def _describe(e: Exception) -> str:
    """One line for an exception that is not an AsrError."""
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    if isinstance(e, MemoryError):
        return "out of memory"
    text = one_line(e, 300) if str(e).strip() else ""
    return f"unexpected {type(e).__name__}" + (f": {text}" if text else "")


if __name__ == "__main__":
    sys.exit(main())
