"""Hugging Face checkpoints: theseus's native JAX model against transformers' PyTorch model, side by side.

For each size (``tiny``; ``100m``: a Llama-shaped checkpoint of ~100M parameters with random
weights) a checkpoint is made once with transformers, then the two sides alternate, each
in a fresh subprocess on one CPU device (float32):

- **load**: folder → parameters ready (theseus: ``HFCompat.pretrained_params``;
  transformers: ``AutoModelForCausalLM.from_pretrained``);
- **forward**: tokens/s of the logits of a ``[batch, seq]`` batch (after compilation/warm-up);
- **train step**: tokens/s of forward + backward + AdamW (theseus: its jitted ``make_train_step``);
- **RSS**: the process's peak after loading, and its peak overall (compilation included).

    python benchmarks/hf_throughput.py [--sizes tiny 100m] [--rounds 2] [--steps 3]

The machine's load average before and after is printed: compare ratios taken in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512, seq=64, batch=8),
    "100m": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                 num_key_value_heads=4, vocab_size=16384, seq=256, batch=4),
}


def make_checkpoint(size: str, folder: Path) -> None:
    """A random Llama checkpoint of ``size`` saved with ``save_pretrained`` (float32)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = {k: v for k, v in SIZES[size].items() if k not in ("seq", "batch")}
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(max_position_embeddings=2048, **shape)).save_pretrained(folder)


def batch(size: str) -> Any:
    import numpy as np

    shape = SIZES[size]
    return np.random.default_rng(0).integers(0, shape["vocab_size"], (shape["batch"], shape["seq"] + 1))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Any, steps: int) -> tuple[float, float]:
    """(first call seconds, median of ``steps`` later calls)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def run_jax(folder: Path, size: str, steps: int) -> dict[str, Any]:
    """theseus: load into the sharded layout (one device), jitted forward, jitted train step."""
    import jax
    import numpy as np
    import optax

    from theseus.base.hardware import make_mesh
    from theseus.model.huggingface import HFCompat
    from theseus.training.sharding import shard_batch
    from theseus.training.step import TrainState, make_train_step, train_state_shardings

    tokens = batch(size).astype(np.int32)
    model = HFCompat(id=str(folder), block_size=SIZES[size]["seq"])
    mesh = make_mesh(1, jax.devices()[:1])
    tx = optax.adamw(1e-4)
    start = time.perf_counter()
    shardings = train_state_shardings(model, tx, mesh, (1, 8))
    params = jax.block_until_ready(model.pretrained_params(shardings.params))
    load_s, load_rss = time.perf_counter() - start, peak_rss_mb()
    n_params = model.num_params(params)

    forward = jax.jit(lambda p, x: model.apply({"params": p}, x))
    x = jax.device_put(tokens[:, :-1])
    forward_first, forward_s = timed(lambda: jax.block_until_ready(forward(params, x)), steps)

    # as the trainer does: the parameters move into the state, each step donates the previous one
    state = jax.jit(lambda p: TrainState.create(p, tx), out_shardings=shardings, donate_argnums=0)(params)
    step = make_train_step(model, tx, mesh=mesh, state_shardings=shardings)
    data = shard_batch({"x": tokens[None, :, :-1], "y": tokens[None, :, 1:]}, mesh)
    rng = jax.random.key(0)

    def train() -> None:
        nonlocal state
        state, metrics = step(state, data, rng)
        jax.block_until_ready(metrics)

    train_first, train_s = timed(train, steps)
    return {"load_s": load_s, "load_rss_mb": load_rss, "forward_s": forward_s, "forward_first_s": forward_first,
            "train_s": train_s, "train_first_s": train_first, "params": n_params}


def run_torch(folder: Path, size: str, steps: int) -> dict[str, Any]:
    """transformers: from_pretrained, forward under no_grad, forward + backward + AdamW."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.models.llama import modeling_llama  # noqa: F401  (imported before the clock starts)

    tokens = torch.tensor(batch(size), dtype=torch.long)
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    load_s, load_rss = time.perf_counter() - start, peak_rss_mb()
    x, y = tokens[:, :-1], tokens[:, 1:]

    def forward() -> None:
        with torch.no_grad():
            model(input_ids=x).logits.sum().item()

    model.eval()
    forward_first, forward_s = timed(forward, steps)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train() -> None:
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    train_first, train_s = timed(train, steps)
    return {"load_s": load_s, "load_rss_mb": load_rss, "forward_s": forward_s, "forward_first_s": forward_first,
            "train_s": train_s, "train_first_s": train_first, "params": sum(p.numel() for p in model.parameters())}


def measure(side: str, folder: Path, size: str, steps: int) -> dict[str, Any]:
    """One side in a fresh process (one CPU device for JAX)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", PYTHONPATH=str(REPO))
    argv = [sys.executable, __file__, "--worker", side, "--folder", str(folder), "--sizes", size, "--steps", str(steps)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(size: str, runs: dict[str, list[dict[str, Any]]]) -> None:
    """Medians over rounds per side, and the theseus/transformers ratios."""
    shape = SIZES[size]
    tokens = shape["batch"] * shape["seq"]
    print(f"\n{size}: {runs['jax'][0]['params'] / 1e6:.1f}M parameters, batch {shape['batch']} x {shape['seq']} tokens")
    print(f"{'side':14}{'load s':>9}{'fwd tok/s':>11}{'train tok/s':>13}{'1st fwd s':>11}{'1st train s':>13}"
          f"{'load RSS MB':>13}{'peak RSS MB':>13}")
    medians: dict[str, dict[str, float]] = {}
    for side, label in (("jax", "theseus (JAX)"), ("torch", "transformers")):
        rows = runs[side]
        m = {key: statistics.median(r[key] for r in rows) for key in rows[0] if key != "params"}
        medians[side] = m
        print(f"{label:14}{m['load_s']:>9.2f}{tokens / m['forward_s']:>11.0f}{tokens / m['train_s']:>13.0f}"
              f"{m['forward_first_s']:>11.2f}{m['train_first_s']:>13.2f}{m['load_rss_mb']:>13.0f}{m['rss_mb']:>13.0f}")
    j, t = medians["jax"], medians["torch"]
    print(f"theseus / transformers: load {t['load_s'] / j['load_s']:.2f}x faster, forward "
          f"{t['forward_s'] / j['forward_s']:.2f}x, train step {t['train_s'] / j['train_s']:.2f}x, "
          f"peak RSS {j['rss_mb'] / t['rss_mb']:.2f}x")


def main() -> None:
    """Make the checkpoints, alternate the two sides for ``--rounds`` rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed calls after the first")
    parser.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = (run_jax if args.worker == "jax" else run_torch)(args.folder, args.sizes[0], args.steps)
        print(json.dumps({**result, "rss_mb": peak_rss_mb()}))
        return
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory(prefix="theseus-hf-bench-") as tmp:
        for size in args.sizes:
            folder = Path(tmp) / size
            make_checkpoint(size, folder)
            runs: dict[str, list[dict[str, Any]]] = {"jax": [], "torch": []}
            for i in range(args.rounds):
                order = ("jax", "torch") if i % 2 == 0 else ("torch", "jax")
                for side in order:
                    runs[side].append(measure(side, folder, size, args.steps))
            report(size, runs)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
