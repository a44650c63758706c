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
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from asr.datadir import DataDir
from asr.features import FeaturePipeline, load_features, read_feature_config
from asr.hmm.alignments import check_alignment_tree, read_alignments, tree_fingerprint
from asr.model_dir import read_hmm_side, read_meta
from asr.nnet.frames import FrameSet
from asr.nnet.model import DnnHmm, state_log_priors
from asr.nnet.network import AcousticNet, NetConfig
from asr.nnet.schedule import Newbob, epoch_generator, load_checkpoint, save_checkpoint, setup_torch
from asr.perturb import is_perturbed, original_id
from asr.utils import AsrError, Config, ensure_dir, from_flat_section, write_text_atomic

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "momentum", "adadelta", "adam")


@dataclass
class TrainConfig(Config):
    """Training options (recipe ``[dnn]`` section); network shape is in ``net``."""

    net: NetConfig = field(default_factory=NetConfig)
    optimizer: str = "adam"  # sgd | momentum | adadelta | adam
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 256
    max_epochs: int = 20
    min_epochs: int = 3
    halving_threshold: float = 0.01  # relative held-out loss improvement that starts halving
    stop_threshold: float = 0.001  # ... and that ends training once halving
    max_halvings: int = 6
    cv_fraction: float = 0.1  # share of training speakers (or utterances) held out
    cv_by: str = "speaker"  # "speaker": unseen voices; "utterance": when test speakers are training speakers
    curriculum: bool = False  # epoch 1: shortest utterances first
    spec_augment: bool = False  # mask frequency bands of each training window (SpecAugment)
    freq_masks: int = 2
    freq_mask_width: int = 8  # bins, at most
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

    def __post_init__(self) -> None:
        if isinstance(self.net, dict):
            self.net = NetConfig.from_dict(self.net)
        if self.cv_by not in ("speaker", "utterance"):
            raise AsrError(f"cv_by must be 'speaker' or 'utterance', got {self.cv_by!r}")
        if self.optimizer not in OPTIMIZERS:
            raise AsrError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")

    @classmethod
    def from_flat(cls, opts: dict) -> "TrainConfig":
        """Options from one flat TOML section: network keys go to ``net``, the rest here."""
        return from_flat_section(cls, NetConfig, opts)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "momentum":
        return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


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


def frame_order(frames: FrameSet, curriculum: bool, gen: torch.Generator) -> torch.Tensor:
    """Shuffled frame indices; with ``curriculum``, utterances shortest first (frames shuffled
    within utterances of equal length)."""
    perm = torch.randperm(len(frames), generator=gen)
    if not curriculum:
        return perm
    lens = frames.utt_len.cpu()[perm]
    return perm[torch.argsort(lens, stable=True)]


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


def run_epoch(net: AcousticNet, frames: FrameSet, order: torch.Tensor | None, cfg: TrainConfig,
              opt: torch.optim.Optimizer | None, desc: str) -> tuple[float, float]:
    """One pass (training when ``opt`` is given, evaluation otherwise): (mean loss, frame accuracy)."""
    device = frames.feats.device
    context = getattr(net, "module", net).cfg.context  # DDP wraps the network
    train = opt is not None
    net.train(train)
    order = order if order is not None else torch.arange(len(frames))
    order = order.to(device)
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    bs = cfg.batch_size if train else max(cfg.batch_size, 4096)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    for start in tqdm(range(0, len(order), bs), desc=desc, unit="batch", leave=False, disable=None):
        idx = order[start:start + bs]
        x, y = frames.batch(idx, context)
        if train and cfg.spec_augment:
            x = mask_frequencies(x, frames.feats.shape[1], cfg.freq_masks, cfg.freq_mask_width)
        with torch.set_grad_enabled(train), autocast:
            logits = net(x)
            loss = loss_fn(logits.float(), y)
        if train:
            opt.zero_grad(set_to_none=True)
            (loss / len(idx)).backward()
            opt.step()
        total_loss += loss.detach().double()
        correct += (logits.argmax(-1) == y).sum()
    n = max(len(order), 1)
    return float(total_loss) / n, float(correct) / n


