"""Reference text generation by full recomputation: exact, model-agnostic, slow.

Every step runs the model over the whole (padded) token buffer and reads the logits at
each row's last position; nothing is cached. That makes it a ground truth for faster
generators (a KV cache) and a generator for any ``logits_fn``, whatever the model.

Rows are padded on the right by default: a causal model never looks at positions after
the one it predicts from, so each row's output is exactly what it would be alone, with
no attention mask needed. ``padding_side="left"`` right-aligns the prompts instead
(every row then writes into the same column, as a cache-based generator does), at the
price that the model sees the padding tokens in front of shorter prompts.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from theseus.errors import TheseusError

FinishReason = Literal["eos", "stop", "length"]
PaddingSide = Literal["right", "left"]

_NO_PARAMS: Any = object()


@dataclass(frozen=True)
class Generation:
    """One row's output.

    ``tokens`` are the generated ids (the EOS id excluded); ``text`` is their decoding cut
    before the first stop string (``None`` without a tokenizer); ``finish_reason`` says
    why the row stopped: ``eos``, ``stop`` (a stop string) or ``length``.
    """

    tokens: list[int]
    text: str | None
    finish_reason: FinishReason


@dataclass(frozen=True)
class _IdxOnly:
    """Adapts ``logits_fn(idx)`` to the ``(params, idx)`` convention (hashable, so jit caches it)."""

    fn: Callable[[jax.Array], jax.Array]

    def __call__(self, params: Any, idx: jax.Array) -> jax.Array:
        return self.fn(idx)


def bucket(n: int, minimum: int = 8) -> int:
    """The smallest power of two that is at least ``n`` and ``minimum``."""
    size = minimum
    while size < n:
        size *= 2
    return size


@functools.partial(jax.jit, static_argnums=0)
def _logits_at(
    logits_fn: Callable[[Any, jax.Array], jax.Array], params: Any, idx: jax.Array, pos: jax.Array, vocab: jax.Array
) -> jax.Array:
    """Each row's logits at ``pos``; ids at or above ``vocab`` (which no tokenizer could decode) get ``-inf``."""
    logits = logits_fn(params, idx)
    rows = jnp.arange(idx.shape[0])
    picked = logits[rows, pos].astype(jnp.float32)
    return jnp.where(jnp.arange(picked.shape[-1]) < vocab, picked, -jnp.inf)


