"""Training throughput of theseus's GPT against a nanoGPT-style PyTorch model of the same shape.

Both sides train the same decoder (default: 4 layers, d_model 256, 4 heads, seq 256,
batch 8, vocab 8192, GELU MLP 4x, tied embeddings, learned positions) with AdamW and
gradient clipping, on a fixed batch. Each measurement runs in its own subprocess, so
peak memory (max RSS) is per framework, and the two sides alternate for several rounds
so that noise from a shared machine hits both alike. MFU uses the PaLM FLOPs per token
(``GPT.flops_per_token``) against the CPU's measured GEMM peak.

    python benchmarks/train_throughput.py [--rounds 3] [--steps 10] [--position rope]

The PyTorch side is skipped with a message when torch is not installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def shape_args(parser: argparse.ArgumentParser) -> None:
    """Model and batch shape options shared by both sides."""
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--position", choices=("learned", "rope"), default="learned")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation")


def fixed_batch(args: argparse.Namespace) -> tuple[Any, Any]:
    """The same ``[B, T]`` inputs and next-token targets for both sides."""
    import numpy as np

    tokens = np.random.default_rng(0).integers(0, args.vocab, (args.batch, args.seq + 1), dtype=np.int64)
    return tokens[:, :-1], tokens[:, 1:]


def cpu_seconds() -> float:
    """User plus system CPU time of this process (all threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_bytes() -> int:
    """Maximum resident set size of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --------------------------------------------------------------------------- JAX side


def run_jax(args: argparse.Namespace) -> dict[str, Any]:
    """Time theseus's jitted train step (``make_train_step`` + AdamW) on one device."""
    import jax
    import numpy as np

    from theseus.base.hardware import make_mesh
    from theseus.model.models import GPT
    from theseus.training.optimizers import build_optimizer
    from theseus.training.optimizers.adamw import AdamWConfig
    from theseus.training.sharding import shard_batch
    from theseus.training.step import init_train_state, make_train_step

    model = GPT(
        n_layers=args.layers,
        n_embd=args.d_model,
        n_head=args.heads,
        block_size=args.seq,
        vocab_size=args.vocab,
        mlp="gelu",
        position=args.position,
        tie_embeddings=True,
        dtype=args.dtype,
        scan_layers=args.scan,
    )
    mesh = make_mesh(1, jax.devices()[:1])
    tx = build_optimizer("adamw", 3e-4, AdamWConfig(weight_decay=0.1, grad_clip=1.0))
    state, shardings = init_train_state(model, tx, mesh, jax.random.key(0), (1, args.seq))
    step = make_train_step(model, tx, mesh=mesh, state_shardings=shardings)
    x, y = fixed_batch(args)
    batch = shard_batch({"x": x[None].astype(np.int32), "y": y[None].astype(np.int32)}, mesh)
    rng = jax.random.key(1)

    start = time.perf_counter()
    compiled = step.lower(state, batch, rng).compile()
    compile_s = time.perf_counter() - start
    times, cpu_times = [], []
    for i in range(args.warmup + args.steps):
        start, cpu_start = time.perf_counter(), cpu_seconds()
        state, metrics = compiled(state, batch, rng)
        loss = float(metrics["loss"])
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(cpu_seconds() - cpu_start)
    return {
        "side": "jax",
        "compile_s": compile_s,
        "step_s": statistics.median(times),
        "cpu_s": statistics.median(cpu_times),
        "best_step_s": min(times),
        "loss": loss,
        "peak_rss": peak_rss_bytes(),
        "flops_per_token": model.flops_per_token(args.seq),
        "params": model.num_params(state.params),
        "version": jax.__version__,
    }


# --------------------------------------------------------------------------- PyTorch side


def torch_model(args: argparse.Namespace) -> Any:
    """A nanoGPT-style module with the same architecture and initialisation as theseus's GPT."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    d, heads, layers = args.d_model, args.heads, args.layers
    head_dim = d // heads

    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        first, second = x[..., : head_dim // 2], x[..., head_dim // 2 :]
        return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(d, 3 * d, bias=False)
            self.out = nn.Linear(d, d, bias=False)

        def forward(self, x: torch.Tensor, angles: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
            b, t, _ = x.shape
            q, k, v = (z.view(b, t, heads, head_dim).transpose(1, 2) for z in self.qkv(x).split(d, dim=2))
            if angles is not None:
                q, k = rotate(q, *angles), rotate(k, *angles)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.out(y.transpose(1, 2).reshape(b, t, d))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn_norm = nn.LayerNorm(d, bias=False)
            self.attn = Attention()
            self.mlp_norm = nn.LayerNorm(d, bias=False)
            self.up = nn.Linear(d, 4 * d, bias=False)
            self.down = nn.Linear(4 * d, d, bias=False)

        def forward(self, x: torch.Tensor, angles: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
            x = x + self.attn(self.attn_norm(x), angles)
            return x + self.down(F.gelu(self.up(self.mlp_norm(x)), approximate="tanh"))

    class TorchGPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens = nn.Embedding(args.vocab, d)
            self.positions = nn.Embedding(args.seq, d) if args.position == "learned" else None
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.final_norm = nn.LayerNorm(d, bias=False)
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    std = (
                        0.02 / math.sqrt(2 * layers) if name.endswith(("out.weight", "down.weight")) else 0.02
                    )
                    nn.init.normal_(p, std=std)

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            t = idx.shape[1]
            x = self.tokens(idx)
            angles = None
            if self.positions is not None:
                x = x + self.positions(torch.arange(t))
            else:
                inv_freq = 10000.0 ** (-torch.arange(0, head_dim // 2, dtype=torch.float32) * 2 / head_dim)
                phase = torch.arange(t, dtype=torch.float32)[:, None] * inv_freq
                angles = (phase.cos(), phase.sin())
            for block in self.blocks:
                x = block(x, angles)
            return self.final_norm(x) @ self.tokens.weight.T

    return TorchGPT()


def run_torch(args: argparse.Namespace) -> dict[str, Any]:
    """Time an eager PyTorch train step (forward, backward, clip, AdamW) on the CPU."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(0)
    model = torch_model(args)
    decay = [
        p for n, p in model.named_parameters() if p.dim() >= 2 and "tokens" not in n and "positions" not in n
    ]
    rest = [
        p
        for n, p in model.named_parameters()
        if not (p.dim() >= 2 and "tokens" not in n and "positions" not in n)
    ]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=3e-4,
        betas=(0.9, 0.95),
    )
    x, y = (torch.from_numpy(a) for a in fixed_batch(args))

    def step() -> float:
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, args.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return float(loss)

    start = time.perf_counter()
    loss = step()
    first_s = time.perf_counter() - start
    times, cpu_times = [], []
    for i in range(args.warmup + args.steps - 1):
        start, cpu_start = time.perf_counter(), cpu_seconds()
        loss = step()
        if i >= args.warmup - 1:
            times.append(time.perf_counter() - start)
            cpu_times.append(cpu_seconds() - cpu_start)
    return {
        "side": "torch",
        "compile_s": 0.0,
        "first_step_s": first_s,
        "step_s": statistics.median(times),
        "cpu_s": statistics.median(cpu_times),
        "best_step_s": min(times),
        "loss": loss,
        "peak_rss": peak_rss_bytes(),
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "version": torch.__version__,
    }


