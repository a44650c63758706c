"""Cross-entropy training of the hybrid acoustic network on aligned tied states.

Kaldi nnet1's recipe, in torch: frames from a GMM alignment (features with per-speaker
CMVN, spliced +-k), a held-out set of whole training *speakers* for cross-validation,
shuffled minibatches of frames, and "newbob" learning-rate control: after each epoch the
held-out loss decides - an epoch that makes it worse is rejected (weights restored),
once the relative improvement drops below ``halving_threshold`` the learning rate is
halved every epoch, and training stops when it drops below ``stop_threshold`` while
halving, after ``max_halvings`` halvings, or at ``max_epochs``. Optional curriculum:
the first epoch visits utterances shortest first. Every epoch is checkpointed; an
interrupted run resumes from its last epoch.

Under ``torchrun`` (WORLD_SIZE > 1) the network is wrapped in DistributedDataParallel
(NCCL on GPUs, gloo on CPUs): every rank walks the same shuffled frame order and takes
its 1/world share of each epoch, gradients are averaged, and rank 0 alone writes
checkpoints and the model dir.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from asr.datadir import DataDir
from asr.features import (FeatureArchive, FeaturePipeline, aligned_features, read_feature_config,
                          training_features)
from asr.hmm.alignments import check_alignment_tree, read_alignments, tree_fingerprint
from asr.model_dir import read_hmm_side, read_meta
from asr.nnet.frames import FrameSet, FrameStream, StreamOrder, Utterances
from asr.nnet.model import DnnHmm, build_network, state_log_priors
from asr.nnet.network import AcousticNet, NetConfig
from asr.nnet.distributed import (all_reduce_sum, average_buffers, barrier, init_process_group, minibatch_bounds,
                                  rank_and_world, wrap)
from asr.nnet.optim import Optimizer, check_optimizer_options
from asr.nnet.pretrain import PRETRAINERS, pretrain_layers
from asr.nnet.schedule import (Newbob, checkpoint_fingerprint, epoch_generator, load_checkpoint, save_checkpoint,
                                setup_torch)
from asr.perturb import is_perturbed, original_id
from asr.utils import AsrError, Config, ensure_dir, from_flat_section, write_text_atomic

log = logging.getLogger(__name__)

@dataclass
class TrainConfig(Config):
    """Training options (recipe ``[dnn]`` section); network shape is in ``net``.

    Optimiser fields are defined in :mod:`asr.nnet.optim` (``learning_rate = 0``: the
    optimiser's textbook default, 1.0 for AdaDelta).
    """

    net: NetConfig = field(default_factory=NetConfig)
    optimizer: str = "adam"  # sgd | momentum | adadelta | adam
    learning_rate: float = 0.0  # 0: sgd 0.1, momentum 0.01, adadelta 1.0, adam 1e-3
    momentum: float = 0.9
    adadelta_rho: float = 0.95
    adadelta_eps: float = 1e-6
    halve_adadelta: bool = False  # let newbob halve AdaDelta's multiplier too
    weight_decay: float = 0.0
    weight_decay_mode: str = "l2"  # l2 (added to the loss) | decoupled (AdamW-style shrink)
    decay_all: bool = False  # also decay biases and batch-norm parameters
    grad_clip: float = 0.0  # max gradient norm; 0 = no clipping
    batch_size: int = 256
    max_epochs: int = 20
    min_epochs: int = 3
    halving_threshold: float = 0.01  # relative held-out loss improvement that starts halving
    stop_threshold: float = 0.001  # ... and that ends training once halving
    max_halvings: int = 6
    cv_fraction: float = 0.1  # share of training speakers (or utterances) held out
    cv_by: str = "speaker"  # "speaker": unseen voices; "utterance": when test speakers are training speakers
    curriculum: bool = False  # epoch 1: shortest utterances first
    curriculum_epochs: int = 0  # > 0: a length cap that rises over these epochs (only shorter utterances first)
    bootstrap: bool = False  # bagging: train on a bootstrap sample of the training utterances (seeded)
    snapshots: int = 0  # > 0: also keep the last N accepted epochs' models (a snapshot ensemble)
    pretrain: str = "none"  # none | autoencoder | rbm: greedy layer-wise, then cross-entropy fine-tuning
    pretrain_epochs: int = 1  # per layer
    pretrain_learning_rate: float = 0.0  # 0: autoencoder 1e-3 (Adam), rbm 0.01 (CD-1 with momentum)
    spec_augment: bool = False  # mask frequency bands of each training window (SpecAugment)
    freq_masks: int = 2
    freq_mask_width: int = 8  # bins, at most
    sequence_frames: int = 2000  # recurrent networks: padded frames per batch of whole utterances
    prior_floor: float = 1e-8
    prior_scale: float = 1.0
    acoustic_scale: float = 0.1
    cmvn: bool = True
    norm_vars: bool = False
    cmvn_window: int = 0  # > 0: sliding CMVN over this many frames (Kaldi apply-cmvn-sliding), not per speaker
    delta_order: int = 0
    fmllr: bool = False  # input: the SAT GMM's fMLLR-adapted frames (transforms from the alignment dir)
    device: str = "cpu"
    bf16: bool = False  # bf16 autocast (GPU)
    seed: int = 0
    threads: int = 0  # CPU threads for torch (0: torch's default)
    # > 0: frames are read from the feature archive in chunks of about this many (utterances
    # shuffled across chunks, frames within one) instead of all held in memory: a corpus
    # larger than RAM trains. Feed-forward networks only.
    chunk_frames: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.net, dict):
            self.net = NetConfig.from_dict(self.net)
        if self.cv_by not in ("speaker", "utterance"):
            raise AsrError(f"cv_by must be 'speaker' or 'utterance', got {self.cv_by!r}")
        check_optimizer_options(self)
        if self.pretrain not in PRETRAINERS:
            raise AsrError(f"pretrain must be one of {', '.join(PRETRAINERS)}, got {self.pretrain!r}")
        if self.pretrain != "none" and self.net.kind != "dnn":
            raise AsrError("layer-wise pretraining is for the feed-forward DNN (kind = \"dnn\")")
        if self.chunk_frames > 0 and (self.net.kind == "rnn" or self.pretrain != "none"):
            raise AsrError("chunk_frames (streamed frames) is for feed-forward training without pretraining")
        if self.batch_size < 2 or self.curriculum_epochs < 0 or self.snapshots < 0:
            raise AsrError("batch_size must be >= 2; curriculum_epochs and snapshots >= 0")

    @classmethod
    def from_flat(cls, opts: dict) -> "TrainConfig":
        """Options from one flat TOML section: network keys go to ``net``, the rest here."""
        return from_flat_section(cls, NetConfig, opts)


def make_optimizer(net: nn.Module, cfg: TrainConfig) -> Optimizer:
    return Optimizer(net, cfg)


def split_speakers(data: DataDir, utts: list[str], fraction: float, seed: int,
                   by: str = "speaker") -> tuple[list[str], list[str]]:
    """(train, held-out) utterances; held-out = whole speakers, about ``fraction`` of them
    (``by="utterance"``: every round(1/fraction)-th utterance instead).

    Speed-perturbed copies (``sp0.9-utt``, see :mod:`asr.perturb`) go with their original:
    a held-out speaker's copies are left out of both sets (its voice must stay unseen, and
    the held-out loss is measured on real audio), so the held-out set is the one the same
    seed picks without perturbation.
    """
    originals = [u for u in utts if not is_perturbed(u)] or utts
    speakers = sorted({original_id(data.utt2spk[u]) for u in originals})
    if fraction <= 0 or len(speakers) < 2 or by == "utterance":
        # One speaker (yesno), or test speakers that are training speakers (FSDD).
        cv = set(originals[::max(1, round(1 / fraction))]) if fraction > 0 else set()
        held = {original_id(u) for u in cv}
        left_out = {u for u in utts if original_id(u) in held}
    else:
        rng = np.random.default_rng(seed)
        n = max(1, round(fraction * len(speakers)))
        cv_spk = set(rng.choice(speakers, size=n, replace=False).tolist())
        left_out = {u for u in utts if original_id(data.utt2spk[u]) in cv_spk}
        cv = {u for u in left_out if not is_perturbed(u)} or left_out
    return [u for u in utts if u not in left_out], [u for u in utts if u in cv]


def frame_order(frames: FrameSet, curriculum: bool, gen: torch.Generator, length_cap: int | None = None
                ) -> torch.Tensor:
    """Shuffled frame indices; with ``curriculum``, utterances shortest first (frames shuffled
    within utterances of equal length); with ``length_cap``, only frames of utterances at most
    that long (a growing curriculum's early epochs)."""
    perm = torch.randperm(len(frames), generator=gen)
    lens = frames.utt_len.cpu()[perm]
    if length_cap is not None:
        keep = lens <= length_cap
        perm, lens = perm[keep], lens[keep]
    if not curriculum:
        return perm
    return perm[torch.argsort(lens, stable=True)]


def curriculum_cap(lengths: np.ndarray, epoch: int, epochs: int) -> int | None:
    """The growing curriculum's length cap at ``epoch`` (1-based): it rises linearly from the
    shortest utterance to the longest over ``epochs`` epochs; None once every length is allowed."""
    if epochs <= 0 or epoch >= epochs or len(lengths) == 0:
        return None
    lo, hi = int(lengths.min()), int(lengths.max())
    return int(lo + (hi - lo) * epoch / epochs)


def mask_frequencies(x: torch.Tensor, dim: int, masks: int, width: int) -> torch.Tensor:
    """SpecAugment's frequency masks on spliced windows: (B, (2k+1)*dim) with, per window,
    ``masks`` bands of up to ``width`` bins zeroed (the CMVN mean) in every frame."""
    B = x.shape[0]
    f = torch.arange(dim, device=x.device)[None]
    keep = torch.ones(B, dim, dtype=torch.bool, device=x.device)
    for _ in range(masks):
        w = torch.randint(0, width + 1, (B, 1), device=x.device)
        f0 = (torch.rand(B, 1, device=x.device) * (dim - w + 1)).long()
        keep &= ~((f >= f0) & (f < f0 + w))
    return (x.view(B, -1, dim) * keep[:, None, :]).view(B, -1)


def run_epoch(net: nn.Module, frames: FrameSet | FrameStream, order: torch.Tensor | StreamOrder | None,
              cfg: TrainConfig, opt: Optimizer | None, desc: str, world: int = 1, rank: int = 0) -> tuple[float, float]:
    """One pass (training when ``opt`` is given, evaluation otherwise): (mean loss, frame accuracy).

    ``order`` is the global frame order (a :class:`StreamOrder` of chunks when the frames are
    streamed; None: as stored); under DDP (``world`` > 1) each rank takes its share of every
    minibatch (:mod:`asr.nnet.distributed`) and the returned figures are over all ranks.
    """
    parts = frames.parts(order) if isinstance(frames, FrameStream) else [(frames, order)]
    device = frames.device if isinstance(frames, FrameStream) else frames.feats.device
    train = opt is not None
    net.train(train)
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    n = 0
    with tqdm(desc=desc, total=len(frames), unit="frame", unit_scale=True, leave=False,
              disable=None if rank == 0 else True) as progress:
        for part, part_order in parts:
            loss_sum, right, count = _frame_pass(net, part, part_order, cfg, opt, world, rank, progress)
            total_loss += loss_sum
            correct += right
            n += count
    loss_sum, right = all_reduce_sum([total_loss, correct], device, world)
    n = max(n, 1)
    return loss_sum / n, right / n


def _frame_pass(net: nn.Module, frames: FrameSet, order: torch.Tensor | None, cfg: TrainConfig,
                opt: Optimizer | None, world: int, rank: int, progress: tqdm) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Minibatches over frames in memory: this rank's (loss sum, correct frames) and the
    number of frames of all ranks."""
    device = frames.feats.device
    context = getattr(net, "module", net).cfg.context  # DDP wraps the network
    train = opt is not None
    order = order if order is not None else torch.arange(len(frames))
    order = order.to(device)
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    bs = cfg.batch_size if train else max(cfg.batch_size, 4096)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    # A last minibatch under a quarter of a batch joins the one before: the same batches for
    # any number of ranks (as long as each rank gets its 2 frames for batch norm).
    for start, end in minibatch_bounds(len(order), bs, max(2 * world, bs // 4)):
        idx = order[start + rank:end:world]
        x, y = frames.batch(idx, context)
        if train and cfg.spec_augment:
            x = mask_frequencies(x, frames.feats.shape[1], cfg.freq_masks, cfg.freq_mask_width)
        with torch.set_grad_enabled(train), autocast:
            logits = net(x)
            loss = loss_fn(logits.float(), y)
        if train:
            # DDP averages gradients over ranks: loss * world / B makes that the whole batch's mean.
            opt.step(loss * world / (end - start))
        total_loss += loss.detach().double()
        correct += (logits.argmax(-1) == y).sum()
        progress.update(end - start)
    return total_loss, correct, len(order)


def _fmllr_features(data: DataDir, gmm_dir: Path, ali_dir: Path, streamed: bool
                    ) -> tuple[object, Mapping[str, np.ndarray]]:
    """The SAT GMM of ``gmm_dir`` and the training frames in its adapted space: its pipeline
    (CMVN, splicing, LDA+MLLT), then each speaker's fMLLR transform from the alignment dir
    (``asr align`` with a SAT model writes them, as Kaldi's align_fmllr.sh writes trans.*);
    ``streamed``: read from the archive on demand instead of loaded."""
    from asr.acoustic import load_model
    from asr.gmm.fmllr import apply_fmllr
    from asr.hmm.alignments import FMLLR_TRANSFORMS, load_transforms

    gmm = load_model(gmm_dir)
    if not getattr(gmm, "speaker_adaptive", False):
        raise AsrError(f"{gmm_dir}: fmllr input needs a speaker-adaptive (SAT) GMM such as tri3")
    if not (ali_dir / FMLLR_TRANSFORMS).exists():
        raise AsrError(f"{ali_dir}: no {FMLLR_TRANSFORMS}; align the data with {gmm_dir} (asr align --data) first")
    transforms = load_transforms(ali_dir / FMLLR_TRANSFORMS)
    missing = sorted({data.utt2spk[u] for u in data.utts()} - set(transforms))
    if missing:
        raise AsrError(f"{ali_dir / FMLLR_TRANSFORMS}: no transform for speaker(s) {', '.join(missing[:5])} of {data.path}")
    feats = FeatureArchive(data.path, gmm.pipeline, post=lambda u, x: apply_fmllr(x, transforms[data.utt2spk[u]]))
    return gmm, feats if streamed else {u: feats[u] for u in feats}


def run_sequence_epoch(net: nn.Module, data: Utterances, batches: list[list[int]], cfg: TrainConfig,
                       opt: Optimizer | None, desc: str, world: int = 1, rank: int = 0) -> tuple[float, float]:
    """:func:`run_epoch` for a recurrent hybrid: batches of whole utterances, cross-entropy
    over every valid frame. Under DDP each rank takes every world-th utterance of a batch."""
    device = next(net.parameters()).device
    train = opt is not None
    net.train(train)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total, right, frames = 0.0, 0, 0
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    for batch in tqdm(batches, desc=desc, unit="batch", leave=False, disable=None if rank == 0 else True):
        n_batch = sum(len(data.feats[i]) for i in batch)
        x, lengths, y, _ = data.collate(batch[rank::world], device)
        mask = (torch.arange(x.shape[1])[None] < lengths[:, None]).to(device)
        if train and cfg.spec_augment:
            x = mask_frequencies(x.reshape(-1, x.shape[-1]), x.shape[-1], cfg.freq_masks,
                                 cfg.freq_mask_width).view_as(x)
        with torch.set_grad_enabled(train), autocast:
            logits = net(x, lengths)[mask]  # (frames, P), utterance by utterance as y
            loss = loss_fn(logits.float(), y.to(device))
        if train:
            opt.step(loss * world / n_batch)
        total += float(loss.detach())
        right += int((logits.argmax(-1) == y.to(device)).sum())
        frames += len(y)
    total, right, frames = all_reduce_sum([total, right, frames], device, world)
    return total / max(frames, 1), right / max(frames, 1)


def hybrid_utterances(feats: dict[str, np.ndarray], targets: dict[str, np.ndarray], utts: list[str]) -> Utterances:
    """Whole utterances with their per-frame pdf targets, sorted by length."""
    x = {u: aligned_features(feats, u, len(targets[u])) for u in utts}
    keys = sorted(utts, key=lambda u: (len(x[u]), u))
    return Utterances(keys, [torch.as_tensor(x[u], dtype=torch.float32) for u in keys],
                      [torch.as_tensor(targets[u], dtype=torch.int64) for u in keys])


def _epoch_batches(train_set, cfg: TrainConfig, epoch: int, gen: torch.Generator, world: int):
    """This epoch's order: frames (window nets) or batches of utterances (recurrent nets),
    shuffled, with the curriculum's ordering and length cap applied."""
    sorted_first = cfg.curriculum and epoch == 1
    if isinstance(train_set, FrameStream):
        return train_set.order(gen, sorted_first, curriculum_cap(train_set.lengths, epoch, cfg.curriculum_epochs))
    if isinstance(train_set, FrameSet):
        lengths = train_set.utt_len.cpu().numpy()
        return frame_order(train_set, sorted_first, gen, curriculum_cap(lengths, epoch, cfg.curriculum_epochs))
    lengths = np.array([len(f) for f in train_set.feats])
    cap = curriculum_cap(lengths, epoch, cfg.curriculum_epochs)
    batches = [b for b in train_set.batches(cfg.sequence_frames, world)
               if cap is None or len(train_set.feats[b[-1]]) <= cap] or train_set.batches(cfg.sequence_frames, world)[:1]
    if sorted_first:
        return batches
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def train_dnn(data_dir: str | Path, ali_dir: str | Path, gmm_dir: str | Path, out_dir: str | Path,
              cfg: TrainConfig | None = None) -> DnnHmm:
    """Train a hybrid model on ``data_dir`` features and the tied-state alignment in ``ali_dir``.

    ``gmm_dir`` is the GMM system that produced the alignment: its tree, transitions and
    lexicon are the hybrid model's, so its decoding graph fits the DNN too.
    """
    cfg = cfg or TrainConfig()
    data_dir, ali_dir, gmm_dir, out_dir = Path(data_dir), Path(ali_dir), Path(gmm_dir), Path(out_dir)
    t_start = time.time()
    device = setup_torch(cfg)
    rank, world = rank_and_world()
    if world > 1:
        device = init_process_group(device)
    meta = read_meta(gmm_dir)  # a GMM, or a DNN when retraining on its realignment
    with np.load(gmm_dir / "model.npz") as z:
        hmm = read_hmm_side(gmm_dir, meta, z["trans_log_probs"])
    trans, ctx = hmm["trans"], hmm["ctx"]
    check_alignment_tree(ali_dir, tree_fingerprint(trans, ctx, hmm["phones"]), gmm_dir)
    data = DataDir.load(data_dir)
    adapt_gmm = None
    if cfg.fmllr:
        adapt_gmm, feats = _fmllr_features(data, gmm_dir, ali_dir, cfg.chunk_frames > 0)
        pipeline = adapt_gmm.pipeline
    else:
        pipeline = FeaturePipeline(cmvn=cfg.cmvn, norm_vars=cfg.norm_vars, cmvn_window=cfg.cmvn_window,
                                   delta_order=cfg.delta_order)
        feats = training_features(data_dir, pipeline, cfg.chunk_frames)
    targets = read_alignments(ali_dir, "pdf", np.int32 if cfg.chunk_frames > 0 else np.int64)
    utts = sorted(u for u in data.utts() if u in targets and u in feats)
    if not utts:
        raise AsrError(f"no utterance of {data_dir} has an alignment in {ali_dir}")
    num_pdfs = ctx.num_pdfs
    bad = [u for u in utts if targets[u].max() >= num_pdfs]
    if bad:
        raise AsrError(f"{ali_dir}: alignment of {bad[0]} has pdf ids beyond the {num_pdfs} of {gmm_dir}")
    tr_utts, cv_utts = split_speakers(data, utts, cfg.cv_fraction, cfg.seed, cfg.cv_by)
    if cfg.bootstrap:  # bagging: as many utterances as there are, drawn with replacement
        rng = np.random.default_rng(10_000 + cfg.seed)
        tr_utts = sorted(rng.choice(tr_utts, size=len(tr_utts), replace=True).tolist())
    sequence = cfg.net.kind == "rnn"
    if sequence:
        train_set = hybrid_utterances(feats, targets, tr_utts)
        cv_set = hybrid_utterances(feats, targets, cv_utts) if cv_utts else None
        train_frames = sum(len(f) for f in train_set.feats)
    elif cfg.chunk_frames > 0:
        train_set = FrameStream(feats, targets, tr_utts, cfg.chunk_frames, device)
        cv_set = FrameStream(feats, targets, cv_utts, cfg.chunk_frames, device) if cv_utts else None
        train_frames = len(train_set)
    else:
        train_set = FrameSet.build(feats, targets, tr_utts).to(device)
        cv_set = FrameSet.build(feats, targets, cv_utts).to(device) if cv_utts else None
        train_frames = len(train_set)
    counts = np.zeros(num_pdfs, dtype=np.int64)  # per utterance: no second copy of a large alignment
    for u in utts:
        counts += np.bincount(targets[u], minlength=num_pdfs)
    log_priors = state_log_priors(counts, cfg.prior_floor)
    input_dim = feats[utts[0]].shape[1]
    net = build_network(cfg.net, input_dim, num_pdfs).to(device)
    opt = make_optimizer(net, cfg)
    trainer = wrap(net, device, world)
    log.info("dnn: %s %dx%d %s, input %d x %d frames, %d pdfs, %d parameters; %d train frames (%d utts), "
             "%d held-out utts", cfg.net.kind, cfg.net.num_layers, cfg.net.hidden_dim,
             cfg.net.cell if sequence else cfg.net.activation, input_dim, 2 * cfg.net.context + 1, num_pdfs,
             sum(p.numel() for p in net.parameters()), train_frames, len(tr_utts), len(cv_utts))

    ckpt = out_dir / "checkpoint.pt"
    fingerprint = checkpoint_fingerprint(cfg, data=str(data_dir.resolve()), ali=str(ali_dir.resolve()),
                                         frames=train_frames, world=world)
    schedule = Newbob.from_config(cfg, keep_first=cfg.curriculum_epochs)
    if rank == 0:
        ensure_dir(out_dir)
    barrier(world)
    resumed = load_checkpoint(ckpt, fingerprint, net, opt, schedule)
    schedule.state.setdefault("snapshots", [])
    if cfg.pretrain != "none" and not resumed:
        schedule.state["pretrain"] = pretrain_layers(net, train_set, cfg, epoch_generator(cfg.seed, 0))
        average_buffers(net, world)
    epoch_fn = run_sequence_epoch if sequence else run_epoch
    done = False
    while not done and schedule.epoch < cfg.max_epochs:
        epoch = schedule.epoch + 1
        gen = epoch_generator(cfg.seed, epoch)
        opt.set_lr(schedule.lr)
        t0 = time.time()
        order = _epoch_batches(train_set, cfg, epoch, gen, world)
        tr_loss, tr_acc = epoch_fn(trainer, train_set, order, cfg, opt, f"epoch {epoch}", world, rank)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.time() - t0
        average_buffers(net, world)  # batch-norm statistics: one set for every replica
        if cv_set is None:
            cv_loss, cv_acc = tr_loss, tr_acc
        elif sequence:
            cv_loss, cv_acc = run_sequence_epoch(net, cv_set, cv_set.batches(cfg.sequence_frames, world), cfg, None,
                                                 "held-out", world, rank)
        else:
            cv_loss, cv_acc = run_epoch(net, cv_set, None, cfg, None, "held-out", world, rank)
        row = {"epoch": epoch, "lr": schedule.lr, "train_loss": tr_loss, "train_acc": tr_acc, "cv_loss": cv_loss,
               "cv_acc": cv_acc, "seconds": round(seconds, 2), "frames_per_second": round(train_frames / seconds),
               "ranks": world}
        done = schedule.end_epoch(net, cv_loss, row)
        if cfg.snapshots and row["accepted"]:
            snaps = schedule.state["snapshots"]
            snaps.append([epoch, {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}])
            del snaps[:-cfg.snapshots]
        log.info("epoch %2d: lr %.3g train loss %.4f acc %.3f | held-out loss %.4f acc %.3f | %.1f s, %.0f frames/s%s",
                 epoch, row["lr"], tr_loss, tr_acc, cv_loss, cv_acc, seconds, row["frames_per_second"],
                 "" if row["accepted"] else " (rejected)")
        if rank == 0:
            save_checkpoint(ckpt, fingerprint, net, opt, schedule, schedule.seconds(t_start))
    schedule.restore_best(net)
    state = schedule.state
    net.cpu().eval()
    model = DnnHmm(hmm["phones"], hmm["words"], hmm["lexicon"], trans, ctx, net, log_priors,
                   read_feature_config(data_dir), pipeline, hmm["silence_phone"],
                   dataclasses.replace(hmm["decoder"], acoustic_scale=cfg.acoustic_scale), cfg.prior_scale,
                   adapt_gmm=adapt_gmm)
    model.info = {"train_data": str(data_dir), "ali": str(ali_dir), "gmm": str(gmm_dir),
                  "train_seconds": round(schedule.seconds(t_start), 1), "num_pdfs": num_pdfs,
                  "parameters": sum(p.numel() for p in net.parameters()), "epochs": state["epoch"],
                  "best_cv_loss": state["best_cv"], "config": dataclasses.asdict(cfg),
                  "seed": cfg.seed, "threads": torch.get_num_threads(), "ranks": world}
    if rank == 0:
        model.save(out_dir)
        _write_snapshots(model, state["snapshots"], out_dir)
        write_text_atomic(out_dir / "train_log.json", json.dumps(state["history"], indent=1) + "\n")
        if state.get("pretrain"):
            write_text_atomic(out_dir / "pretrain_log.json", json.dumps(state["pretrain"], indent=1) + "\n")
        # Kaldi's valid_uttlist: utterances the network never trained on, a dev set for
        # tuning decoding (`asr subset-data DATA DEV --utt-list OUT/heldout_utts`).
        write_text_atomic(out_dir / "heldout_utts", "".join(f"{u}\n" for u in cv_utts))
        ckpt.unlink(missing_ok=True)
    barrier(world)
    log.info("dnn: trained %d epochs in %.1f s; best held-out loss %.4f; model in %s", state["epoch"],
             schedule.seconds(t_start), state["best_cv"], out_dir)
    return model


SNAPSHOT_DIR = "snapshots"


def _write_snapshots(model: DnnHmm, snapshots: list, out_dir: Path) -> None:
    """Each kept epoch's network as a model dir ``snapshots/epochNN`` (decode them together as
    an ensemble: ``asr decode DIR1,DIR2,...``)."""
    if not snapshots:
        return
    import copy

    best = copy.deepcopy(model.net.state_dict())
    for epoch, weights in snapshots:
        model.net.load_state_dict(weights)
        snap = out_dir / SNAPSHOT_DIR / f"epoch{epoch:02d}"
        model.info = {**model.info, "snapshot_epoch": epoch}
        model.save(snap)
    model.net.load_state_dict(best)
    model.info = {k: v for k, v in model.info.items() if k != "snapshot_epoch"}
