"""Generation throughput: the KV-cache generator against full recomputation, same prompts, same run.

A randomly initialised GPT (default: 4 layers, d_model 128, 4 heads, block 256, vocab
320) continues a batch of prompts of different lengths (default: 8 prompts of 16-64
tokens) by a fixed number of tokens (default 128) greedily, with no EOS, so both sides
produce exactly ``batch x new`` tokens. The cached side is
:func:`theseus.inference.generate_cached` (one prefill, decode loops on the device); the
reference is :func:`theseus.inference.generate` (the whole buffer through the model at
every step). Both are compiled before timing (a warm-up call each); the timed calls
alternate between the sides for several rounds so that noise from a shared machine hits
both alike, and the reported figures are medians. The script also checks that both sides
produced the same tokens.

    python benchmarks/generation_throughput.py [--rounds 3] [--new 128] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    """Parse the arguments, time both generators, print tokens/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new", type=int, default=128, help="tokens generated per prompt")
    parser.add_argument("--prompt-min", type=int, default=16)
    parser.add_argument("--prompt-max", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np

    from theseus.inference import generate, generate_cached
    from theseus.model.models import GPT

    model = GPT(
        n_layers=args.layers, n_embd=args.d_model, n_head=args.heads, block_size=args.block,
        vocab_size=args.vocab, init_std=0.1,
    )
    params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"])
    rng = np.random.default_rng(0)
    lengths = rng.integers(args.prompt_min, args.prompt_max + 1, args.batch)
    prompts = [rng.integers(0, args.vocab, int(n)).tolist() for n in lengths]
    forward = jax.jit(lambda p, idx: model.apply({"params": p}, idx))

    def cached() -> list[list[int]]:
        return [g.tokens for g in generate_cached(model, params, prompts, args.new)]

    def recomputed() -> list[list[int]]:
        out = generate(forward, prompts, args.new, params=params, max_length=args.block)
        return [g.tokens for g in out]

    sides = {"kv_cache": cached, "recompute": recomputed}
    compile_s: dict[str, float] = {}
    tokens: dict[str, list[list[int]]] = {}
    for name, fn in sides.items():
        started = time.perf_counter()
        tokens[name] = fn()
        compile_s[name] = time.perf_counter() - started
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, fn in sides.items():
            started = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - started)
    produced = args.batch * args.new
    rates = {name: produced / statistics.median(s) for name, s in seconds.items()}
    report = {
        "model": f"GPT {args.layers} layers, d {args.d_model}, {args.heads} heads, block {args.block}, vocab {args.vocab}",
        "batch": args.batch,
        "prompt_lengths": [int(n) for n in lengths],
        "new_tokens": args.new,
        "device": str(jax.devices()[0].device_kind),
        "first_call_s (compile included)": {k: round(v, 2) for k, v in compile_s.items()},
        "median_s": {k: round(statistics.median(v), 3) for k, v in seconds.items()},
        "tokens_per_s": {k: round(v, 1) for k, v in rates.items()},
        "speedup (kv_cache / recompute)": round(rates["kv_cache"] / rates["recompute"], 2),
        "same_tokens": tokens["kv_cache"] == tokens["recompute"],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