@functools.partial(jax.jit, static_argnames=("greedy", "top_k", "nucleus"))
def _pick(
    logits: jax.Array,
    key: jax.Array,
    temperature: jax.Array,
    top_p: jax.Array,
    *,
    greedy: bool,
    top_k: int | None,
    nucleus: bool,
) -> jax.Array:
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    if top_k is not None:
        kth = jax.lax.top_k(logits, min(top_k, logits.shape[-1]))[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if nucleus:
        order = jnp.argsort(-logits, axis=-1)
        sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
        probs = jax.nn.softmax(sorted_logits, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        drop_sorted = mass_before >= top_p  # the most likely token always survives
        drop = jnp.zeros_like(drop_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(drop_sorted)
        logits = jnp.where(drop, -jnp.inf, logits)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def _check_arguments(
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    stop_strings: Sequence[str] | None,
    tokenizer: Any,
    max_length: int | None,
) -> None:
    if not prompts:
        raise TheseusError("generate: no prompts given")
    if max_new_tokens < 1:
        raise TheseusError(f"generate: max_new_tokens must be at least 1, got {max_new_tokens}")
    if max_length is not None and max_new_tokens >= max_length:
        raise TheseusError(
            f"generate: max_new_tokens={max_new_tokens} leaves no room for a prompt in a "
            f"context of {max_length} tokens"
        )
    for i, prompt in enumerate(prompts):
        if len(prompt) == 0:
            raise TheseusError(
                f"generate: prompt {i} is empty after tokenization; give it at least one token"
            )
    if not temperature >= 0 or math.isinf(temperature):  # NaN fails the comparison
        raise TheseusError(f"generate: temperature must be a number >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise TheseusError(f"generate: top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise TheseusError(f"generate: top_p must be in (0, 1], got {top_p}")
    if stop_strings and tokenizer is None:
        raise TheseusError("generate: stop_strings need a tokenizer to decode the output")


def _truncate(
    prompts: Sequence[Sequence[int]], max_new_tokens: int, max_length: int | None
) -> list[list[int]]:
    rows = [list(p) for p in prompts]
    if max_length is None:
        return rows
    keep = max_length - max_new_tokens
    cut = [i for i, row in enumerate(rows) if len(row) > keep]
    if cut:
        warnings.warn(
            f"generate: {len(cut)} prompt(s) longer than {keep} tokens (context {max_length} minus "
            f"{max_new_tokens} new tokens) lost their oldest tokens (first: prompt {cut[0]})",
            stacklevel=3,
        )
    return [row[-keep:] if len(row) > keep else row for row in rows]


def _first_stop(text: str, stop_strings: Sequence[str]) -> int | None:
    hits = [text.find(s) for s in stop_strings if s and s in text]
    return min(hits) if hits else None


class _Rows:
    """Each row's generated tokens and why it stopped, fed one sampled token at a time."""

    def __init__(self, n: int, eos_id: int | None, stop_strings: Sequence[str] | None, tokenizer: Any) -> None:
        self.eos_id = eos_id
        self.stops = [s for s in (stop_strings or []) if s]
        self.tokenizer = tokenizer
        self.tokens: list[list[int]] = [[] for _ in range(n)]
        self.reason: list[FinishReason | None] = [None] * n
        self.texts: list[str | None] = [None] * n

    def add(self, i: int, token: int) -> bool:
        """Give row ``i`` its next token; True when the row keeps it (not finished, not EOS)."""
        if self.reason[i] is not None:
            return False
        if self.eos_id is not None and token == self.eos_id:
            self.reason[i] = "eos"
            return False
        self.tokens[i].append(token)
        if self.stops:
            text = self.tokenizer.decode(self.tokens[i])
            cut = _first_stop(text, self.stops)
            if cut is not None:
                self.reason[i], self.texts[i] = "stop", text[:cut]
        return True

    def finished(self, i: int) -> bool:
        """Whether row ``i`` stopped at EOS or a stop string."""
        return self.reason[i] is not None

    def results(self) -> list[Generation]:
        """One :class:`Generation` per row; rows still running finished by ``length``."""
        out = []
        for i, tokens in enumerate(self.tokens):
            text = self.texts[i]
            if text is None and self.tokenizer is not None:
                text = self.tokenizer.decode(tokens)
            out.append(Generation(tokens, text, self.reason[i] or "length"))
        return out


def generate(
    logits_fn: Callable[..., jax.Array],
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
    params: Any = _NO_PARAMS,
    max_length: int | None = None,
    padding_side: PaddingSide = "right",
) -> list[Generation]:
    """Continue each prompt by up to ``max_new_tokens`` tokens, recomputing the model every step.

    ``logits_fn(idx) -> logits[B, T, V]``, or ``logits_fn(params, idx)`` when ``params`` is
    given (pass a jitted function or a hashable callable: it is compiled once per buffer
    shape). ``temperature=0`` is greedy; otherwise tokens are sampled after ``top_k`` and
    ``top_p`` (nucleus) filtering, from ``rng`` (default ``jax.random.key(0)``). A row stops
    at ``eos_id`` or when its decoded output contains one of ``stop_strings`` (which needs
    ``tokenizer``). With a ``tokenizer``, ids it cannot decode (at or above its
    ``vocab_size``: a model's vocabulary is often padded) are never generated. Prompts longer than ``max_length - max_new_tokens`` lose their oldest
    tokens, with a warning. Raises :class:`TheseusError` for an empty prompt or bad settings.
    """
    _check_arguments(
        prompts_ids, max_new_tokens, temperature, top_k, top_p, stop_strings, tokenizer, max_length
    )
    fn = _IdxOnly(logits_fn) if params is _NO_PARAMS else logits_fn
    params = None if params is _NO_PARAMS else params
    rows = _truncate(prompts_ids, max_new_tokens, max_length)
    longest = max(len(r) for r in rows)
    width = bucket(longest + max_new_tokens)
    if max_length is not None:
        width = min(width, max_length)
    n = len(rows)
    buf = np.full((n, width), pad_id, dtype=np.int32)
    end = np.zeros(n, dtype=np.int32)  # next free column of each row
    for i, row in enumerate(rows):
        start = 0 if padding_side == "right" else longest - len(row)
        buf[i, start : start + len(row)] = row
        end[i] = start + len(row)
    key = rng if rng is not None else jax.random.key(0)
    outputs = _Rows(n, eos_id, stop_strings, tokenizer)
    vocab = np.int32(tokenizer.vocab_size if tokenizer is not None else np.iinfo(np.int32).max)
    for _ in range(max_new_tokens):
        key, step_key = jax.random.split(key)
        logits = _logits_at(fn, params, buf, end - 1, vocab)
        picked = np.asarray(
            _pick(
                logits,
                step_key,
                np.float32(max(temperature, 1e-6)),
                np.float32(top_p if top_p is not None else 1.0),
                greedy=temperature == 0.0,
                top_k=top_k,
                nucleus=top_p is not None,
            )
        )
        for i in range(n):
            if outputs.add(i, int(picked[i])):
                buf[i, end[i]] = picked[i]
                end[i] += 1
        if all(outputs.finished(i) for i in range(n)):
            break
    return outputs.results()
