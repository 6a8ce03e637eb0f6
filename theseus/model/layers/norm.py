"""LayerNorm and RMSNorm computed in float32 whatever the activation dtype."""

from __future__ import annotations

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from theseus.model.axes import Axes
from theseus.model.layers.linear import logical_param

NormKind = Literal["layernorm", "rmsnorm"]


class Norm(nn.Module):
    """Normalise over the last axis: ``layernorm`` (centred, optional bias) or ``rmsnorm``."""

    kind: NormKind = "layernorm"
    eps: float = 1e-5
    use_bias: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Return ``x`` normalised and scaled, in :attr:`dtype`."""
        width = (x.shape[-1],)
        names = (Axes.N_EMBD.value,)
        x32 = x.astype(jnp.float32)
        if self.kind == "layernorm":
            x32 = x32 - jnp.mean(x32, axis=-1, keepdims=True)
        y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
        scale = logical_param(self, "scale", nn.initializers.ones_init(), width, self.param_dtype, names)
        y = y * scale.astype(jnp.float32)
        if self.use_bias and self.kind == "layernorm":
            bias = logical_param(self, "bias", nn.initializers.zeros_init(), width, self.param_dtype, names)
            y = y + bias.astype(jnp.float32)
        return y.astype(self.dtype)
