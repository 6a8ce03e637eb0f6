"""Building blocks with the parameter names and layouts of Hugging Face checkpoints.

Weights keep the checkpoint's layout (``[out, in]`` for ``nn.Linear``, ``[in, out]`` for
GPT-2's ``Conv1D``), so loading and exporting copy tensors as they are. Each parameter gets
its logical axes from :class:`Settings.axes`, called with the parameter's full dotted name
(``model.layers.0.self_attn.q_proj.weight``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from theseus.model.axes import Axes
from theseus.model.hf.architecture import Architecture, Rope
from theseus.model.layers.attention import KVCache, visible_keys
from theseus.model.layers.linear import logical_param
from theseus.model.layers.rope import apply_rope

AxesFn = Callable[[str, int], tuple[str | None, ...]]
HIDDEN = (Axes.BATCH.value, Axes.BLOCK_SIZE.value, Axes.N_EMBD.value)


@dataclass(frozen=True)
class Settings:
    """What every block needs: the architecture, the axes of each parameter name, dtypes, decoding."""

    arch: Architecture
    axes: AxesFn
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    decode: bool = False


def hf_param(module: nn.Module, name: str, init: Callable[..., Any], shape: tuple[int, ...], s: Settings) -> jax.Array:
    """Create (or read) parameter ``name`` of ``module``, with the logical axes its dotted name maps to."""
    dotted = ".".join((*module.scope.path, name))  # type: ignore[union-attr]
    return logical_param(module, name, init, shape, s.param_dtype, s.axes(dotted, len(shape)))


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation function a config names."""
    if name in ("silu", "swish"):
        return jax.nn.silu
    if name == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=False)
    if name == "relu":
        return jax.nn.relu
    return lambda x: jax.nn.gelu(x, approximate=True)  # gelu_new, gelu_pytorch_tanh, gelu_fast


class HFLinear(nn.Module):
    """``y = x Wᵀ + b`` with ``weight [out, in]``; ``conv1d`` stores ``weight [in, out]`` (GPT-2)."""

    features: int
    s: Settings
    use_bias: bool = False
    conv1d: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Project the last axis of ``x`` to :attr:`features`."""
        n_in = x.shape[-1]
        shape = (n_in, self.features) if self.conv1d else (self.features, n_in)
        init = nn.initializers.normal(self.s.arch.initializer_range)
        weight = hf_param(self, "weight", init, shape, self.s).astype(self.s.dtype)
        rows = x.reshape(-1, n_in).astype(self.s.dtype)
        contract = 0 if self.conv1d else 1
        y = jax.lax.dot_general(rows, weight, (((1,), (contract,)), ((), ())))
        if self.use_bias:
            y = y + hf_param(self, "bias", nn.initializers.zeros_init(), (self.features,), self.s).astype(self.s.dtype)
        return y.reshape(*x.shape[:-1], self.features)


class HFNorm(nn.Module):
    """RMSNorm (``weight``) or LayerNorm (``weight``, ``bias``), normalised in float32."""

    s: Settings
    kind: Literal["rms", "layer"] = "rms"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Normalise the last axis of ``x``."""
        width = (x.shape[-1],)
        x32 = x.astype(jnp.float32)
        if self.kind == "layer":
            x32 = x32 - jnp.mean(x32, axis=-1, keepdims=True)
        y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.s.arch.norm_eps)
        y = y * hf_param(self, "weight", nn.initializers.ones_init(), width, self.s).astype(jnp.float32)
        if self.kind == "layer":
            y = y + hf_param(self, "bias", nn.initializers.zeros_init(), width, self.s).astype(jnp.float32)
        return y.astype(self.s.dtype)


class HFEmbedding(nn.Module):
    """A ``weight [num, width]`` table read by id (a tied head reads ``weight`` through :func:`logits_of`)."""

    num: int
    s: Settings

    def setup(self) -> None:
        init = nn.initializers.normal(self.s.arch.initializer_range)
        self.weight = hf_param(self, "weight", init, (self.num, self.s.arch.hidden_size), self.s)

    def __call__(self, ids: jax.Array) -> jax.Array:
        """Rows ``ids[...]`` of the table."""
        return jnp.take(self.weight, ids, axis=0).astype(self.s.dtype)