def _fmllr_features(data: DataDir, gmm_dir: Path, ali_dir: Path) -> tuple[object, dict[str, np.ndarray]]:
    """The SAT GMM of ``gmm_dir`` and the training frames in its adapted space: its pipeline
    (CMVN, splicing, LDA+MLLT), then each speaker's fMLLR transform from the alignment dir
    (``asr align`` with a SAT model writes them, as Kaldi's align_fmllr.sh writes trans.*)."""
    from asr.acoustic import load_model
    from asr.gmm.fmllr import apply_fmllr
    from asr.hmm.alignments import FMLLR_TRANSFORMS, load_transforms

    gmm = load_model(gmm_dir)
    if not getattr(gmm, "speaker_adaptive", False):
        raise AsrError(f"{gmm_dir}: fmllr input needs a speaker-adaptive (SAT) GMM such as tri3")
    if not (ali_dir / FMLLR_TRANSFORMS).exists():
        raise AsrError(f"{ali_dir}: no {FMLLR_TRANSFORMS}; align the data with {gmm_dir} (asr align --data) first")
    transforms = load_transforms(ali_dir / FMLLR_TRANSFORMS)
    feats = load_features(data.path, gmm.pipeline)
    missing = sorted({data.utt2spk[u] for u in feats} - set(transforms))
    if missing:
        raise AsrError(f"{ali_dir / FMLLR_TRANSFORMS}: no transform for speaker(s) {', '.join(missing[:5])} of {data.path}")
    return gmm, {u: apply_fmllr(x, transforms[data.utt2spk[u]]) for u, x in feats.items()}


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
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    meta = read_meta(gmm_dir)  # a GMM, or a DNN when retraining on its realignment
    with np.load(gmm_dir / "model.npz") as z:
        hmm = read_hmm_side(gmm_dir, meta, z["trans_log_probs"])
    trans, ctx = hmm["trans"], hmm["ctx"]
    check_alignment_tree(ali_dir, tree_fingerprint(trans, ctx, hmm["phones"]), gmm_dir)
    data = DataDir.load(data_dir)
    adapt_gmm = None
    if cfg.fmllr:
        adapt_gmm, feats = _fmllr_features(data, gmm_dir, ali_dir)
        pipeline = adapt_gmm.pipeline
    else:
        pipeline = FeaturePipeline(cmvn=cfg.cmvn, norm_vars=cfg.norm_vars, cmvn_window=cfg.cmvn_window,
                               delta_order=cfg.delta_order)
        feats = load_features(data_dir, pipeline)
    targets = read_alignments(ali_dir, "pdf")
    utts = sorted(u for u in data.utts() if u in targets and u in feats)
    if not utts:
        raise AsrError(f"no utterance of {data_dir} has an alignment in {ali_dir}")
    num_pdfs = ctx.num_pdfs
    bad = [u for u in utts if targets[u].max() >= num_pdfs]
    if bad:
        raise AsrError(f"{ali_dir}: alignment of {bad[0]} has pdf ids beyond the {num_pdfs} of {gmm_dir}")
    tr_utts, cv_utts = split_speakers(data, utts, cfg.cv_fraction, cfg.seed, cfg.cv_by)
    train_set = FrameSet.build(feats, targets, tr_utts).to(device)
    cv_set = FrameSet.build(feats, targets, cv_utts).to(device) if cv_utts else None
    counts = np.bincount(np.concatenate([targets[u] for u in utts]), minlength=num_pdfs)
    log_priors = state_log_priors(counts, cfg.prior_floor)
    input_dim = train_set.feats.shape[1]
    net = AcousticNet(cfg.net, input_dim, num_pdfs).to(device)
    opt = make_optimizer(net.parameters(), cfg)
    trainer: nn.Module = net
    if world > 1:
        trainer = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    log.info("dnn: %s %dx%d %s, input %d x %d frames, %d pdfs, %d parameters; %d train frames (%d utts), "
             "%d held-out frames (%d utts)", cfg.net.kind, cfg.net.num_layers, cfg.net.hidden_dim, cfg.net.activation,
             input_dim, 2 * cfg.net.context + 1, num_pdfs, sum(p.numel() for p in net.parameters()),
             len(train_set), len(tr_utts), len(cv_set) if cv_set else 0, len(cv_utts))

    ckpt = out_dir / "checkpoint.pt"
    fingerprint = json.dumps({"config": dataclasses.asdict(cfg), "data": str(data_dir.resolve()),
                              "ali": str(ali_dir.resolve()), "frames": len(train_set)}, sort_keys=True)
    schedule = Newbob.from_config(cfg)
    ensure_dir(out_dir)
    load_checkpoint(ckpt, fingerprint, net, opt, schedule)
    done = False
    while not done and schedule.epoch < cfg.max_epochs:
        epoch = schedule.epoch + 1
        gen = epoch_generator(cfg.seed, epoch)
        for g in opt.param_groups:
            g["lr"] = schedule.lr
        t0 = time.time()
        order = frame_order(train_set, cfg.curriculum and epoch == 1, gen)[rank::world]
        tr_loss, tr_acc = run_epoch(trainer, train_set, order, cfg, opt, f"epoch {epoch}")
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.time() - t0
        cv_loss, cv_acc = run_epoch(net, cv_set, None, cfg, None, "held-out") if cv_set else (tr_loss, tr_acc)
        row = {"epoch": epoch, "lr": schedule.lr, "train_loss": tr_loss, "train_acc": tr_acc, "cv_loss": cv_loss,
               "cv_acc": cv_acc, "seconds": round(seconds, 2), "frames_per_second": round(len(train_set) / seconds),
               "ranks": world}
        done = schedule.end_epoch(net, cv_loss, row)
        log.info("epoch %2d: lr %.3g train loss %.4f acc %.3f | held-out loss %.4f acc %.3f | %.1f s, %.0f frames/s%s",
                 epoch, row["lr"], tr_loss, tr_acc, cv_loss, cv_acc, seconds, row["frames_per_second"],
                 "" if row["accepted"] else " (rejected)")
        if rank == 0:
            save_checkpoint(ckpt, fingerprint, net, opt, schedule)
    schedule.restore_best(net)
    state = schedule.state
    net.cpu().eval()
    model = DnnHmm(hmm["phones"], hmm["words"], hmm["lexicon"], trans, ctx, net, log_priors,
                   read_feature_config(data_dir), pipeline, hmm["silence_phone"],
                   dataclasses.replace(hmm["decoder"], acoustic_scale=cfg.acoustic_scale), cfg.prior_scale,
                   adapt_gmm=adapt_gmm)
    model.info = {"train_data": str(data_dir), "ali": str(ali_dir), "gmm": str(gmm_dir),
                  "train_seconds": round(time.time() - t_start, 1), "num_pdfs": num_pdfs,
                  "parameters": sum(p.numel() for p in net.parameters()), "epochs": state["epoch"],
                  "best_cv_loss": state["best_cv"], "config": dataclasses.asdict(cfg),
                  "seed": cfg.seed, "threads": torch.get_num_threads()}
    if rank == 0:
        model.save(out_dir)
        write_text_atomic(out_dir / "train_log.json", json.dumps(state["history"], indent=1) + "\n")
        # Kaldi's valid_uttlist: utterances the network never trained on, a dev set for
        # tuning decoding (`asr subset-data DATA DEV --utt-list OUT/heldout_utts`).
        write_text_atomic(out_dir / "heldout_utts", "".join(f"{u}\n" for u in cv_utts))
        ckpt.unlink(missing_ok=True)
    if world > 1:
        torch.distributed.barrier()
    log.info("dnn: trained %d epochs in %.1f s; best held-out loss %.4f; model in %s", state["epoch"],
             time.time() - t_start, state["best_cv"], out_dir)
    return model
