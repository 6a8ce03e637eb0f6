"""Causal multi-head self-attention with optional rotary positions.

The softmax attention itself has three implementations (:data:`AttentionKind`):

- ``einsum``: theseus's own. Heads-first ``[B, H, T, D]`` operands, the causal mask added
  as a constant bias, and a softmax whose max shift is a constant for differentiation. On
  XLA:CPU its forward and backward take about a quarter less time than ``xla``.
- ``xla``: ``jax.nn.dot_product_attention(implementation="xla")``.
- ``cudnn``: ``jax.nn.dot_product_attention(implementation="cudnn")``, the fused (flash)
  kernel of NVIDIA GPUs; it needs a GPU and a float16/bfloat16 compute dtype. Attention
  under a padding mask (batched generation) uses ``einsum`` instead.

``auto`` (the default) picks ``cudnn`` on an NVIDIA GPU with a half-precision compute dtype
and ``einsum`` everywhere else (:func:`resolve_attention`).
"""

from __future__ import annotations

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from theseus.model.axes import Axes
from theseus.model.layers.linear import Linear
from theseus.model.layers.rope import apply_rope, rope_angles

AttentionKind = Literal["auto", "einsum", "xla", "cudnn"]
ATTENTION_KINDS: tuple[str, ...] = ("auto", "einsum", "xla", "cudnn")
HALF_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def resolve_attention(kind: str, dtype: jnp.dtype, platform: str | None = None) -> str:
    """The implementation ``kind`` stands for: ``auto`` becomes ``cudnn`` or ``einsum``.

    ``platform`` defaults to JAX's default backend. ``cudnn`` asked for explicitly stays
    ``cudnn`` (JAX raises if the device or dtype cannot run it).
    """
    if kind != "auto":
        return kind
    platform = platform or jax.default_backend()
    return "cudnn" if platform == "gpu" and jnp.dtype(dtype) in HALF_DTYPES else "einsum"


class KVCache(nn.Module):
    """Keys and values of the tokens seen so far, in the ``cache`` collection.

    Holds ``key`` and ``value`` heads-first, ``[B, H, S, head_dim]`` (so attending over
    them needs no transpose), ``mask`` ``[B, S]`` (which columns hold real tokens) and
    ``index`` (the next free column, shared by all rows). ``S`` is the length of the input
    the cache was initialised with.
    """

    @nn.compact
    def __call__(
        self, k: jax.Array, v: jax.Array, mask: jax.Array | None
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Append ``k``/``v`` ``[B, T, H, head_dim]`` (``mask[B, T]``: real tokens, default all).

        Returns every cached key and value ``[B, H, S, head_dim]`` and which of them each
        of the ``T`` new queries may see, ``bool[B, 1, T, S]``.
        """
        batch, length = k.shape[:2]
        k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
        keys = self.variable("cache", "key", jnp.zeros, k.shape, k.dtype)
        values = self.variable("cache", "value", jnp.zeros, v.shape, v.dtype)
        valid = self.variable("cache", "mask", jnp.zeros, (batch, length), jnp.bool_)
        index = self.variable("cache", "index", lambda: jnp.zeros((), jnp.int32))
        start = index.value
        new = jnp.ones((batch, length), jnp.bool_) if mask is None else mask.astype(jnp.bool_)
        keys.value = jax.lax.dynamic_update_slice(keys.value, k.astype(keys.value.dtype), (0, 0, start, 0))
        values.value = jax.lax.dynamic_update_slice(values.value, v.astype(values.value.dtype), (0, 0, start, 0))
        valid.value = jax.lax.dynamic_update_slice(valid.value, new, (0, start))
        index.value = start + length
        columns = jnp.arange(keys.value.shape[2])
        return keys.value, values.value, visible_keys(valid.value, start + jnp.arange(length), columns)


class CausalSelfAttention(nn.Module):
    """Fused q/k/v projection → (RoPE) → causal softmax attention → output projection.

    The forward is split into :meth:`project` and :meth:`attend`; with ``decode=True``
    a :class:`KVCache` sits between them and keeps keys and values in the ``cache``
    collection for incremental generation.
    """

    features: int  # width of the residual stream (input and output)
    n_head: int
    head_dim: int
    rope_theta: float | None = 10000.0
    use_bias: bool = False
    init_std: float = 0.02
    out_std: float = 0.02
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    implementation: AttentionKind = "auto"

    def setup(self) -> None:
        self.qkv = Linear(
            self.n_head * self.head_dim, Axes.N_EMBD, Axes.N_ATTN, stack=3, use_bias=self.use_bias,
            init_std=self.init_std, dtype=self.dtype, param_dtype=self.param_dtype,
        )
        self.out = Linear(
            self.features, Axes.N_ATTN, Axes.N_EMBD, use_bias=self.use_bias, init_std=self.out_std,
            dtype=self.dtype, param_dtype=self.param_dtype,
        )
        self.kv_cache = KVCache()

    def project(self, x: jax.Array, positions: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Queries, keys and values ``[B, T, H, head_dim]`` for ``x[B, T, n_embd]`` at ``positions[..., T]``."""
        batch, length, _ = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.n_head, self.head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if self.rope_theta is not None:
            cos, sin = rope_angles(positions, self.head_dim, self.rope_theta)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return q, k, v

    def attend(self, q: jax.Array, k: jax.Array, v: jax.Array, allowed: jax.Array | None = None) -> jax.Array:
        """Attention of ``q`` over ``k``/``v``, merged back to ``[B, T, H * head_dim]``.

        ``allowed`` (bool, broadcastable to ``[B, H, T, S]``) says which keys each query
        sees; without it the attention is plainly causal. :attr:`implementation` chooses
        how it is computed (see the module docstring).
        """
        kind = resolve_attention(self.implementation, self.dtype)
        jax_kind: Literal["xla", "cudnn"] = "cudnn" if kind == "cudnn" else "xla"
        if kind == "einsum" or (kind == "cudnn" and allowed is not None):  # cuDNN's kernel: causal only
            y = softmax_attention(q, k, v, allowed)
        elif allowed is None:
            y = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=jax_kind)
        else:
            y = jax.nn.dot_product_attention(q, k, v, mask=allowed, implementation=jax_kind)
        return y.reshape(*y.shape[:2], -1)

    def __call__(
        self, x: jax.Array, positions: jax.Array, mask: jax.Array | None = None, decode: bool = False
    ) -> jax.Array:
        """Self-attention over ``x[B, T, n_embd]``; returns the same shape.

        ``mask[B, T]`` marks real tokens: padding (False) is never attended to. With
        ``decode`` the keys and values are appended to the ``cache`` collection and the
        queries attend over everything cached so far (see :class:`KVCache`).
        """
        q, k, v = self.project(x, positions)
        if decode:
            keys, values, allowed = self.kv_cache(k, v, mask)
            return self.out(attend_heads_first(q, keys, values, allowed))
        if mask is None:
            return self.out(self.attend(q, k, v))
        columns = jnp.arange(x.shape[1])
        return self.out(self.attend(q, k, v, visible_keys(mask.astype(jnp.bool_), columns, columns)))


