"""Bounded memory at scale: EM iterations and DNN epochs on a synthetic corpus of >= 100 hours.

    .venv/bin/python bench/bench_stream.py [--hours 12.5,25,50,100] [--out bench/STREAMING.md]

The corpus is AN4's training features replicated with noise (``make_corpus``): copy k of
utterance u is ``ck-u`` (speaker ``ck-<speaker>``, its own CMVN statistics), its MFCCs plus
Gaussian noise of 0.1 x each dimension's standard deviation, and its alignment is u's tri1
alignment. Every figure runs in a fresh process with the training code's streaming option
(``chunk_frames``: features read from the ark/scp archive a chunk at a time) and records
that process's peak resident memory; for contrast, the smaller sizes also run with every
frame in memory. Needs AN4 as `make -C recipes/an4 5` prepares it (data/an4, exp/an4/tri1).
No figure here is asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SRC_DATA = ROOT / "data" / "an4" / "train_nodev"
GMM = ROOT / "exp" / "an4" / "tri1"
WORK = ROOT / "exp" / "bench" / "stream"
CHUNK_FRAMES = 500_000  # about 1.4 h of frames per chunk
FRAMES_PER_HOUR = 360_000


class _NoisyCopies(Mapping):
    """utt id -> (T, D) array of a copy, made when it is asked for (write_ark_scp walks the keys
    in order, so the corpus is never in memory)."""

    def __init__(self, raw: Mapping, utts: list[str], copies: int, scale: np.ndarray, seed: int):
        self.raw, self.scale, self.seed = raw, scale, seed
        self.keys_ = {f"c{k:03d}-{u}": (k, u) for k in range(copies) for u in utts}

    def __getitem__(self, key: str) -> np.ndarray:
        k, u = self.keys_[key]
        x = np.asarray(self.raw[u], dtype=np.float32)
        rng = np.random.default_rng([self.seed, k, int.from_bytes(u.encode()[:8], "little")])
        return x + (rng.standard_normal(x.shape) * self.scale).astype(np.float32)

    def __iter__(self):
        return iter(self.keys_)

    def __len__(self) -> int:
        return len(self.keys_)


def make_corpus(hours: float, out: Path, noise: float = 0.1, seed: int = 0) -> Path:
    """The synthetic data dir (``out/data``) and alignment dir (``out/ali``) of >= ``hours``."""
    import kaldiio

    from asr.arkio import write_ark_scp
    from asr.datadir import DataDir, write_kv
    from asr.features import cmvn_stats
    from asr.hmm.alignments import read_alignments

    done = out / ".done"
    if done.exists() and json.loads(done.read_text())["hours"] >= hours:
        return out
    src = DataDir.load(SRC_DATA)
    raw = kaldiio.load_scp(str(SRC_DATA / "feats.scp"))
    pdf, tid = read_alignments(GMM / "ali", "pdf"), read_alignments(GMM / "ali", "tid")
    utts = [u for u in src.utts() if u in pdf]
    frames = sum(len(pdf[u]) for u in utts)
    copies = math.ceil(hours * FRAMES_PER_HOUR / frames)
    x = np.concatenate([np.asarray(raw[u]) for u in utts])
    feats = _NoisyCopies(raw, utts, copies, noise * x.std(0), seed)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_ark_scp(data / "feats.ark", data / "feats.scp", feats)
    # Per-speaker CMVN of the noisy copies, read back one speaker at a time.
    stored = kaldiio.load_scp(str(data / "feats.scp"))
    by_spk: dict[str, list[str]] = {}
    for key, (k, u) in feats.keys_.items():
        by_spk.setdefault(f"c{k:03d}-{src.utt2spk[u]}", []).append(key)
    write_ark_scp(data / "cmvn.ark", data / "cmvn.scp",
                  {s: cmvn_stats(stored[key] for key in keys) for s, keys in by_spk.items()})
    copy_of = feats.keys_
    write_kv(data / "utt2spk", {key: f"c{k:03d}-{src.utt2spk[u]}" for key, (k, u) in copy_of.items()})
    write_kv(data / "wav.scp", {key: src.wav[u] for key, (k, u) in copy_of.items()})
    write_kv(data / "text", {key: " ".join(src.text[u]) for key, (k, u) in copy_of.items()})
    write_kv(data / "utt2num_frames", {key: str(len(pdf[u])) for key, (k, u) in copy_of.items()})
    (data / "feats_conf.json").write_text((SRC_DATA / "feats_conf.json").read_text())
    ali = out / "ali"
    ali.mkdir(exist_ok=True)
    for name, table in (("pdf", pdf), ("tid", tid)):
        write_ark_scp(ali / f"ali.{name}.ark", ali / f"ali.{name}.scp",
                      {key: table[u] for key, (k, u) in copy_of.items()}, dtype=np.int32)
    done.write_text(json.dumps({"hours": copies * frames / FRAMES_PER_HOUR, "copies": copies,
                                "frames_per_copy": frames}) + "\n")
    return out


def subset(corpus: Path, hours: float) -> Path:
    """A data dir of the first copies that make ``hours``."""
    from asr.datadir import DataDir, subset_data_dir

    info = json.loads((corpus / ".done").read_text())
    copies = max(1, round(hours * FRAMES_PER_HOUR / info["frames_per_copy"]))
    out = corpus / f"data_{hours:g}h"
    if not (out / "feats.scp").exists():
        data = DataDir.load(corpus / "data")
        keep = [u for u in data.utts() if int(u[1:4]) < copies]
        subset_data_dir(corpus / "data", keep, out)
    return out


def em_iteration(data: Path, ali: Path, chunk_frames: int) -> dict:
    """One Viterbi-EM iteration (statistics + update) of AN4's tri1 GMM over ``data``."""
    from asr.acoustic import load_model
    from asr.features import training_features
    from asr.gmm.em import GmmTrainConfig, accumulate_streamed, global_stats
    from asr.hmm.alignments import read_alignments

    model = load_model(GMM)
    t0 = time.time()
    feats = training_features(data, model.pipeline, chunk_frames)
    pdfs = read_alignments(ali, "pdf", np.int32)
    utts = sorted(u for u in feats if u in pdfs)
    pdfs = {u: pdfs[u] for u in utts}
    cfg = GmmTrainConfig(chunk_frames=chunk_frames if chunk_frames > 0 else sum(len(p) for p in pdfs.values()))
    _, var, _ = global_stats(feats, utts[:500])  # the variance floor, from a sample
    load_s = time.time() - t0
    t1 = time.time()
    stats = accumulate_streamed(model.gmm, feats, pdfs, utts, cfg)
    model.gmm.update(stats, 0.01 * var)
    em_s = time.time() - t1
    return {"frames": stats.frames, "seconds": em_s, "setup_seconds": load_s}