# --------------------------------------------------------------------------- driver


def child_env() -> dict[str, str]:
    """The environment for a measurement: one CPU device for JAX, the repo importable."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join(flags)
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def measure(side: str, argv: list[str]) -> dict[str, Any]:
    """Run one side in a fresh subprocess and return its JSON report."""
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", side, *argv], capture_output=True, text=True, env=child_env()
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(
    runs: list[dict[str, Any]], args: argparse.Namespace, peak: float, flops_per_token: float
) -> None:
    """Print per-side medians, the fastest single step, and the JAX/PyTorch ratios.

    "tokens/s" is the median over rounds of each round's median step; "best tok/s" the
    fastest single step seen, the better estimate of an idle machine's speed.
    """
    tokens = args.batch * args.seq
    print(
        f"\npeak (measured {args.dtype} GEMM, median of rounds): {peak / 1e9:.0f} GFLOP/s; "
        f"FLOPs/token {flops_per_token / 1e6:.1f} M (6N + 12LHQT)"
    )
    header = ["side", "tokens/s", "best tok/s", "step ms", "CPU ms", "MFU", "best MFU", "compile s", "RSS MB"]
    print(f"{header[0]:6}" + "".join(f"{h:>11}" for h in header[1:]))
    per_side: dict[str, list[dict[str, Any]]] = {}
    for side in ("jax", "torch"):
        mine = per_side[side] = [r for r in runs if r["side"] == side]
        if not mine:
            continue
        step_s = statistics.median(r["step_s"] for r in mine)
        rate, best = tokens / step_s, tokens / min(r["best_step_s"] for r in mine)
        cpu_ms = statistics.median(r["cpu_s"] for r in mine) * 1e3
        row = [
            f"{rate:.0f}", f"{best:.0f}", f"{step_s * 1e3:.0f}", f"{cpu_ms:.0f}",
            f"{rate * flops_per_token / peak:.1%}", f"{best * flops_per_token / peak:.1%}",
            f"{statistics.median(r['compile_s'] for r in mine):.2f}", f"{max(r['peak_rss'] for r in mine) / 2**20:.0f}",
        ]
        print(f"{side:6}" + "".join(f"{v:>11}" for v in row) + f"   (final loss {mine[-1]['loss']:.3f})")
    if per_side.get("jax") and per_side.get("torch"):
        for label, key in (("median step", "step_s"), ("best step", "best_step_s"), ("CPU time", "cpu_s")):
            ratios = [t[key] / j[key] for j, t in zip(per_side["jax"], per_side["torch"])]
            print(
                f"JAX / PyTorch speed by {label}, per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
                f"median {statistics.median(ratios):.2f}"
            )


def main() -> None:
    """Alternate JAX and PyTorch measurements for ``--rounds`` rounds and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shape_args(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-scan", dest="scan", action="store_false", help="unrolled layers on the JAX side"
    )
    parser.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_jax(args) if args.worker == "jax" else run_torch(args)))
        return

    argv = [
        f"--layers={args.layers}",
        f"--d-model={args.d_model}",
        f"--heads={args.heads}",
        f"--seq={args.seq}",
        f"--batch={args.batch}",
        f"--vocab={args.vocab}",
        f"--position={args.position}",
        f"--dtype={args.dtype}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        *([] if args.scan else ["--no-scan"]),
    ]
    sides = ["jax"]
    if importlib.util.find_spec("torch") is None:
        print("torch is not installed: skipping the PyTorch side (pip install torch==2.13.0)")
    else:
        sides.append("torch")
    runs: list[dict[str, Any]] = []
    peaks = []
    from theseus.base.hardware import measure_gemm_flops

    for round_index in range(args.rounds):
        peaks.append(measure_gemm_flops.__wrapped__(args.dtype))
        for side in sides if round_index % 2 == 0 else reversed(sides):
            run = measure(side, argv)
            runs.append(run)
            print(
                f"round {round_index + 1} {side:5}: {args.batch * args.seq / run['step_s']:7.0f} tokens/s, "
                f"step {run['step_s'] * 1e3:.0f} ms (CPU {run['cpu_s'] * 1e3:.0f} ms), "
                f"compile {run['compile_s']:.2f} s, "
                f"RSS {run['peak_rss'] / 2**20:.0f} MB, loss {run['loss']:.3f}",
                flush=True,
            )
    flops_per_token = next(r["flops_per_token"] for r in runs if r["side"] == "jax")
    summarise(runs, args, statistics.median(peaks), flops_per_token)


if __name__ == "__main__":
    main()
