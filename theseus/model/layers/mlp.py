"""Position-wise feed-forward blocks: GELU (two matrices) or SwiGLU (three)."""

from __future__ import annotations

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from theseus.model.axes import Axes
from theseus.model.layers.linear import Linear

MLPKind = Literal["gelu", "swiglu"]


class MLP(nn.Module):
    """``down(act(up(x)))``; SwiGLU computes ``up`` and its gate in one fused projection."""

    hidden: int
    kind: MLPKind = "gelu"
    use_bias: bool = False
    init_std: float = 0.02
    out_std: float = 0.02
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Map ``x[..., n_embd]`` to the same shape."""
        if self.kind == "swiglu":
            gate_up = Linear(
                self.hidden, Axes.N_EMBD, Axes.N_EMBD_FF, stack=2, use_bias=self.use_bias,
                init_std=self.init_std, dtype=self.dtype, param_dtype=self.param_dtype, name="gate_up",
            )(x)
            h = nn.silu(gate_up[..., 0, :]) * gate_up[..., 1, :]
        else:
            up = Linear(
                self.hidden, Axes.N_EMBD, Axes.N_EMBD_FF, use_bias=self.use_bias, init_std=self.init_std,
                dtype=self.dtype, param_dtype=self.param_dtype, name="up",
            )
            h = nn.gelu(up(x), approximate=True)
        down = Linear(
            x.shape[-1], Axes.N_EMBD_FF, Axes.N_EMBD, use_bias=self.use_bias, init_std=self.out_std,
            dtype=self.dtype, param_dtype=self.param_dtype, name="down",
        )
        return down(h)
