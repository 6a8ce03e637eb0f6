"""A pre-norm transformer block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from theseus.model.axes import Axes
from theseus.model.layers.attention import AttentionKind, CausalSelfAttention
from theseus.model.layers.mlp import MLP, MLPKind
from theseus.model.layers.norm import Norm, NormKind


class TransformerBlock(nn.Module):
    """One decoder layer. Its call returns ``(x, None)`` so it can be scanned over layers.

    With ``decode`` its attention keeps keys and values in the ``cache`` collection
    (see :class:`CausalSelfAttention`).
    """

    n_embd: int
    n_head: int
    n_embd_ff: int
    mlp: MLPKind = "gelu"
    norm: NormKind = "layernorm"
    norm_eps: float = 1e-5
    rope_theta: float | None = 10000.0
    use_bias: bool = False
    dropout: float = 0.0
    deterministic: bool = True
    decode: bool = False
    init_std: float = 0.02
    out_std: float = 0.02
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    attention: AttentionKind = "auto"

    @nn.compact
    def __call__(
        self, x: jax.Array, positions: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, None]:
        """Apply the layer to the residual stream ``x[B, T, n_embd]``; ``mask[B, T]`` marks real tokens."""
        x = nn.with_logical_constraint(x, (Axes.BATCH.value, Axes.BLOCK_SIZE.value, Axes.N_EMBD.value))
        drop = nn.Dropout(self.dropout, deterministic=self.deterministic)

        def norm(name: str) -> Norm:
            return Norm(self.norm, self.norm_eps, self.use_bias, self.dtype, self.param_dtype, name=name)

        attention = CausalSelfAttention(
            self.n_embd, self.n_head, self.n_embd // self.n_head, rope_theta=self.rope_theta,
            use_bias=self.use_bias, init_std=self.init_std, out_std=self.out_std, dtype=self.dtype,
            param_dtype=self.param_dtype, implementation=self.attention, name="attn",
        )
        x = x + drop(attention(norm("attn_norm")(x), positions, mask, self.decode))
        mlp = MLP(
            self.n_embd_ff, self.mlp, use_bias=self.use_bias, init_std=self.init_std, out_std=self.out_std,
            dtype=self.dtype, param_dtype=self.param_dtype, name="mlp",
        )
        return x + drop(mlp(norm("mlp_norm")(x))), None