def logits_of(x: jax.Array, table: jax.Array) -> jax.Array:
    """``x[..., D] @ table[V, D]ᵀ`` in float32, shape ``[..., V]``."""
    rows = x.reshape(-1, x.shape[-1]).astype(table.dtype)
    scores = jnp.einsum("nd,vd->nv", rows, table, preferred_element_type=jnp.float32)
    return scores.reshape(*x.shape[:-1], table.shape[0])


def rotate(x: jax.Array, positions: jax.Array, rope: Rope) -> jax.Array:
    """Apply rotary positions to the leading ``rope.rotary_dim`` dims of ``x[B, T, H, D]``."""
    inv_freq = jnp.asarray(rope.inv_freq, jnp.float32)
    angles = positions.astype(jnp.float32)[..., None] * inv_freq
    cos = (jnp.cos(angles) * rope.attention_factor)[..., None, :]
    sin = (jnp.sin(angles) * rope.attention_factor)[..., None, :]
    if rope.rotary_dim == x.shape[-1]:
        return apply_rope(x, cos, sin)
    return jnp.concatenate([apply_rope(x[..., : rope.rotary_dim], cos, sin), x[..., rope.rotary_dim :]], axis=-1)


def attend(
    module: nn.Module,
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    positions: jax.Array,
    mask: jax.Array | None,
    s: Settings,
    layer: int,
) -> jax.Array:
    """Rotary positions, the KV cache when decoding, causal (windowed) grouped attention → ``[B, T, H * D]``.

    ``q`` is ``[B, T, H, D]``, ``k``/``v`` ``[B, T, K, D]`` with ``H`` a multiple of ``K``;
    ``mask[B, T]`` marks real tokens. Called from inside ``module``'s compact method, which
    then owns the cache.
    """
    arch = s.arch
    if arch.rope is not None:
        q, k = rotate(q, positions, arch.rope), rotate(k, positions, arch.rope)
    length = q.shape[1]
    if s.decode:
        cache = KVCache(name="kv_cache", parent=module)
        keys, values, allowed = cache(k, v, mask)
        first = cache.get_variable("cache", "index") - length
        query_columns = first + jnp.arange(length)
    else:
        keys, values = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
        query_columns = jnp.arange(length)
        valid = jnp.ones(q.shape[:2], jnp.bool_) if mask is None else mask.astype(jnp.bool_)
        allowed = visible_keys(valid, query_columns, query_columns)
    window = arch.window(layer)
    if window is not None:
        key_columns = jnp.arange(keys.shape[2])
        allowed = allowed & (key_columns[None, :] > query_columns[:, None] - window)[None, None]
    return grouped_attention(q, keys, values, allowed, arch.attention_scale)


def grouped_attention(
    q: jax.Array, keys: jax.Array, values: jax.Array, allowed: jax.Array, scale: float
) -> jax.Array:
    """Softmax attention of ``q[B, T, H, D]`` over heads-first ``keys``/``values`` ``[B, K, S, D]``.

    Each of the ``K`` key/value heads serves ``H // K`` query heads. ``allowed`` is
    ``bool[B, 1, T, S]``; scores and softmax are float32. Returns ``[B, T, H * D]``.
    """
    batch, length, heads, dim = q.shape
    groups = heads // keys.shape[1]
    q = q.reshape(batch, length, keys.shape[1], groups, dim)
    scores = jnp.einsum("btkgd,bksd->bkgts", q, keys, preferred_element_type=jnp.float32) * scale
    scores = jnp.where(allowed[:, :, None], scores, jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(scores, axis=-1).astype(values.dtype)
    y = jnp.einsum("bkgts,bksd->btkgd", weights, values)
    return y.reshape(batch, length, heads * dim)


class Layers(nn.Module):
    """The decoder layers, named ``0`` … ``L-1`` under this module (``model.layers.3...``)."""

    block: type[nn.Module]
    s: Settings

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array, mask: jax.Array | None) -> jax.Array:
        """Run every layer over the residual stream ``x[B, T, D]``."""
        for i in range(self.s.arch.n_layers):
            x = nn.with_logical_constraint(x, HIDDEN)
            x = self.block(self.s, i, name=str(i))(x, positions, mask)  # type: ignore[call-arg]
        return x
