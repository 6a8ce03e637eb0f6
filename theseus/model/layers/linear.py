"""Dense projections whose weights carry logical axis names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from theseus.model.axes import Axes

Initializer = Callable[..., Any]


def logical_names(*axes: Axes | None) -> tuple[str | None, ...]:
    """The ``.value`` strings of ``axes`` (``None`` stays ``None``), as flax metadata wants them."""
    return tuple(a.value if a is not None else None for a in axes)


def logical_param(
    module: nn.Module,
    name: str,
    init: Initializer,
    shape: Sequence[int],
    dtype: jnp.dtype,
    names: tuple[str | None, ...],
) -> jax.Array:
    """Create (or read) parameter ``name`` annotated with the logical axis ``names``."""
    return cast(jax.Array, module.param(name, nn.with_logical_partitioning(init, names), tuple(shape), dtype))


class Linear(nn.Module):
    """``y = x @ W (+ b)`` over the last axis of ``x``.

    With ``stack=S`` the kernel is ``[S, in, out]``: S independent projections of the
    same input (fused q/k/v, gate/up), giving ``y`` of shape ``[..., S, out]`` in one GEMM.
    """

    features: int
    in_axis: Axes | None
    out_axis: Axes | None
    stack: int = 0
    use_bias: bool = False
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Project ``x[..., in]`` to ``[..., out]`` (or ``[..., stack, out]``)."""
        shape: tuple[int, ...] = (x.shape[-1], self.features)
        names = logical_names(self.in_axis, self.out_axis)
        if self.stack:
            shape = (self.stack, *shape)
            names = (Axes.FUSED.value, *names)
        init = nn.initializers.normal(self.init_std)
        kernel = logical_param(self, "kernel", init, shape, self.param_dtype, names).astype(self.dtype)
        # a 2-D matmul: with [B, T, D] operands XLA's CPU backend transposes activations in backward
        rows = x.reshape(-1, x.shape[-1]).astype(self.dtype)
        y = jnp.einsum("nd,sdf->nsf", rows, kernel) if self.stack else jnp.dot(rows, kernel)
        y = y.reshape(*x.shape[:-1], *y.shape[1:])
        if self.use_bias:
            bias_shape = shape[:1] + shape[2:] if self.stack else shape[1:]
            bias_names = names[:1] + names[2:] if self.stack else names[1:]
            bias = logical_param(self, "bias", nn.initializers.zeros_init(), bias_shape, self.param_dtype, bias_names)
            y = y + bias.astype(self.dtype)
        return y
