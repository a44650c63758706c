"""CTC training of the (Bi)LSTM acoustic model on whole utterances; no alignment needed.

EESEN / Deep Speech 2 in torch: fbank with per-speaker CMVN, padded batches of
utterances sorted by length (little padding is wasted), ``torch.nn.CTCLoss``, Adam or
AdaDelta with gradient-norm clipping, newbob learning-rate halving and early stopping on
a held-out set of training speakers (:mod:`asr.nnet.schedule`), SortaGrad (the first
epoch visits batches shortest first), optional SpecAugment (frequency and time masks) and
speed perturbation (extra copies of the training audio resampled by each factor, Kaldi's
``perturb_data_dir_speed.sh``). Every epoch is checkpointed; a rerun resumes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from asr.datadir import AudioReader, DataDir
from asr.decode.ctc_search import collapse
from asr.decode.config import DecoderConfig
from asr.features import (FeaturePipeline, apply_cmvn, compute_features, load_features, read_feature_config,
                          speaker_cmvn_stats, transform)
from asr.lang.prepare import Lang
from asr.nnet.ctc_model import CtcModel, ctc_hmm_side
from asr.nnet.ctc_net import CtcNet, CtcNetConfig
from asr.nnet.frames import Utterances
from asr.nnet.distributed import all_reduce_sum, barrier, init_process_group, rank_and_world, wrap
from asr.nnet.optim import Optimizer, check_optimizer_options
from asr.nnet.schedule import (Newbob, checkpoint_fingerprint, epoch_generator, load_checkpoint, save_checkpoint,
                                setup_torch)
from asr.nnet.tokens import KINDS, TokenSet
from asr.nnet.train import curriculum_cap, split_speakers
from asr.perturb import change_speed, original_id, perturbed_id
from asr.score import align_words
from asr.utils import AsrError, Config, ensure_dir, from_flat_section, write_text_atomic

log = logging.getLogger(__name__)


@dataclass
class CtcTrainConfig(Config):
    """Training options (recipe ``[ctc]`` section); network shape is in ``net``."""

    net: CtcNetConfig = field(default_factory=CtcNetConfig)
    tokens: str = "phone"  # phone | char
    optimizer: str = "adam"  # sgd | momentum | adadelta | adam (see asr.nnet.optim)
    learning_rate: float = 0.0  # 0: the optimiser's default (adam 1e-3, adadelta 1.0, ...)
    momentum: float = 0.9
    adadelta_rho: float = 0.95
    adadelta_eps: float = 1e-6
    halve_adadelta: bool = False
    weight_decay: float = 0.0
    weight_decay_mode: str = "l2"  # l2 | decoupled
    decay_all: bool = False
    grad_clip: float = 5.0  # max gradient norm
    batch_frames: int = 12000  # padded input frames per batch
    max_epochs: int = 30
    min_epochs: int = 5
    halving_threshold: float = 0.01
    stop_threshold: float = 0.001
    max_halvings: int = 6
    cv_fraction: float = 0.1
    cv_by: str = "speaker"
    sortagrad: bool = True  # epoch 1: shortest batches first
    curriculum_epochs: int = 0  # > 0: a length cap rising over these epochs (only shorter utterances first)
    spec_augment: bool = False
    freq_masks: int = 2
    freq_mask_width: int = 8  # bins, at most
    time_masks: int = 2
    time_mask_width: int = 20  # frames, at most (and at most a fifth of the utterance)
    speed_perturb: list[float] = field(default_factory=list)  # e.g. [0.9, 1.1]: extra copies
    acoustic_scale: float = 1.0  # decoder default (LMWT 1): the LM's weight relative to the log-posteriors
    beam: float = 20.0  # decoder default; log-posteriors at acoustic scale ~1 spread costs wider than GMMs
    # Graph decoding scores: log posterior - prior_scale * log token prior (EESEN). Without it a
    # weak token spike (posterior ~0.5 next to the blank) costs less to drop than the LM's
    # per-word cost: on yesno, 4 of 6 graph errors were such deletions that greedy search got right.
    prior_scale: float = 0.5
    cmvn: bool = True
    norm_vars: bool = False
    cmvn_window: int = 0  # > 0: sliding CMVN over this many frames (Kaldi apply-cmvn-sliding), not per speaker
    delta_order: int = 0  # 40 fbank as they are (EESEN appends deltas: 2)
    device: str = "cpu"
    bf16: bool = False
    seed: int = 0
    threads: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.net, dict):
            self.net = CtcNetConfig.from_dict(self.net)
        if self.tokens not in KINDS:
            raise AsrError(f"tokens must be one of {', '.join(KINDS)}, got {self.tokens!r}")
        check_optimizer_options(self)
        if any(f <= 0 for f in self.speed_perturb):
            raise AsrError("speed_perturb factors must be positive")

    @classmethod
    def from_flat(cls, opts: dict) -> "CtcTrainConfig":
        """Options from one flat TOML section: network keys go to ``net``, the rest here."""
        return from_flat_section(cls, CtcNetConfig, opts)


def speed_perturbed(data: DataDir, utts: list[str], factor: float, feature_cfg, pipeline: FeaturePipeline,
                    desc: str) -> dict[str, np.ndarray]:
    """Features of ``utts`` played ``factor`` times faster (resampled, so pitch moves too, as in
    Kaldi), with CMVN per perturbed speaker."""
    rate = feature_cfg.sample_rate
    raw = {}
    audio = AudioReader(data, rate)
    wanted = set(utts)
    for u in tqdm([u for u in data.utts_by_recording() if u in wanted], desc=desc, unit="utt", leave=False,
                  disable=None):
        samples, _ = audio(u)
        raw[u] = compute_features(change_speed(samples, rate, factor), feature_cfg)
    stats = speaker_cmvn_stats(raw, data.utt2spk) if pipeline.cmvn and not pipeline.cmvn_window else {}
    out = {}
    for u in utts:
        f = apply_cmvn(raw[u], stats[data.utt2spk[u]], pipeline.norm_vars) if stats else raw[u]
        out[perturbed_id(factor, u)] = transform(f, pipeline, cmvn_done=bool(stats)).astype(np.float32)
    return out


def build_utterances(feats: dict[str, np.ndarray], targets: dict[str, list[int]], keys: list[str],
                     subsample: int) -> Utterances:
    """Sorted by length; utterances too short for their transcript (CTC needs an output frame per
    token, plus one between repeats) are dropped with a warning."""
    kept, short = [], []
    for k in keys:
        t = targets[k]
        need = len(t) + sum(a == b for a, b in zip(t, t[1:]))
        (kept if (len(feats[k]) + subsample - 1) // subsample >= max(need, 1) else short).append(k)
    if short:
        log.warning("%d utterance(s) too short for their transcripts are skipped: %s", len(short),
                    " ".join(short[:10]))
    kept.sort(key=lambda k: (len(feats[k]), k))
    return Utterances(kept, [torch.as_tensor(feats[k]) for k in kept],
                      [torch.tensor(targets[k], dtype=torch.int64) for k in kept])


def spec_augment(x: torch.Tensor, lengths: torch.Tensor, cfg: CtcTrainConfig, gen: torch.Generator) -> torch.Tensor:
    """SpecAugment's masks (Park et al. 2019) on a padded (N, T, D) batch: zero (= the CMVN mean)
    ``freq_masks`` bands of up to ``freq_mask_width`` bins and ``time_masks`` spans of up to
    ``time_mask_width`` frames per utterance."""
    x = x.clone()
    N, T, D = x.shape
    for n in range(N):
        for _ in range(cfg.freq_masks):
            w = int(torch.randint(0, cfg.freq_mask_width + 1, (1,), generator=gen))
            f0 = int(torch.randint(0, max(D - w, 0) + 1, (1,), generator=gen))
            x[n, :, f0:f0 + w] = 0
        L = int(lengths[n])
        for _ in range(cfg.time_masks):
            w = int(torch.randint(0, min(cfg.time_mask_width, L // 5) + 1, (1,), generator=gen))
            t0 = int(torch.randint(0, max(L - w, 0) + 1, (1,), generator=gen))
            x[n, t0:t0 + w] = 0
    return x


def token_log_priors(net: CtcNet, data: Utterances, batch_frames: int, floor: float = 1e-8) -> np.ndarray:
    """(V,) log of the mean token posterior over every output frame of ``data`` (floored)."""
    device = next(net.parameters()).device
    net.eval()
    total = torch.zeros(net.num_tokens, dtype=torch.float64)
    with torch.no_grad():
        for idx in data.batches(batch_frames):
            x, lengths, _, _ = data.collate(idx, device)
            logp, out_len = net(x, lengths)
            mask = torch.arange(logp.shape[1])[None] < out_len[:, None]
            total += logp.exp()[mask.to(logp.device)].sum(0).double().cpu()
    p = np.maximum(total.numpy() / max(float(total.sum()), 1e-30), floor)
    return np.log(p / p.sum())


def run_epoch(net: nn.Module, data: Utterances, batches: list[list[int]], cfg: CtcTrainConfig,
              opt: Optimizer | None, gen: torch.Generator, desc: str, world: int = 1,
              rank: int = 0) -> tuple[float, float]:
    """One pass (training when ``opt`` is given): (loss per target token, greedy token error rate).

    Under DDP (``world`` > 1) each rank takes every world-th utterance of each batch
    (:mod:`asr.nnet.distributed`); the figures returned are summed over the ranks.
    """
    device = next(net.parameters()).device
    train = opt is not None
    net.train(train)
    loss_fn = nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
    total, tokens, errors = 0.0, 0, 0
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    for batch in tqdm(batches, desc=desc, unit="batch", leave=False, disable=None if rank == 0 else True):
        idx = batch[rank::world]
        x, lengths, tgt, tgt_len = data.collate(idx, device)
        if train and cfg.spec_augment:
            x = spec_augment(x, lengths, cfg, gen)
        with torch.set_grad_enabled(train), autocast:
            logp, out_len = net(x, lengths)
            # CTCLoss wants (T, N, V); on CPU the targets stay on CPU.
            loss = loss_fn(logp.float().transpose(0, 1), tgt.to(device), out_len.to(device), tgt_len.to(device))
        if train:  # DDP averages over ranks: loss * world / batch = the whole batch's mean
            opt.step(loss * world / len(batch))
        else:
            best = logp.argmax(-1).cpu()
            for n, i in enumerate(idx):
                hyp = [str(t) for t in collapse(best[n, :int(out_len[n])])]
                ref = [str(int(t)) for t in data.targets[i]]
                errors += sum(op != "C" for _, _, op in align_words(ref, hyp))
        total += float(loss.detach())
        tokens += int(tgt_len.sum())
    total, tokens, errors = all_reduce_sum([total, tokens, errors], device, world)
    n = max(tokens, 1)
    return total / n, (errors / n if not train else float("nan"))


def train_ctc(data_dir: str | Path, lang_dir: str | Path, out_dir: str | Path,
              cfg: CtcTrainConfig | None = None) -> CtcModel:
    """Train a CTC model on the features of ``data_dir``; ``lang_dir`` gives the lexicon
    (phone tokens), the words and the graph side."""
    cfg = cfg or CtcTrainConfig()
    data_dir, lang_dir, out_dir = Path(data_dir), Path(lang_dir), Path(out_dir)
    t_start = time.time()
    device = setup_torch(cfg)
    rank, world = rank_and_world()
    if world > 1:
        device = init_process_group(device)
    lang = Lang.load(lang_dir)
    data = DataDir.load(data_dir)
    utts = data.utts()
    tokens = (TokenSet.for_phones(lang.lexicon, lang.silence_phones) if cfg.tokens == "phone"
              else TokenSet.for_chars([data.text[u] for u in utts]))
    targets = {u: tokens.encode(data.text[u], lang.lexicon, u) for u in utts}
    pipeline = FeaturePipeline(cmvn=cfg.cmvn, norm_vars=cfg.norm_vars, cmvn_window=cfg.cmvn_window,
                               delta_order=cfg.delta_order)
    feature_cfg = read_feature_config(data_dir)
    feats = load_features(data_dir, pipeline)
    tr_utts, cv_utts = split_speakers(data, utts, cfg.cv_fraction, cfg.seed, cfg.cv_by)
    tr_keys = list(tr_utts)
    for factor in cfg.speed_perturb:
        if factor == 1.0:
            continue
        extra = speed_perturbed(data, tr_utts, factor, feature_cfg, pipeline, f"speed {factor:g}")
        feats.update(extra)
        for k in extra:
            targets[k] = targets[original_id(k)]
        tr_keys += list(extra)
    s = cfg.net.subsample
    train_set = build_utterances(feats, targets, tr_keys, s)
    cv_set = build_utterances(feats, targets, cv_utts, s) if cv_utts else None
    if not train_set.keys:
        raise AsrError(f"{data_dir}: no utterance is long enough to train on")
    input_dim = train_set.feats[0].shape[1]
    net = CtcNet(cfg.net, input_dim, len(tokens)).to(device)
    opt = Optimizer(net, cfg)
    trainer = wrap(net, device, world)
    train_frames = sum(len(f) for f in train_set.feats)
    log.info("ctc: %d x %d %s%s, stack %d, %d %s tokens, %d parameters; %d train utts (%d frames), %d held-out",
             cfg.net.num_layers, cfg.net.hidden_dim, "bidirectional " if cfg.net.bidirectional else "",
             cfg.net.cell.upper(), s, len(tokens),
             tokens.kind, sum(p.numel() for p in net.parameters()), len(train_set.keys), train_frames,
             len(cv_set.keys) if cv_set else 0)

    ckpt = out_dir / "checkpoint.pt"
    fingerprint = checkpoint_fingerprint(cfg, data=str(data_dir.resolve()), lang=str(lang_dir.resolve()),
                                         utts=len(train_set.keys), world=world)
    schedule = Newbob.from_config(cfg, keep_first=max(cfg.min_epochs, cfg.curriculum_epochs))
    if rank == 0:
        ensure_dir(out_dir)
    barrier(world)
    load_checkpoint(ckpt, fingerprint, net, opt, schedule)
    # Every rank needs a share of every batch: a last batch of one utterance joins the one
    # before (with at least 2 per batch a 2-rank run batches exactly as one process does).
    batches = train_set.batches(cfg.batch_frames, max(2, world))
    lengths = np.array([len(f) for f in train_set.feats])
    cv_batches = cv_set.batches(cfg.batch_frames, max(2, world)) if cv_set else []
    done = False
    while not done and schedule.epoch < cfg.max_epochs:
        epoch = schedule.epoch + 1
        gen = epoch_generator(cfg.seed, epoch)
        opt.set_lr(schedule.lr)
        order = (batches if cfg.sortagrad and epoch == 1
                 else [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()])
        cap = curriculum_cap(lengths, epoch, cfg.curriculum_epochs)
        if cap is not None:  # a growing curriculum: batches of utterances up to the cap
            order = [b for b in order if len(train_set.feats[b[-1]]) <= cap] or order[:1]
        t0 = time.time()
        tr_loss, _ = run_epoch(trainer, train_set, order, cfg, opt, gen, f"epoch {epoch}", world, rank)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.time() - t0
        cv_loss, cv_ter = (run_epoch(net, cv_set, cv_batches, cfg, None, gen, "held-out", world, rank) if cv_set
                           else (tr_loss, float("nan")))
        row = {"epoch": epoch, "lr": schedule.lr, "train_loss": tr_loss, "cv_loss": cv_loss, "cv_ter": cv_ter,
               "seconds": round(seconds, 2), "frames_per_second": round(train_frames / seconds), "ranks": world}
        done = schedule.end_epoch(net, cv_loss, row)
        log.info("epoch %2d: lr %.3g train loss %.4f | held-out loss %.4f token error %.2f%% | %.1f s, %.0f frames/s%s",
                 epoch, row["lr"], tr_loss, cv_loss, 100 * cv_ter, seconds, row["frames_per_second"],
                 "" if row["accepted"] else " (rejected)")
        if rank == 0:
            save_checkpoint(ckpt, fingerprint, net, opt, schedule, schedule.seconds(t_start))
    schedule.restore_best(net)
    log_priors = token_log_priors(net, cv_set or train_set, cfg.batch_frames)
    net.cpu().eval()
    hmm = ctc_hmm_side(lang, tokens)
    model = CtcModel(net=net, tokens=tokens, feature=feature_cfg, pipeline=pipeline,
                     decoder=DecoderConfig(beam=cfg.beam, acoustic_scale=cfg.acoustic_scale, transition_scale=0.0),
                     log_priors=log_priors, prior_scale=cfg.prior_scale, **hmm)
    model.info = {"train_data": str(data_dir), "lang": str(lang_dir),
                  "train_seconds": round(schedule.seconds(t_start), 1),
                  "parameters": sum(p.numel() for p in net.parameters()), "epochs": schedule.epoch,
                  "best_cv_loss": schedule.state["best_cv"], "config": dataclasses.asdict(cfg),
                  "seed": cfg.seed, "threads": torch.get_num_threads(), "ranks": world}
    if rank == 0:
        model.save(out_dir)
        write_text_atomic(out_dir / "train_log.json", json.dumps(schedule.state["history"], indent=1) + "\n")
        ckpt.unlink(missing_ok=True)
    barrier(world)
    log.info("ctc: trained %d epochs in %.1f s; best held-out loss %.4f; model in %s", schedule.epoch,
             schedule.seconds(t_start), schedule.state["best_cv"], out_dir)
    return model
