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


def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    """``x @ w`` for ``x[n, k]``, ``w[k, m]``; on XLA:CPU in float32 with a custom weight gradient.

    XLA:CPU hands the weight gradient ``xᵀ g`` (a product contracting both operands on
    their rows) to a slower GEMM than a plain one: a third slower for the MLP's down
    projection, half for a tied LM head's ``[vocab, d]`` gradient. Transposing the
    narrower of ``x`` and ``g`` into its own buffer first makes it a plain product
    (``xᵀ g``, or ``(gᵀ x)ᵀ``); optimization barriers keep XLA from folding the transposes
    back in. Square weights, other dtypes and other backends use plain ``jnp.dot``.
    """
    k, m = w.shape
    if k != m and x.dtype == jnp.float32 and w.dtype == jnp.float32 and jax.default_backend() == "cpu":
        return _cpu_matmul(x, w)
    return jnp.dot(x, w)


@jax.custom_vjp
def _cpu_matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.dot(x, w)


def _cpu_matmul_forward(x: jax.Array, w: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return jnp.dot(x, w), (x, w)


def _cpu_matmul_backward(residuals: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, w = residuals
    barrier = jax.lax.optimization_barrier
    if w.shape[0] < w.shape[1]:  # x is the narrower operand
        grad_w = barrier(jnp.dot(barrier(x.T), g))
    else:
        grad_w = barrier(jnp.dot(barrier(g.T), x)).T
    return jnp.dot(g, w.T), grad_w


_cpu_matmul.defvjp(_cpu_matmul_forward, _cpu_matmul_backward)


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
        y = jnp.einsum("nd,sdf->nsf", rows, kernel) if self.stack else matmul(rows, kernel)
        y = y.reshape(*x.shape[:-1], *y.shape[1:])
        if self.use_bias:
            bias_shape = shape[:1] + shape[2:] if self.stack else shape[1:]
            bias_names = names[:1] + names[2:] if self.stack else names[1:]
            bias = logical_param(self, "bias", nn.initializers.zeros_init(), bias_shape, self.param_dtype, bias_names)
            y = y + bias.astype(self.dtype)
        return y
