"""Lookup tables: token and learned position embeddings, and the tied output head."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from theseus.model.axes import Axes
from theseus.model.layers.linear import logical_names, logical_param, matmul


class Embedding(nn.Module):
    """A ``[num, features]`` table read by index; :meth:`attend` reuses it as an output head."""

    num: int
    features: int
    row_axis: Axes = Axes.VOCAB
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self) -> None:
        self.embedding = logical_param(
            self, "embedding", nn.initializers.normal(self.init_std), (self.num, self.features),
            self.param_dtype, logical_names(self.row_axis, Axes.N_EMBD),
        )

    def __call__(self, ids: jax.Array) -> jax.Array:
        """Rows ``ids[...]`` of the table, shape ``[..., features]``."""
        return jnp.take(self.embedding, ids, axis=0).astype(self.dtype)

    def attend(self, x: jax.Array) -> jax.Array:
        """Scores ``x @ table.T`` in float32, shape ``[..., num]``."""
        table = self.embedding.astype(self.dtype)
        rows = x.reshape(-1, x.shape[-1]).astype(self.dtype)
        if table.dtype == jnp.float32:
            scores = matmul(rows, table.T)  # see matmul: the [vocab, d] gradient is the costly one
        else:
            scores = jnp.einsum("nd,vd->nv", rows, table, preferred_element_type=jnp.float32)
        return scores.reshape(*x.shape[:-1], self.num)