def _measured(cmd: list[str]) -> tuple[str, float]:
    """Run ``cmd`` under /usr/bin/time: its stdout and its peak resident memory (MB)."""
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        out = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd], check=True, capture_output=True,
                             text=True)
        return out.stdout, int(rss.read().split()[-1]) / 1024


def dnn_epoch(data: Path, ali: Path, chunk_frames: int, out: Path) -> dict:
    """One epoch of a 2 x 256 ReLU DNN (+-5 MFCC frames) on ``data``: `asr train-dnn` as a user
    runs it, peak memory included."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(ROOT / ".venv" / "bin" / "asr"), "train-dnn", "--data", str(data), "--ali", str(ali), "--gmm", str(GMM),
           "--out", str(out), "--set", "num_layers=2", "--set", "hidden_dim=256", "--set", "max_epochs=1",
           "--set", "min_epochs=1", "--set", f"chunk_frames={chunk_frames}", "--set", "batch_size=512",
           "--set", "cv_fraction=0.02"]
    _, peak = _measured(cmd)
    row = json.loads((out / "train_log.json").read_text())[0]
    shutil.rmtree(out, ignore_errors=True)
    return {"frames": round(row["seconds"] * row["frames_per_second"]), "seconds": row["seconds"], "peak_mb": peak}


def em_child(data: Path, chunk_frames: int, work: Path) -> dict:
    """:func:`em_iteration` in a fresh process, its peak memory included."""
    out, peak = _measured([sys.executable, __file__, "--work", str(work), "em", "--data", str(data),
                           "--chunk-frames", str(chunk_frames)])
    return {**json.loads(out.strip().splitlines()[-1]), "peak_mb": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd")
    one = sub.add_parser("em", help="(internal) one EM iteration, JSON on stdout")
    one.add_argument("--data", type=Path, required=True)
    one.add_argument("--chunk-frames", type=int, default=CHUNK_FRAMES)
    ap.add_argument("--hours", default="12.5,25,50,100")
    ap.add_argument("--in-memory-hours", default="12.5,25", help="sizes also run with every frame in memory")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "STREAMING.md")
    ap.add_argument("--work", type=Path, default=WORK, help="where the corpus is made")
    ap.add_argument("--skip-dnn", action="store_true")
    a = ap.parse_args()
    work = a.work
    if a.cmd == "em":
        print(json.dumps(em_iteration(a.data, work / "ali", a.chunk_frames)))
        return
    sizes = [float(h) for h in a.hours.split(",")]
    in_memory = [float(h) for h in a.in_memory_hours.split(",") if h]
    t = time.time()
    make_corpus(max(sizes), work)
    print(f"corpus ready in {time.time() - t:.0f} s", flush=True)
    rows = []
    for kind in ["em"] + ([] if a.skip_dnn else ["dnn"]):
        for streamed in (True, False):
            for h in sizes if streamed else in_memory:
                d = subset(work, h)
                chunk = CHUNK_FRAMES if streamed else 0
                r = (em_child(d, chunk, work) if kind == "em"
                     else dnn_epoch(d, work / "ali", chunk, work / f"dnn_{d.name}_{chunk}"))
                r.update(kind=kind, hours=r["frames"] / FRAMES_PER_HOUR, streamed=streamed)
                rows.append(r)
                print(json.dumps(r), flush=True)
                write_table(rows, a.out)


def write_table(rows: list[dict], out: Path) -> None:
    import platform

    import torch

    lines = [
        "# Bounded memory: a synthetic corpus of 100+ hours",
        "",
        f"Generated {time.strftime('%Y-%m-%d')} by `bench/bench_stream.py` ({platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} cores, torch {torch.__version__}). AN4's training features "
        "replicated with noise (see the script's docstring); every row is one fresh process, its peak "
        "resident memory measured by the kernel. `streamed`: the trainers' `chunk_frames = "
        f"{CHUNK_FRAMES}` option (features read from the ark/scp archive a chunk at a time, the next "
        "chunk read while the network trains on this one); `in memory`: every frame loaded first, as "
        "without the option.",
        "",
        "| what | hours of frames | frames | features | seconds | seconds per hour | peak memory |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        what = ("EM iteration (AN4 tri1: 300 pdfs, 1,200 Gaussians, 39-dim)" if r["kind"] == "em"
                else "DNN epoch (143-2x256-300 ReLU, one process)")
        lines.append(f"| {what} | {r['hours']:.1f} | {r['frames']:,} | {'streamed' if r['streamed'] else 'in memory'} "
                     f"| {r['seconds']:.1f} | {r['seconds'] / r['hours']:.2f} | {r['peak_mb']:,.0f} MB |")
    lines += ["", *summary(rows)]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


def summary(rows: list[dict]) -> list[str]:
    """What the table shows, in figures computed from it."""
    out = []
    for kind, name in (("em", "EM iteration"), ("dnn", "DNN epoch")):
        st = sorted((r for r in rows if r["kind"] == kind and r["streamed"]), key=lambda r: r["hours"])
        mem = sorted((r for r in rows if r["kind"] == kind and not r["streamed"]), key=lambda r: r["hours"])
        if len(st) < 2:
            continue
        rates = [r["seconds"] / r["hours"] for r in st]
        grow = (st[-1]["peak_mb"] - st[0]["peak_mb"]) / (st[-1]["frames"] - st[0]["frames"]) * 1e6
        line = (f"- {name}, streamed: {min(rates):.2f}-{max(rates):.2f} s per hour from {st[0]['hours']:.0f} to "
                f"{st[-1]['hours']:.0f} hours (linear), peak memory {st[0]['peak_mb']:,.0f} -> {st[-1]['peak_mb']:,.0f} "
                f"MB for {st[-1]['hours'] / st[0]['hours']:.0f}x the frames: {grow:.1f} bytes per frame more, the "
                "frame labels (the alignment stays in memory as int32) and the per-utterance index")
        if len(mem) >= 2:
            per_frame = (mem[-1]["peak_mb"] - mem[0]["peak_mb"]) / (mem[-1]["frames"] - mem[0]["frames"]) * 1e6
            at_max = mem[0]["peak_mb"] + per_frame * (st[-1]["frames"] - mem[0]["frames"]) / 1e6
            line += (f". In memory the peak grows by {per_frame:.0f} bytes per frame: about {at_max / 1024:.1f} GB "
                     f"at {st[-1]['hours']:.0f} hours")
        out.append(line + ".")
    return out


if __name__ == "__main__":
    main()
