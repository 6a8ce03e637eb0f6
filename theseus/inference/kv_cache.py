"""Batched generation with a key/value cache: one prefill, then one token per step.

The prompts are padded on the **left**, so every row's newest token sits in the same
column and one cache index serves the whole batch. Each row's positions start at 0 at
its first real token and padding is masked out of attention, so a row's output is what
it would be if it were generated alone. Any :class:`~theseus.model.module.Module` that
implements the decoding hook :meth:`~theseus.model.module.Module.decoder` can generate::

    model.apply({"params": p, "cache": c}, idx, positions=pos, mask=mask, decode=True,
                mutable=["cache"]) -> (logits[B, T, V], {"cache": c'})

The hook may hand back a twin better suited to decoding: a scanned GPT decodes with its
layers unrolled. Two functions are
compiled: the prefill (per batch bucket and prompt bucket) and a decode loop that runs up
to ``chunk`` steps on the device before the host looks at the new tokens for stop
strings (per batch bucket and cache length). Batches are padded to a
power of two rows and prompts to a power of two columns, so different prompts reuse the
same compilations. :data:`TRACES` counts how often each was traced.

Sampling (temperature, top-k, top-p) is the reference generator's
(:mod:`theseus.inference.generate`), applied per row with a key derived from ``rng``, the
row's index and the step, so a row's sample does not depend on the other rows either.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from theseus.errors import TheseusError
from theseus.inference.generate import Generation, _check_arguments, _pick, _Rows, _truncate, bucket
from theseus.model.module import Module

TRACES: Counter[str] = Counter()
"""How many times ``prefill`` and ``decode`` were traced (compiled) in this process."""


@dataclass(frozen=True)
class _Sampler:
    """The static part of the sampling settings (each combination is its own compilation)."""

    greedy: bool
    top_k: int | None
    nucleus: bool

    def __call__(
        self, logits: jax.Array, row_keys: jax.Array, step: jax.Array, knobs: dict[str, jax.Array]
    ) -> jax.Array:
        """Next token ``int32[B]`` of each row from ``logits[B, V]``; ``step`` picks the row keys' step key.

        ``knobs`` holds the traced settings: ``temperature``, ``top_p`` and ``vocab`` (ids at
        or above it are never picked).
        """
        logits = logits.astype(jnp.float32)
        logits = jnp.where(jnp.arange(logits.shape[-1]) < knobs["vocab"], logits, -jnp.inf)
        if self.greedy:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)

        def one(row_logits: jax.Array, key: jax.Array) -> jax.Array:
            picked = _pick(
                row_logits[None], jax.random.fold_in(key, step), knobs["temperature"], knobs["top_p"],
                greedy=False, top_k=self.top_k, nucleus=self.nucleus,
            )
            return picked[0]

        return jax.vmap(one)(logits, row_keys)


def init_cache(model: nn.Module, batch: int, length: int) -> Any:
    """A zeroed ``cache`` collection for ``batch`` rows and ``length`` columns (works inside jit)."""
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((batch, length), jnp.int32), decode=True)
    )["cache"]
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


@functools.partial(jax.jit, static_argnames=("model", "sampler", "length"))
def _prefill(
    model: Module,
    sampler: _Sampler,
    params: Any,
    idx: jax.Array,
    mask: jax.Array,
    positions: jax.Array,
    row_keys: jax.Array,
    knobs: dict[str, jax.Array],
    *,
    length: int,
) -> tuple[Any, jax.Array]:
    TRACES["prefill"] += 1
    model, params = model.decoder(params)
    cache = init_cache(model, idx.shape[0], length)
    logits, variables = model.apply(
        {"params": params, "cache": cache}, idx, positions=positions, mask=mask, decode=True, mutable=["cache"]
    )
    token = sampler(logits[:, -1], row_keys, jnp.int32(0), knobs)
    return variables["cache"], token


@functools.partial(jax.jit, static_argnames=("model", "sampler", "chunk"), donate_argnames=("cache",))
def _decode(
    model: Module,
    sampler: _Sampler,
    params: Any,
    cache: Any,
    token: jax.Array,
    lengths: jax.Array,
    done: jax.Array,
    row_keys: jax.Array,
    generated: jax.Array,
    steps: jax.Array,
    knobs: dict[str, jax.Array],
    *,
    chunk: int,
) -> tuple[Any, jax.Array, jax.Array, jax.Array]:
    """Up to ``steps`` (<= ``chunk``) decode steps, stopping early once every row is done.

    Returns the cache, the new tokens ``[B, chunk]`` (the first ``count`` columns are
    filled), ``count`` and the last token of each row.
    """
    TRACES["decode"] += 1
    model, params = model.decoder(params)
    out = jnp.zeros((token.shape[0], chunk), jnp.int32)

    def running(carry: tuple[Any, ...]) -> jax.Array:
        i, _, _, done, _ = carry
        return (i < steps) & ~jnp.all(done)

    def step(carry: tuple[Any, ...]) -> tuple[Any, ...]:
        i, cache, token, done, out = carry
        # the token fed now is number generated+i-1 of its row, at position length + that
        position = (lengths + generated + i - 1)[:, None]
        logits, variables = model.apply(
            {"params": params, "cache": cache}, token[:, None], positions=position, decode=True,
            mutable=["cache"],
        )
        picked = sampler(logits[:, -1], row_keys, generated + i, knobs)
        picked = jnp.where(done, token, picked)
        done = done | (picked == knobs["eos"])
        return i + 1, variables["cache"], picked, done, out.at[:, i].set(picked)

    count, cache, token, _, out = jax.lax.while_loop(running, step, (jnp.int32(0), cache, token, done, out))
    return cache, out, count, token


def generate_cached(
    model: Module,
    params: Any,
    prompts_ids: Sequence[Sequence[int]],
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    stop_strings: Sequence[str] | None = None,
    tokenizer: Any = None,
    rng: jax.Array | None = None,
    pad_id: int = 0,
    max_length: int | None = None,
    chunk: int = 16,
) -> list[Generation]:
    """Continue each prompt by up to ``max_new_tokens`` tokens, with a key/value cache.

    ``model`` is a theseus Module implementing the decoding hook (see the module doc) and
    ``params`` its parameters. ``temperature=0`` is greedy; otherwise tokens are sampled
    after ``top_k`` and ``top_p`` (nucleus) filtering, from ``rng`` (default
    ``jax.random.key(0)``); a given ``rng`` gives the same output on every call. A row
    stops at ``eos_id`` or when its decoded output contains one of ``stop_strings`` (which
    needs ``tokenizer``). With a ``tokenizer``, ids it cannot decode (at or above its
    ``vocab_size``: a model's vocabulary is often padded) are never generated. Prompts
    longer than ``max_length - max_new_tokens`` (default ``max_length``:
    ``model.block_size``) lose their oldest tokens, with a warning. ``chunk`` is how many
    tokens are decoded on the device between looks at the output. Raises
    :class:`~theseus.errors.TheseusError` for an empty prompt or bad settings.
    """
    if max_length is None:
        max_length = model.block_size
        if max_length is None:
            raise TheseusError(f"generate: {type(model).__name__} has no block_size; pass max_length")
    _check_arguments(
        prompts_ids, max_new_tokens, temperature, top_k, top_p, stop_strings, tokenizer, max_length
    )
    if chunk < 1:
        raise TheseusError(f"generate: chunk must be >= 1, got {chunk}")
    rows = _truncate(prompts_ids, max_new_tokens, max_length)
    n = len(rows)
    batch = bucket(n, minimum=1)
    width = min(bucket(max(len(r) for r in rows)), max_length - max_new_tokens)
    length = min(bucket(width + max_new_tokens - 1), max_length)
    idx = np.full((batch, width), pad_id, dtype=np.int32)
    mask = np.zeros((batch, width), dtype=bool)
    for i, row in enumerate(rows):
        idx[i, width - len(row) :] = row
        mask[i, width - len(row) :] = True
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int32)
    lengths = mask.sum(axis=1).astype(np.int32)
    key = rng if rng is not None else jax.random.key(0)
    row_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(batch))
    sampler = _Sampler(temperature == 0.0, top_k, top_p is not None)
    vocab = int(tokenizer.vocab_size) if tokenizer is not None else np.iinfo(np.int32).max
    knobs = {
        "temperature": np.float32(max(temperature, 1e-6)),
        "top_p": np.float32(top_p if top_p is not None else 1.0),
        "vocab": np.int32(vocab),
        "eos": np.int32(-1 if eos_id is None else eos_id),
    }
    params = nn.meta.unbox(params)

    cache, token = _prefill(model, sampler, params, idx, mask, positions, row_keys, knobs, length=length)
    outputs = _Rows(n, eos_id, stop_strings, tokenizer)
    latest = np.asarray(token)
    for i in range(n):
        outputs.add(i, int(latest[i]))
    generated = 1
    while generated < max_new_tokens:
        done = np.array([i >= n or outputs.finished(i) for i in range(batch)])
        if done.all():
            break
        steps = min(chunk, max_new_tokens - generated)
        cache, out, count, token = _decode(
            model, sampler, params, cache, token, lengths, done, row_keys, np.int32(generated), np.int32(steps),
            knobs, chunk=chunk,
        )
        block = np.asarray(out)[:, : int(count)]
        for i in range(n):
            for t in block[i]:
                if outputs.finished(i):
                    break
                outputs.add(i, int(t))
        generated += int(count)
    return outputs.results()


__all__ = ["TRACES", "generate_cached", "init_cache"]