def softmax_attention(q: jax.Array, k: jax.Array, v: jax.Array, allowed: jax.Array | None = None) -> jax.Array:
    """Softmax attention of ``q`` over ``k``/``v``, all ``[B, T, H, D]``; causal unless ``allowed`` is given.

    ``allowed`` is a bool mask broadcastable to ``[B, H, T, S]``; each query must see at
    least one key. Scores and softmax are float32; the result has ``v``'s dtype and shape.
    """
    length, keys, scale = q.shape[1], k.shape[1], q.shape[-1] ** -0.5
    scores = jnp.einsum("bthd,bshd->bhts", q, k, preferred_element_type=jnp.float32)
    if allowed is None:
        allowed = jnp.arange(keys)[None, :] <= jnp.arange(length)[:, None]
    scores = scores * scale + jnp.where(allowed, 0.0, jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("bhts,bshd->bthd", weights, v)


def attend_heads_first(q: jax.Array, keys: jax.Array, values: jax.Array, allowed: jax.Array) -> jax.Array:
    """Softmax attention of ``q[B, T, H, D]`` over heads-first ``keys``/``values`` ``[B, H, S, D]``.

    ``allowed`` is ``bool[B, 1, T, S]``; the result is merged to ``[B, T, H * D]``. The
    scores and the softmax are float32.
    """
    scale = q.shape[-1] ** -0.5
    scores = jnp.einsum("bthd,bhsd->bhts", q, keys, preferred_element_type=jnp.float32) * scale
    scores = jnp.where(allowed, scores, jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(scores, axis=-1).astype(values.dtype)
    y = jnp.einsum("bhts,bhsd->bthd", weights, values)
    return y.reshape(*y.shape[:2], -1)


def visible_keys(valid: jax.Array, query_columns: jax.Array, key_columns: jax.Array) -> jax.Array:
    """Which keys each query may attend to, ``bool[B, 1, T, S]``.

    A query sees the real (``valid[B, S]``) keys at or before its own column, and always
    itself, so a padding query has one key and its softmax stays finite.
    """
    causal = key_columns[None, :] <= query_columns[:, None]
    itself = key_columns[None, :] == query_columns[:, None]
    return ((valid[:, None, :] & causal[None]) | itself[None])[:, None]
