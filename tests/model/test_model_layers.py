"""Layer building blocks: rotary positions, norms, fused projections, mesh-free sharding names."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from theseus.model.axes import Axes
from theseus.model.layers import Linear, Norm, apply_rope, rope_angles


def test_rope_scores_depend_only_on_relative_position() -> None:
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)

    def score(m: int, n: int) -> float:
        cos_m, sin_m = rope_angles(jnp.array([m]), 16, 10000.0)
        cos_n, sin_n = rope_angles(jnp.array([n]), 16, 10000.0)
        return float(jnp.sum(apply_rope(q, cos_m, sin_m) * apply_rope(k, cos_n, sin_n)))

    np.testing.assert_allclose(score(3, 1), score(12, 10), rtol=1e-5)
    np.testing.assert_allclose(score(0, 0), float(jnp.sum(q * k)), rtol=1e-5)
    assert abs(score(5, 0) - score(0, 0)) > 1e-3
    cos, sin = rope_angles(jnp.arange(7), 16, 10000.0)
    np.testing.assert_allclose(jnp.linalg.norm(apply_rope(jnp.ones((1, 7, 2, 16)), cos, sin), axis=-1), 4.0, rtol=1e-5)


def test_norms_normalise_in_float32_and_return_the_compute_dtype() -> None:
    x = jnp.asarray(np.random.default_rng(0).normal(3.0, 2.0, size=(2, 5, 64)), jnp.bfloat16)
    for kind in ("layernorm", "rmsnorm"):
        norm = Norm(kind=kind, dtype=jnp.bfloat16)
        y, _ = norm.init_with_output(jax.random.key(0), x)
        assert y.dtype == jnp.bfloat16
        y32 = y.astype(jnp.float32)
        np.testing.assert_allclose(jnp.sqrt(jnp.mean(y32**2, axis=-1)), 1.0, atol=2e-2)
        if kind == "layernorm":
            np.testing.assert_allclose(jnp.mean(y32, axis=-1), 0.0, atol=2e-2)


def test_stacked_linear_equals_separate_projections() -> None:
    layer = Linear(6, Axes.N_EMBD, Axes.N_ATTN, stack=3, use_bias=True)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 5)), jnp.float32)
    variables = layer.init(jax.random.key(0), x)
    assert nn.get_partition_spec(variables)["params"]["kernel"] == jax.sharding.PartitionSpec(
        "fused", "n_embd", "n_attn"
    )
    params = nn.meta.unbox(variables)["params"]
    params["bias"] = jnp.arange(18.0).reshape(3, 6)
    y = layer.apply({"params": params}, x)
    assert y.shape == (2, 4, 3, 6)
    for i in range(3):
        np.testing.assert_allclose(y[:, :, i], x @ params["kernel"][i] + params["bias"][i], rtol=1e-5, atol=1e-6)
