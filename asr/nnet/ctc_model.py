"""A CTC model dir: the network, its tokens, and the CTC-as-HMM side for graph decoding.

The HMM side (lexicon, topology, context, decoder defaults) is the lang's phones mapped to
tokens by :mod:`asr.hmm.ctc_topology`, so ``asr mkgraph`` and the Viterbi decoder treat a
CTC model like a hybrid one whose "pdfs" are tokens and whose scores are token
log-posteriors (one per ``subsample`` input frames).

Model dir: model.json (type "ctc", network and token config, features, topology,
context, decoder defaults), model.npz (transition log-probs, all 0), nnet.pt,
tokens.txt, phones.txt / words.txt / lexicon.txt, graph.npz (``asr mkgraph``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from asr.decode.config import DecoderConfig
from asr.features import FeatureConfig, FeaturePipeline
from asr.hmm.ctc_topology import CtcContext, ctc_topology
from asr.hmm.topology import TransitionModel
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.lang.prepare import Lang
from asr.model_dir import read_hmm_side, read_meta, read_network, write_hmm_side, write_network
from asr.nnet.ctc_net import CtcNet, CtcNetConfig
from asr.nnet.recurrent import padded_batches
from asr.nnet.tokens import WORD_SEP, TokenSet
from asr.utils import AsrError

CHAR_SILENCE = "SIL"


def ctc_hmm_side(lang: Lang, tokens: TokenSet) -> dict:
    """The graph side of a CTC model: phones, words, lexicon, transitions (all log 0), context.

    Phone tokens use the lang as is. Character tokens get a spelling lang: its "phones" are
    the characters, a word is spelt by its characters and ``|``, and words with a character
    the tokens lack (``<UNK>``-like entries) are left out.
    """
    if tokens.kind == "phone":
        phones, lexicon, silence = lang.phones, lang.lexicon, lang.silence_phones
    else:
        phones = SymbolTable(["<eps>", CHAR_SILENCE] + tokens.symbols[1:])
        spell = {w: [list(w) + [WORD_SEP]] for w in lang.lexicon.words()
                 if all(c in tokens.index for c in w) and WORD_SEP not in w}
        if not spell:
            raise AsrError("no lexicon word can be spelt with the character tokens")
        lexicon, silence = Lexicon(spell), [CHAR_SILENCE]
    topo = ctc_topology(phones, silence)
    trans = TransitionModel(topo)  # every arc has probability 1: log 0
    return {"phones": phones, "words": lang.words, "lexicon": lexicon, "trans": trans,
            "ctx": CtcContext.build(phones, silence, tokens.index), "silence_phone": silence[0]}


@dataclass
class CtcModel:
    phones: SymbolTable
    words: SymbolTable
    lexicon: Lexicon
    trans: TransitionModel
    ctx: object
    net: CtcNet
    tokens: TokenSet
    feature: FeatureConfig
    pipeline: FeaturePipeline
    silence_phone: str = "SIL"
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    log_priors: np.ndarray | None = None  # (V,) mean token posteriors (EESEN's priors), log
    prior_scale: float = 0.0
    info: dict = field(default_factory=dict)
    device: str = "cpu"

    kind = "ctc"

    @property
    def subsample(self) -> int:
        """Input frames per output frame (the decoder's frames are this many times longer)."""
        return self.net.cfg.subsample

    def log_posteriors(self, feats: np.ndarray) -> torch.Tensor:
        """(T', V) token log-posteriors of (T, D) pipeline-transformed features, T' = ceil(T / subsample)."""
        self.net.eval()
        x = torch.as_tensor(feats, dtype=torch.float32, device=self.device)[None]
        with torch.no_grad():
            logp, _ = self.net(x, torch.tensor([x.shape[1]]))
        return logp[0].cpu()

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """(T', V) acoustic scores for the graph decoder: token log-posteriors, minus
        ``prior_scale`` x log prior (EESEN: dividing by the priors tempers the blank's dominance)."""
        lp = self.log_posteriors(feats).numpy().astype(np.float64)
        if self.prior_scale and self.log_priors is not None:
            lp = lp - self.prior_scale * self.log_priors
        return lp

    def scores_batch(self, feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`scores` of many utterances, run as padded batches of similar length
        (``asr.nnet.recurrent.padded_batches``): the same scores, several times faster."""
        self.net.eval()
        out = {}
        with torch.no_grad():
            for utts, x, lengths in padded_batches(feats):
                logp, out_len = self.net(x.to(self.device), lengths)
                logp = logp.cpu().numpy().astype(np.float64)
                if self.prior_scale and self.log_priors is not None:
                    logp -= self.prior_scale * self.log_priors
                out.update((u, logp[k, :out_len[k]]) for k, u in enumerate(utts))
        return {u: out[u] for u in feats}

    def align_spans(self, feats: np.ndarray, words: list[str], utt: str = "") -> dict[str, list[tuple[str, int, int]]]:
        """Forced alignment by CTC's own lattice (``asr.nnet.ctc_align.ctc_spans``): word and
        token spans in frames."""
        from asr.nnet.ctc_align import ctc_spans

        return ctc_spans(self, feats, words, utt)

    def save(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        priors = self.log_priors if self.log_priors is not None else np.zeros(len(self.tokens))
        write_network(model_dir, self.net, trans_log_probs=self.trans.log_probs, log_priors=priors)
        self.tokens.write(model_dir / "tokens.txt")
        write_hmm_side(model_dir, self, {"net": self.net.cfg.to_dict(), "input_dim": self.net.input_dim,
                                         "token_kind": self.tokens.kind, "prior_scale": self.prior_scale})

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> "CtcModel":
        model_dir = Path(model_dir)
        meta = read_meta(model_dir, cls.kind)
        with np.load(model_dir / "model.npz") as z:
            trans_lp = z["trans_log_probs"]
            log_priors = z["log_priors"] if "log_priors" in z else None
        tokens = TokenSet.read(model_dir / "tokens.txt", meta["token_kind"])
        net = read_network(model_dir, CtcNet(CtcNetConfig.from_dict(meta["net"]), meta["input_dim"], len(tokens)),
                           device)
        return cls(net=net, tokens=tokens, device=device, log_priors=log_priors,
                   prior_scale=meta.get("prior_scale", 0.0), **read_hmm_side(model_dir, meta, trans_lp))
