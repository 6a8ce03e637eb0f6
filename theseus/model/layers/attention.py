"""Causal multi-head self-attention with optional rotary positions."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from theseus.model.axes import Axes
from theseus.model.layers.linear import Linear
from theseus.model.layers.rope import apply_rope, rope_angles


class CausalSelfAttention(nn.Module):
    """Fused q/k/v projection → (RoPE) → causal softmax attention → output projection.

    The forward is split into :meth:`project` and :meth:`attend` so that a key/value
    cache can later be inserted between them without touching either.
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

    def setup(self) -> None:
        self.qkv = Linear(
            self.n_head * self.head_dim, Axes.N_EMBD, Axes.N_ATTN, stack=3, use_bias=self.use_bias,
            init_std=self.init_std, dtype=self.dtype, param_dtype=self.param_dtype,
        )
        self.out = Linear(
            self.features, Axes.N_ATTN, Axes.N_EMBD, use_bias=self.use_bias, init_std=self.out_std,
            dtype=self.dtype, param_dtype=self.param_dtype,
        )

    def project(self, x: jax.Array, positions: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Queries, keys and values ``[B, T, H, head_dim]`` for ``x[B, T, n_embd]`` at ``positions[..., T]``."""
        batch, length, _ = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.n_head, self.head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if self.rope_theta is not None:
            cos, sin = rope_angles(positions, self.head_dim, self.rope_theta)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return q, k, v

    def attend(self, q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
        """Causal attention of ``q`` over ``k``/``v``, merged back to ``[B, T, H * head_dim]``."""
        y = jax.nn.dot_product_attention(q, k, v, is_causal=True)
        return y.reshape(*y.shape[:2], -1)

    def __call__(self, x: jax.Array, positions: jax.Array) -> jax.Array:
        """Self-attention over ``x[B, T, n_embd]``; returns the same shape."""
        q, k, v = self.project(x, positions)
        return self.out(self.attend(q, k, v))
