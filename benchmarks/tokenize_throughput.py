"""Tokenization throughput: the data/tokenize_variable_dataset job against the backend's encode_batch.

Both sides encode the same text, the ``shakespeare`` dataset (by default both editions,
77 texts, 9.3 MB). The baseline is the tokenizer's own ``encode_batch`` over all
documents in one call (the huggingface backend spreads it over every core itself). The
job side runs :class:`TokenizeVariableDatasetJob` end to end: reading the texts, the
worker processes, the train/val split, writing ``train.bin``/``val.bin`` with fsync, and
``meta.json``. Tokenizers: a 4096-id byte-level BPE trained here on the modern texts
(GPT-2-style, fully offline) and the byte backend.

Every measurement runs in its own subprocess, so peak memory (max RSS of the process and
of its worker processes) is its own, and the sides alternate for several rounds so that a
noisy shared machine hits both alike. Reported figures are medians; ``effective_cores``
says how much of two cores two busy processes actually got while it ran.

    python benchmarks/tokenize_throughput.py [--rounds 3] [--workers 0] [--edition both]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def train_tokenizer(folder: Path) -> Path:
    """A 4096-id byte-level BPE trained on the modern Shakespeare texts."""
    from theseus.data.datasets.shakespeare import Shakespeare
    from theseus.data.train_tokenizer import save_tokenizer_dir, train_bpe

    texts = Shakespeare()
    started = time.perf_counter()
    tokenizer = train_bpe(iter(texts), 4096, length=len(texts))
    save_tokenizer_dir(tokenizer, folder, {"dataset": "shakespeare", "vocab_size": 4096})
    print(
        f"trained a {tokenizer.get_vocab_size()}-id BPE in {time.perf_counter() - started:.1f} s", flush=True
    )
    return folder


def _spin(n: int = 5_000_000) -> float:
    started = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return time.perf_counter() - started


def effective_cores() -> float:
    """How many cores two busy processes really get (2.0 on an idle 2-core machine)."""
    import multiprocessing

    alone = _spin()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pair = pool.map(_spin, [5_000_000, 5_000_000])
    return round(2 * alone / max(pair), 2)


def tokenizer_overrides(backend: str, tokenizer_dir: str) -> list[str]:
    if backend == "byte":
        return ["tokenizer.backend=byte"]
    return ["tokenizer.backend=huggingface", f"tokenizer.path={tokenizer_dir}"]


def peak_rss_mb() -> dict[str, float]:
    """Max RSS of this process and of its largest finished child, in MiB (Linux: KiB units)."""
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": round(me, 1), "peak_worker_rss_mb": round(children, 1)}


def measure_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """The backend's own encode_batch over every document."""
    from theseus.config import configure, resolve
    from theseus.data.datasets.shakespeare import Shakespeare, ShakespeareConfig
    from theseus.data.tokenizer import TokenizerConfig, get_tokenizer

    cfg = resolve([TokenizerConfig], overrides=tokenizer_overrides(args.backend, args.tokenizer_dir))
    tokenizer = get_tokenizer(configure(TokenizerConfig, cfg))
    docs = list(Shakespeare(ShakespeareConfig(edition=args.edition)))
    started = time.perf_counter()
    ids = tokenizer.encode_batch(docs)
    seconds = time.perf_counter() - started
    return {"tokens": sum(len(x) for x in ids), "seconds": seconds, **peak_rss_mb()}


def measure_job(args: argparse.Namespace) -> dict[str, Any]:
    """The tokenization job, end to end, into a fresh directory."""
    from theseus.config import configuration, resolve
    from theseus.data.tokenize import TokenizeVariableDatasetJob
    from theseus.job import ExecutionSpec

    overrides = [
        "data.dataset=shakespeare",
        f"data.shakespeare.edition={args.edition}",
        f"data.workers={args.workers}",
        f"data.chunk_chars={args.chunk_chars}",
        *tokenizer_overrides(args.backend, args.tokenizer_dir),
    ]
    cfg = resolve(TokenizeVariableDatasetJob.config(), overrides=overrides)
    with tempfile.TemporaryDirectory() as out, configuration(cfg):
        job = TokenizeVariableDatasetJob(ExecutionSpec(name="bench", root=Path(out)))
        started = time.perf_counter()
        job.run()
        seconds = time.perf_counter() - started
        meta = json.loads((Path(out) / "data" / "shakespeare" / "meta.json").read_text())
    tokens = meta["train"]["tokens"] + meta["val"]["tokens"] - meta["documents"]  # without the added EOTs
    return {"tokens": tokens, "seconds": seconds, **peak_rss_mb()}


def run_worker(side: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        side,
        "--backend",
        args.backend,
        "--tokenizer-dir",
        args.tokenizer_dir,
        "--edition",
        args.edition,
        "--workers",
        str(args.workers),
        "--chunk-chars",
        str(args.chunk_chars),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{side} worker failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="job worker processes (0 = one per core)")
    parser.add_argument("--chunk-chars", type=int, default=250_000)
    parser.add_argument("--edition", default="both", choices=["modern", "folio", "both"])
    parser.add_argument("--backends", default="huggingface,byte")
    parser.add_argument("--worker", choices=["baseline", "job"], help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="byte", help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer-dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = measure_baseline(args) if args.worker == "baseline" else measure_job(args)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as scratch:
        args.tokenizer_dir = str(train_tokenizer(Path(scratch) / "bpe4096"))
        summary = []
        for backend in args.backends.split(","):
            args.backend = backend
            runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "job": []}
            for _ in range(args.rounds):
                for side in ("baseline", "job"):
                    runs[side].append(run_worker(side, args))
            rates = {side: statistics.median(r["tokens"] / r["seconds"] for r in runs[side]) for side in runs}
            row = {
                "backend": backend,
                "effective_cores": effective_cores(),
                "tokens": runs["job"][0]["tokens"],
                "encode_batch_tokens_per_s": round(rates["baseline"]),
                "job_tokens_per_s": round(rates["job"]),
                "ratio": round(rates["job"] / rates["baseline"], 3),
                "baseline_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["baseline"]),
                "job_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["job"]),
                "job_peak_worker_rss_mb": max(r["peak_worker_rss_mb"] for r in runs["job"]),
            }
            summary.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(
        f"{'backend':<12} {'tokens':>10} {'encode_batch tok/s':>19} {'job tok/s':>12} {'ratio':>6} {'job RSS MiB':>12}"
    )
    for row in summary:
        print(
            f"{row['backend']:<12} {row['tokens']:>10,} {row['encode_batch_tokens_per_s']:>19,} "
            f"{row['job_tokens_per_s']:>12,} {row['ratio']:>6.2f} "
            f"{row['job_peak_rss_mb']:>6.0f}+{row['job_peak_worker_rss_mb']:.0f}"
        )


if __name__ == "__main__":
    main()
