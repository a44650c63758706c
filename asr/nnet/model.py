"""A hybrid DNN-HMM: network posteriors turned into scaled likelihoods for the HMM decoder.

    log p(x | s) + const = log P(s | x) - log P(s)      (Bayes; p(x) is the same for all s)

so the decoder's acoustic score is ``log_softmax(net(x)) - prior_scale * log prior``,
with the state priors counted from the training alignment (floored so no state has zero
prior). Everything else (tree, transitions, lexicon, graph) is the GMM system's whose
alignment the network was trained on, so the same graph and decoder serve both.

Model dir: model.json (type "dnn", network config, features, topology, tree, decoder
defaults), model.npz (transition log-probs, log priors), nnet.pt (weights),
phones.txt / words.txt / lexicon.txt, graph.npz (``asr mkgraph``).

A network on fMLLR features (Kaldi's classic hybrid recipe: LDA+MLLT+fMLLR frames of a SAT
GMM) also holds that GMM in ``adapt_gmm/``: decoding and alignment run its
speaker-independent pass and estimate each speaker's transform with it, exactly as for the
GMM itself, and the network scores the adapted frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asr.decode.config import DecoderConfig
from asr.features import FeatureConfig, FeaturePipeline, splice_frames
from asr.hmm.topology import TransitionModel
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.model_dir import read_hmm_side, read_meta, read_network, write_hmm_side, write_network
from asr.nnet.net_config import NetConfig
from asr.nnet.numpy_dnn import NumpyDnn, log_softmax, read_state_dict
from asr.utils import AsrError


ADAPT_GMM_DIR = "adapt_gmm"  # the SAT GMM of a network on fMLLR features


def build_network(cfg: NetConfig, input_dim: int, num_pdfs: int) -> "torch.nn.Module":
    """The hybrid network of ``cfg.kind``: windows (dnn, tdnn, cnn) or whole utterances (rnn)."""
    from asr.nnet.network import AcousticNet
    from asr.nnet.recurrent import RecurrentAcousticNet

    if cfg.kind == "rnn":
        return RecurrentAcousticNet(cfg, input_dim, num_pdfs)
    return AcousticNet(cfg, input_dim, num_pdfs)


def state_log_priors(pdf_counts: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    """(P,) log P(s) from alignment counts; every state gets at least ``floor`` before renormalising."""
    counts = np.asarray(pdf_counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise AsrError("cannot estimate state priors from an empty alignment")
    p = np.maximum(counts / counts.sum(), floor)
    return np.log(p / p.sum())


@dataclass
class DnnHmm:
    """Everything a hybrid system needs to decode."""

    phones: SymbolTable
    words: SymbolTable
    lexicon: Lexicon
    trans: TransitionModel
    ctx: object
    net: AcousticNet | RecurrentAcousticNet
    log_priors: np.ndarray
    feature: FeatureConfig
    pipeline: FeaturePipeline
    silence_phone: str = "SIL"
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    prior_scale: float = 1.0
    info: dict = field(default_factory=dict)
    device: str = "cpu"
    adapt_gmm: object | None = None  # the SAT GMM whose fMLLR transforms the input frames carry
    mc_samples: int = 0  # > 0: Monte-Carlo dropout, posteriors averaged over this many dropout draws

    kind = "dnn"

    @property
    def speaker_adaptive(self) -> bool:
        return self.adapt_gmm is not None

    def first_pass(self):
        """The model of the speaker-independent pass before adaptation: the SAT GMM's."""
        return self.adapt_gmm.first_pass() if self.adapt_gmm is not None else self

    def adapt(self, feats: dict[str, np.ndarray], frame_pdfs: dict[str, np.ndarray], utt2spk: dict[str, str]
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per-speaker fMLLR by the SAT GMM (same tree, so the network's best paths serve too)."""
        if self.adapt_gmm is None:
            raise AsrError("this network takes speaker-independent features: nothing to adapt")
        return self.adapt_gmm.adapt(feats, frame_pdfs, utt2spk)

    def log_posteriors(self, feats: np.ndarray) -> np.ndarray:
        """(T, num_pdfs) float32 log P(s | x_t) of (T, D) pipeline-transformed features.

        With ``mc_samples`` = N > 0 (Monte-Carlo dropout, Gal & Ghahramani 2016) the network
        runs N times with its dropout active (batch norm stays in inference mode) and the
        posteriors are averaged in the probability domain.
        """
        if feats.shape[-1] != self.net.input_dim:
            raise AsrError(f"features have dimension {feats.shape[-1]}, the network expects {self.net.input_dim}")
        if isinstance(self.net, NumpyDnn) and self.mc_samples > 0:
            self.with_torch_network()  # dropout draws come from torch's network
        if isinstance(self.net, NumpyDnn):
            windows = splice_frames(np.asarray(feats, dtype=np.float32), self.net.cfg.context)
            return np.concatenate([log_softmax(self.net(windows[i:i + 4096])) for i in range(0, len(windows), 4096)])
        import torch

        x = torch.as_tensor(feats, dtype=torch.float32, device=self.device)
        self.net.eval()
        if self.mc_samples <= 0:
            return self._log_posteriors(x).numpy()
        for m in self.net.modules():
            if isinstance(m, torch.nn.Dropout) or hasattr(m, "variational"):
                m.train()
        try:
            draws = torch.stack([self._log_posteriors(x) for _ in range(self.mc_samples)])
        finally:
            self.net.eval()
        return (torch.logsumexp(draws, dim=0) - np.log(self.mc_samples)).numpy()

    def _log_posteriors(self, x: "torch.Tensor") -> "torch.Tensor":
        import torch

        from asr.nnet.frames import splice

        with torch.no_grad():
            if getattr(self.net, "sequence", False):  # a recurrent hybrid scores the whole utterance
                return torch.log_softmax(self.net(x[None], torch.tensor([x.shape[0]]))[0].float(), dim=-1).cpu()
            windows = splice(x, self.net.cfg.context)
            out = [torch.log_softmax(self.net(windows[i:i + 4096]).float(), dim=-1)
                   for i in range(0, x.shape[0], 4096)]
        return torch.cat(out).cpu()

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """(T, num_pdfs) scaled log-likelihoods: log posterior - prior_scale * log prior."""
        return self.log_posteriors(feats).astype(np.float64) - self.prior_scale * self.log_priors

    def with_torch_network(self) -> None:
        """Swap a numpy forward (:class:`~asr.nnet.numpy_dnn.NumpyDnn`) for the torch network
        with the same weights (Monte-Carlo dropout samples torch's dropout)."""
        if isinstance(self.net, NumpyDnn):
            import torch

            net = build_network(self.net.cfg, self.net.input_dim, self.net.num_pdfs)
            net.load_state_dict({k: torch.from_numpy(v) for k, v in self.net.state.items()})
            self.net = net.to(self.device).eval()

    def scores_batch(self, feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`scores` of many utterances; a recurrent hybrid (without Monte-Carlo
        dropout) runs them as padded batches of similar length, several times faster."""
        if not getattr(self.net, "sequence", False) or self.mc_samples > 0:
            return {u: self.scores(f) for u, f in feats.items()}
        import torch

        from asr.nnet.recurrent import padded_batches

        self.net.eval()
        out = {}
        with torch.no_grad():
            for utts, x, lengths in padded_batches(feats):
                logp = torch.log_softmax(self.net(x.to(self.device), lengths).float(), dim=-1).cpu().numpy()
                logp = logp.astype(np.float64) - self.prior_scale * self.log_priors
                out.update((u, logp[k, :lengths[k]]) for k, u in enumerate(utts))
        return {u: out[u] for u in feats}

    def save(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        self.with_torch_network()
        write_network(model_dir, self.net, trans_log_probs=self.trans.log_probs, log_priors=self.log_priors)
        write_hmm_side(model_dir, self, {"net": self.net.cfg.to_dict(), "input_dim": self.net.input_dim,
                                         "num_pdfs": self.net.num_pdfs, "prior_scale": self.prior_scale})
        if self.adapt_gmm is not None:
            self.adapt_gmm.save(model_dir / ADAPT_GMM_DIR)

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> "DnnHmm":
        model_dir = Path(model_dir)
        meta = read_meta(model_dir, cls.kind)
        with np.load(model_dir / "model.npz") as z:
            trans_lp, log_priors = z["trans_log_probs"], z["log_priors"]
        cfg = NetConfig.from_dict(meta["net"])
        net = None
        if cfg.kind == "dnn" and device == "cpu":  # inference without torch (asr.nnet.numpy_dnn)
            try:
                net = NumpyDnn(cfg, meta["input_dim"], meta["num_pdfs"], read_state_dict(model_dir / "nnet.pt"))
            except AsrError:
                net = None  # a layout the numpy reader does not know: torch reads it (or says why not)
        if net is None:
            net = read_network(model_dir, build_network(cfg, meta["input_dim"], meta["num_pdfs"]), device)
        adapt_gmm = None
        if (model_dir / ADAPT_GMM_DIR / "model.json").exists():
            from asr.acoustic import load_model

            adapt_gmm = load_model(model_dir / ADAPT_GMM_DIR)
        return cls(net=net, log_priors=log_priors, prior_scale=meta.get("prior_scale", 1.0), device=device,
                   adapt_gmm=adapt_gmm, **read_hmm_side(model_dir, meta, trans_lp))


class Ensemble:
    """Several networks decoded as one: their posteriors are averaged (in the probability
    domain) before the prior is divided out.

    Members are hybrid models trained on the same tree (seed copies, bagging, a snapshot
    ensemble, different architectures), or CTC models with the same tokens and frame rate.
    """

    def __init__(self, members: list):
        if len(members) < 2:
            raise AsrError("an ensemble needs at least two models")
        first = members[0]
        if len({m.kind for m in members}) > 1:
            raise AsrError("ensemble members must all be hybrid networks or all CTC models")
        self.kind = "ctc" if first.kind == "ctc" else "dnn-ensemble"
        for m in members[1:]:
            if m.ctx.to_dict() != first.ctx.to_dict():
                raise AsrError("ensemble members must share the tree (trained on the same alignment) or the tokens")
            if m.feature != first.feature or m.pipeline != first.pipeline:
                raise AsrError("ensemble members must use the same features")
            if self.kind == "ctc" and (m.tokens.symbols != first.tokens.symbols or m.subsample != first.subsample):
                raise AsrError("CTC ensemble members must have the same tokens and frame stacking")
        self.members = members
        names = ["phones", "words", "lexicon", "trans", "ctx", "feature", "pipeline", "silence_phone", "decoder",
                 "log_priors", "prior_scale"] + (["tokens", "subsample"] if self.kind == "ctc" else [])
        for name in names:
            setattr(self, name, getattr(first, name))
        if self.kind == "ctc":  # CTC members align by CTC's own lattice, over the averaged posteriors
            from functools import partial

            from asr.nnet.ctc_align import ctc_spans

            self.align_spans = partial(ctc_spans, self)

    @property
    def mc_samples(self) -> int:
        return self.members[0].mc_samples if hasattr(self.members[0], "mc_samples") else 0

    @mc_samples.setter
    def mc_samples(self, n: int) -> None:
        for m in self.members:
            m.mc_samples = n

    def log_posteriors(self, feats: np.ndarray) -> np.ndarray:
        logp = np.stack([np.asarray(m.log_posteriors(feats), dtype=np.float64) for m in self.members])
        return np.logaddexp.reduce(logp, axis=0) - np.log(len(self.members))

    def scores(self, feats: np.ndarray) -> np.ndarray:
        lp = self.log_posteriors(feats)
        if self.log_priors is not None and self.prior_scale:
            lp = lp - self.prior_scale * self.log_priors
        return lp
