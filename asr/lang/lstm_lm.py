"""A word-level LSTM language model for n-best rescoring (``asr lstm-lm``).

Kaldi's RNNLM rescoring and icefall's LSTM-LM rescoring in small: an LSTM reads the
words so far and predicts the next one. The first-pass n-gram is estimated on the same
text; the network's longer memory and smoother estimates are what rescoring adds.

Vocabulary. The output layer covers a *shortlist*, the ``shortlist`` most frequent
words of the training text (with ``</s>``, which is also the start symbol, and one
out-of-shortlist class ``<oos>``). Any other word ``w`` of the full word list (the LM
vocabulary, e.g. LibriSpeech's 200k words) is scored as

    P(w | h) = P(<oos> | h) * P(w | <oos>)

the second factor an add-one unigram over the text counts of the words outside the
shortlist, so the model is a distribution over the whole word list, like the n-gram it
is combined with. Text tokens outside the word list count as its ``unk`` word.

The output layer is an adaptive softmax (Grave et al. 2017, torch's
``AdaptiveLogSoftmaxWithLoss``): frequent words in a full-width head, rare ones in
narrower clusters, which is what makes a 20k-word output trainable on a laptop CPU (a
vocabulary too small for any cluster gets a plain softmax).

Training: sentence by sentence, as the model is used (each n-best hypothesis is scored
from ``</s>`` and a zero state), in minibatches of sentences of similar length, padding
masked out. Every ``heldout_every``-th sentence is held out; after each epoch its
perplexity decides whether the learning rate is halved. A checkpoint every
``checkpoint_minutes`` lets an interrupted run resume mid-epoch.

Model dir: lstm_lm.json (config, history), words.tsv (every word of the word list and its
text count, shortlist first), lstm_lm.pt (weights, loaded with ``weights_only``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from asr.utils import AsrError, Config, atomic_path, ensure_dir, one_line, read_json, write_text_atomic

log = logging.getLogger(__name__)

EOS = "</s>"
OOS = "<oos>"
CONFIG_FILE, WORDS_FILE, WEIGHTS_FILE, CHECKPOINT_FILE = "lstm_lm.json", "words.tsv", "lstm_lm.pt", "checkpoint.pt"


@dataclass
class LstmLmConfig(Config):
    """Network and training options (recipe ``[lstm_lm]`` section)."""

    shortlist: int = 40000  # words of the output layer (besides </s> and <oos>)
    cutoffs: tuple[int, ...] = (2000, 10000)  # adaptive-softmax cluster boundaries (token ids)
    embed_dim: int = 256
    hidden_dim: int = 512
    num_layers: int = 1
    dropout: float = 0.1
    batch_tokens: int = 4096  # padded tokens per minibatch of sentences of similar length
    max_len: int = 100  # longer training sentences are cut into pieces of this many words
    learning_rate: float = 2e-3
    grad_clip: float = 1.0
    max_epochs: int = 2
    heldout_every: int = 100  # every n-th sentence is held out (perplexity, learning-rate control)
    train_share: float = 1.0  # train on this share of the other sentences (a fixed hash draw): a CPU budget
    checkpoint_minutes: float = 5.0
    unk: str = "<UNK>"  # the word list's word for text tokens outside it
    seed: int = 0
    threads: int = 2
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.cutoffs = tuple(int(c) for c in self.cutoffs)
        if min(self.shortlist, self.batch_tokens, self.max_len, self.max_epochs) < 1:
            raise AsrError("lstm-lm: shortlist, batch_tokens, max_len and max_epochs must be >= 1")
        if list(self.cutoffs) != sorted(set(self.cutoffs)) or any(c < 1 for c in self.cutoffs):
            raise AsrError(f"lstm-lm: cutoffs must be increasing positive token ids, got {list(self.cutoffs)}")
        if not 0.0 < self.train_share <= 1.0:
            raise AsrError(f"lstm-lm: train_share must lie in (0, 1], got {self.train_share}")
        if self.heldout_every < 2:
            raise AsrError("lstm-lm: heldout_every must be >= 2 (every n-th sentence is held out)")


class LmVocab:
    """Token ids of the network (0 ``</s>``, 1 ``<oos>``, then the shortlist by frequency)
    and the out-of-shortlist unigram of the rest of the word list."""

    def __init__(self, words: list[str], counts: list[int], shortlist: int, unk: str):
        if len(words) != len(counts) or len(set(words)) != len(words):
            raise AsrError("LM vocabulary: words must be distinct, one count each")
        self.unk = unk
        order = sorted(range(len(words)), key=lambda i: (-counts[i], words[i]))
        self.words = [words[i] for i in order]
        self.counts = [int(counts[i]) for i in order]
        k = min(shortlist, len(self.words))
        self.tokens = [EOS, OOS] + self.words[:k]
        self.token_id = {w: i for i, w in enumerate(self.tokens)}
        rest = np.asarray(self.counts[k:], dtype=np.float64) + 1.0  # add-one: every word gets mass
        self.oos_logprob = dict(zip(self.words[k:], (np.log(rest) - np.log(rest.sum())).tolist())) if len(rest) else {}
        self.known = set(self.words)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    def encode(self, word: str) -> tuple[int, float]:
        """(token id, extra log-probability) of one word: the shortlist's own token, or
        ``<oos>`` and log P(word | <oos>); a word outside the list is scored as ``unk``."""
        t = self.token_id.get(word)
        if t is not None and t >= 2:
            return t, 0.0
        if word not in self.known:
            if self.unk not in self.known:
                raise AsrError(f"word {word!r} is outside the LM's word list, which has no {self.unk!r}")
            return self.encode(self.unk)
        return 1, self.oos_logprob[word]

    def write(self, path: Path) -> None:
        write_text_atomic(path, "".join(f"{w}\t{c}\n" for w, c in zip(self.words, self.counts)))

    @classmethod
    def read(cls, path: Path, shortlist: int, unk: str) -> "LmVocab":
        words, counts = [], []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split("\t")
            if len(parts) != 2 or not parts[1].isdigit():
                raise AsrError(f"{path}:{n}: expected 'word<TAB>count'")
            words.append(parts[0])
            counts.append(int(parts[1]))
        return cls(words, counts, shortlist, unk)


class LstmLmNet(nn.Module):
    def __init__(self, cfg: LstmLmConfig, num_tokens: int):
        super().__init__()
        cutoffs = [c for c in cfg.cutoffs if c < num_tokens - 1]
        self.embed = nn.Embedding(num_tokens, cfg.embed_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_dim, cfg.num_layers, batch_first=True,
                            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        # a vocabulary too small for any cluster gets a plain softmax
        self.out = nn.AdaptiveLogSoftmaxWithLoss(cfg.hidden_dim, num_tokens, cutoffs, div_value=4.0) if cutoffs \
            else nn.Linear(cfg.hidden_dim, num_tokens)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, state=None):
        """(N, T) input token ids, (N, T) next tokens -> ((N, T) log P(target | history), state)."""
        h, state = self.lstm(self.drop(self.embed(inputs)), state)
        h = self.drop(h).reshape(-1, h.shape[-1])
        if isinstance(self.out, nn.AdaptiveLogSoftmaxWithLoss):
            logp = self.out(h, targets.reshape(-1)).output
        else:
            logp = torch.log_softmax(self.out(h), -1).gather(1, targets.reshape(-1, 1))[:, 0]
        return logp.view(targets.shape), state

    def log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """(N, H) LSTM outputs -> (N, tokens) log-probabilities of every next token."""
        if isinstance(self.out, nn.AdaptiveLogSoftmaxWithLoss):
            return self.out.log_prob(hidden)
        return torch.log_softmax(self.out(hidden), -1)


class LstmLm:
    """A trained LSTM LM: sentence costs (-ln P, nats) and perplexity over its word list."""

    def __init__(self, net: LstmLmNet, vocab: LmVocab, cfg: LstmLmConfig, device: str = "cpu"):
        self.net, self.vocab, self.cfg = net.to(device).eval(), vocab, cfg
        self.device = torch.device(device)

    def sentence_costs(self, sentences: list[list[str]], batch: int = 128) -> np.ndarray:
        """(S,) -ln P(w_1 .. w_n </s>) of each sentence (a list of words), in nats."""
        return np.array([c.sum() for c in self.token_costs(sentences, batch)])

    def token_costs(self, sentences: list[list[str]], batch: int = 128) -> list[np.ndarray]:
        """Per sentence, the (n + 1,) -ln P of each word given the ones before it and of the
        final </s>, in nats."""
        out: list[np.ndarray] = [np.zeros(0)] * len(sentences)
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))  # little padding
        with torch.no_grad():
            for s in range(0, len(order), batch):
                idx = order[s:s + batch]
                enc = [[self.vocab.encode(w) for w in sentences[i]] for i in idx]
                ids = np.array([t for e in enc for t, _ in e], dtype=np.int32)
                offsets = np.cumsum([0] + [len(e) for e in enc])
                inp, tgt, _ = batch_tensors(ids, offsets, np.arange(len(idx)))  # the training layout
                logp, _ = self.net(inp.to(self.device), tgt.to(self.device))
                logp = logp.cpu().double().numpy()
                for k, i in enumerate(idx):
                    n = len(enc[k])
                    extra = np.array([x for _, x in enc[k]] + [0.0])
                    out[i] = -(logp[k, :n + 1] + extra)
        return out

    def perplexity(self, sentences: Iterable[list[str]]) -> dict:
        """Perplexity over words and ``</s>``, as ``asr lm-eval`` gives an n-gram's (a word
        outside the word list is scored as ``unk`` and counted as an OOV)."""
        sents = list(sentences)
        if not sents:
            raise AsrError("no sentences to compute a perplexity on")
        words = sum(len(s) for s in sents)
        oovs = sum(w not in self.vocab.known for s in sents for w in s)
        cost = float(self.sentence_costs(sents).sum())
        return {"sentences": len(sents), "words": words, "oovs": oovs, "oov_rate": 100.0 * oovs / max(words, 1),
                "logprob": -cost / math.log(10), "ppl": math.exp(cost / (words + len(sents)))}

    def save(self, model_dir: str | Path, info: dict) -> None:
        model_dir = ensure_dir(model_dir)
        with atomic_path(model_dir / WEIGHTS_FILE) as tmp:
            torch.save({k: v.cpu() for k, v in self.net.state_dict().items()}, tmp)
        self.vocab.write(model_dir / WORDS_FILE)
        write_text_atomic(model_dir / CONFIG_FILE, json.dumps({"type": "lstm_lm", "config": self.cfg.to_dict(),
                                                               **info}, indent=1) + "\n")

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> "LstmLm":
        model_dir = Path(model_dir)
        if not (model_dir / CONFIG_FILE).exists():
            raise AsrError(f"{model_dir} is not an LSTM LM dir (no {CONFIG_FILE}); train one with asr lstm-lm train")
        meta = read_json(model_dir / CONFIG_FILE)
        try:
            cfg = LstmLmConfig.from_dict(meta["config"])
            vocab = LmVocab.read(model_dir / WORDS_FILE, cfg.shortlist, cfg.unk)
            net = LstmLmNet(cfg, vocab.num_tokens)
            net.load_state_dict(torch.load(model_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        except (KeyError, RuntimeError, OSError, EOFError, ValueError) as e:
            raise AsrError(f"{model_dir}: damaged LSTM LM ({one_line(e)})") from None
        return cls(net, vocab, cfg, device)


def count_words(sentences: Iterable[list[str]], word_list: list[str] | None, unk: str) -> tuple[list[str], list[int]]:
    """(words, text counts) of the word list (without one: every word of the text); tokens
    outside the list count as ``unk``, which joins the list."""
    counts: dict[str, int] = {w: 0 for w in word_list} if word_list is not None else {}
    for sent in sentences:
        for w in sent:
            if w in counts:
                counts[w] += 1
            elif word_list is None:
                counts[w] = 1
            else:
                counts[unk] = counts.get(unk, 0) + 1
    counts.pop(EOS, None)
    counts.pop(OOS, None)
    return list(counts), list(counts.values())


def _kept(n: int, share: float) -> bool:
    """Whether sentence ``n`` is in the training share (Knuth's multiplicative hash: a fixed,
    evenly spread draw)."""
    return share >= 1.0 or ((n * 2654435761) % 2 ** 32) / 2 ** 32 < share


def encode_sentences(sentences: Iterable[list[str]], vocab: LmVocab, heldout_every: int, max_len: int,
                     share: float = 1.0) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """(token ids of the training sentences end to end, (S + 1,) sentence offsets) and the
    held-out sentences (every ``heldout_every``-th; of the others, ``share`` is trained on).
    A sentence longer than ``max_len`` words is cut into pieces."""
    ids: list[int] = []
    offsets = [0]
    held = []
    for n, sent in enumerate(sentences):
        if n % heldout_every == heldout_every - 1:
            held.append(sent)
            continue
        if not _kept(n, share):
            continue
        for s in range(0, len(sent), max_len):
            ids.extend(vocab.encode(w)[0] for w in sent[s:s + max_len])
            offsets.append(len(ids))
    return np.asarray(ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64), held


def sentence_batches(lengths: np.ndarray, batch_tokens: int, gen: np.random.Generator) -> list[np.ndarray]:
    """Sentence indices in batches of similar length (at most ``batch_tokens`` padded tokens,
    ``</s>`` included), the batch order shuffled."""
    order = np.lexsort((gen.random(len(lengths)), lengths))
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end - start + 1) * (int(lengths[order[end]]) + 1) <= batch_tokens:
            end += 1
        batches.append(order[start:end])
        start = end
    gen.shuffle(batches)
    return batches


def batch_tensors(ids: np.ndarray, offsets: np.ndarray, batch: np.ndarray) -> tuple[torch.Tensor, ...]:
    """(N, T) inputs (</s> first), (N, T) targets (the words, then </s>), (N, T) mask."""
    lens = offsets[batch + 1] - offsets[batch]
    T = int(lens.max()) + 1
    inp = torch.zeros(len(batch), T, dtype=torch.long)
    tgt = torch.zeros(len(batch), T, dtype=torch.long)
    mask = torch.zeros(len(batch), T)
    for k, (i, n) in enumerate(zip(batch.tolist(), lens.tolist())):
        w = torch.from_numpy(ids[offsets[i]:offsets[i] + n].astype(np.int64))
        inp[k, 1:n + 1] = w
        tgt[k, :n] = w
        mask[k, :n + 1] = 1.0
    return inp, tgt, mask


def train_lstm_lm(sentences_fn: Callable[[], Iterable[list[str]]], out_dir: str | Path, cfg: LstmLmConfig | None = None,
                  word_list: list[str] | None = None) -> dict:
    """Train on the sentences ``sentences_fn()`` yields (called twice: counting, then ids);
    writes the model dir and returns its info (history, held-out perplexity)."""
    cfg = cfg or LstmLmConfig()
    out_dir = ensure_dir(out_dir)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AsrError("--device cuda was asked for but torch sees no GPU")
    t0 = time.time()
    # counted on the training sentences only: the held-out ones must not shape the vocabulary
    training = (sent for n, sent in enumerate(sentences_fn())
                if n % cfg.heldout_every != cfg.heldout_every - 1 and _kept(n, cfg.train_share))
    words, counts = count_words(training, word_list, cfg.unk)
    vocab = LmVocab(words, counts, cfg.shortlist, cfg.unk)
    ids, offsets, held = encode_sentences(sentences_fn(), vocab, cfg.heldout_every, cfg.max_len, cfg.train_share)
    if not held or len(offsets) < 2:
        raise AsrError(f"LM text has fewer than {cfg.heldout_every} sentences: nothing to hold out")
    lengths = np.diff(offsets)
    log.info("lstm-lm: %d words in the list, %d tokens, %d training sentences (%d words), %d held out (%.0f s)",
             len(words), vocab.num_tokens, len(lengths), len(ids), len(held), time.time() - t0)
    net = LstmLmNet(cfg, vocab.num_tokens).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    model = LstmLm(net, vocab, cfg, cfg.device)
    fingerprint = json.dumps([cfg.to_dict(), len(ids), int(ids[:100000].sum()), len(words)])
    state = {"epoch": 1, "step": 0, "lr": cfg.learning_rate, "history": [], "best_ppl": math.inf,
             "loss_sum": 0.0, "tokens": 0}
    ckpt = out_dir / CHECKPOINT_FILE
    if ckpt.exists():
        try:
            saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as e:
            raise AsrError(f"{ckpt}: not a checkpoint this trainer wrote ({one_line(e)}); delete it") from None
        if isinstance(saved, dict) and saved.get("fingerprint") == fingerprint:
            net.load_state_dict(saved["weights"])
            opt.load_state_dict(saved["optimizer"])
            state = json.loads(saved["state"])
            log.info("lstm-lm: resuming at epoch %d, step %d", state["epoch"], state["step"])
        else:
            log.warning("%s was written for other options or text; starting from scratch", ckpt)

    def checkpoint() -> None:
        with atomic_path(ckpt) as tmp:
            torch.save({"fingerprint": fingerprint, "weights": net.state_dict(), "optimizer": opt.state_dict(),
                        "state": json.dumps(state)}, tmp)

    while state["epoch"] <= cfg.max_epochs:
        epoch = state["epoch"]
        for g in opt.param_groups:
            g["lr"] = state["lr"]
        # The epoch's batches are a function of (seed, epoch): a resumed run skips the done ones.
        batches = sentence_batches(lengths, cfg.batch_tokens, np.random.default_rng([cfg.seed, epoch]))
        torch.manual_seed(cfg.seed * 1000 + epoch * 100003 + state["step"])  # dropout masks
        net.train()
        t_epoch, t_ckpt = time.time(), time.time()
        bar = tqdm(range(state["step"], len(batches)), desc=f"lstm-lm epoch {epoch}", unit="batch", disable=None,
                   initial=state["step"], total=len(batches))
        for step in bar:
            inp, tgt, mask = (t.to(device) for t in batch_tensors(ids, offsets, batches[step]))
            logp, _ = net(inp, tgt)
            n = mask.sum()
            loss = -(logp * mask).sum() / n
            opt.zero_grad()
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            state["loss_sum"] += float(loss.detach()) * float(n)
            state["tokens"] += float(n)
            if step % 50 == 0:
                bar.set_postfix(ppl=f"{math.exp(state['loss_sum'] / state['tokens']):.1f}")
            if time.time() - t_ckpt > 60 * cfg.checkpoint_minutes:
                state["step"] = step + 1
                checkpoint()
                t_ckpt = time.time()
        net.eval()
        ppl = model.perplexity(held)["ppl"]
        train_ppl = math.exp(state["loss_sum"] / max(state["tokens"], 1))
        state["history"].append({"epoch": epoch, "train_ppl": round(train_ppl, 2),
                                 "heldout_ppl": round(ppl, 2), "lr": state["lr"],
                                 "seconds": round(time.time() - t_epoch, 1)})
        log.info("lstm-lm epoch %d: held-out perplexity %.2f (%.0f s)", epoch, ppl, time.time() - t_epoch)
        if ppl < state["best_ppl"]:
            state["best_ppl"] = ppl
            model.save(out_dir, {"history": state["history"], "heldout_sentences": len(held),
                                 "training_tokens": int(len(ids)), "best_epoch": epoch})
        else:
            state["lr"] /= 2  # newbob-style: a worse held-out epoch halves the rate
        state.update(epoch=epoch + 1, step=0, loss_sum=0.0, tokens=0)
        checkpoint()
    best = LstmLm.load(out_dir)  # the best epoch's weights, as saved
    info = {"history": state["history"], "heldout_sentences": len(held), "training_tokens": int(len(ids)),
            "best_epoch": min(state["history"], key=lambda h: h["heldout_ppl"])["epoch"],
            "heldout_ppl": round(state["best_ppl"], 2), "train_seconds": round(time.time() - t0, 1)}
    best.save(out_dir, info)
    ckpt.unlink(missing_ok=True)
    return info


def interpolated_perplexity(lm: LstmLm, ngram, sentences: list[list[str]], weights: list[float]) -> dict[float, float]:
    """Perplexity of the linear mix ``w * P_lstm + (1 - w) * P_ngram``, word by word, for each
    weight (0: the n-gram, an ``asr.lang.arpa_scorer.ArpaScorer`` read without a word table).
    Words outside either model's list are scored as ``<UNK>`` by both, as ``asr lm-eval`` does."""
    from asr.lang.arpa_scorer import token_costs as ngram_token_costs

    if not sentences:
        raise AsrError("no sentences to compute a perplexity on")
    nn_costs = np.concatenate(lm.token_costs(sentences))
    ng_costs = np.concatenate([ngram_token_costs(ngram, s, lm.vocab.unk) for s in sentences])
    if not np.isfinite(ng_costs).all():
        raise AsrError("the n-gram gives no probability to a word of the text (and has no <UNK>)")
    out = {}
    for w in weights:
        if not 0.0 <= w <= 1.0:
            raise AsrError(f"interpolation weights must lie in [0, 1], got {w}")
        mix = np.logaddexp(np.log(w) - nn_costs if w > 0 else -np.inf,
                           np.log1p(-w) - ng_costs if w < 1 else -np.inf)
        out[w] = float(np.exp(-mix.mean()))
    return out
