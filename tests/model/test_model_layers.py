"""Layer building blocks: rotary positions, norms, fused projections, attention implementations."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from theseus.model.axes import Axes
from theseus.model.layers import Linear, Norm, apply_rope, rope_angles, softmax_attention
from theseus.model.layers.attention import resolve_attention, visible_keys
from theseus.model.layers.linear import matmul


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


def test_einsum_attention_matches_jax_dot_product_attention() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.normal(size=(2, 12, 4, 8)), jnp.float32) for _ in range(3))
    weights = jnp.asarray(rng.normal(size=(2, 12, 4, 8)), jnp.float32)
    valid = jnp.asarray(np.arange(12)[None, :] >= np.array([[0], [5]]))  # row 1 is left-padded
    allowed = visible_keys(valid, jnp.arange(12), jnp.arange(12))

    def loss(attend, q, k, v):
        return jnp.sum(attend(q, k, v) * weights)

    cases = [
        (softmax_attention, lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True)),
        (
            lambda q, k, v: softmax_attention(q, k, v, allowed),
            lambda q, k, v: jax.nn.dot_product_attention(q, k, v, mask=allowed),
        ),
    ]
    for ours, reference in cases:
        np.testing.assert_allclose(ours(q, k, v), reference(q, k, v), atol=1e-6)
        grads = jax.grad(functools.partial(loss, ours), argnums=(0, 1, 2))(q, k, v)
        expected = jax.grad(functools.partial(loss, reference), argnums=(0, 1, 2))(q, k, v)
        for got, want in zip(grads, expected):
            np.testing.assert_allclose(got, want, atol=1e-5)


def test_auto_attention_is_cudnn_only_on_gpus_in_half_precision() -> None:
    assert resolve_attention("auto", jnp.bfloat16, "gpu") == "cudnn"
    assert resolve_attention("auto", jnp.float16, "gpu") == "cudnn"
    assert resolve_attention("auto", jnp.float32, "gpu") == "einsum"
    assert resolve_attention("auto", jnp.bfloat16, "cpu") == "einsum"
    assert resolve_attention("auto", jnp.bfloat16, "tpu") == "einsum"
    assert resolve_attention("xla", jnp.float32, "gpu") == "xla"
    assert resolve_attention("auto", jnp.float32) == "einsum"  # this machine


def test_cpu_matmul_gradients_equal_the_plain_product() -> None:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(6, 8)), jnp.float32)
    for w_shape in ((8, 5), (8, 20), (8, 8)):  # tall, wide (a tied head), square
        w = jnp.asarray(rng.normal(size=w_shape), jnp.float32)
        out = jnp.asarray(rng.normal(size=(6, w_shape[1])), jnp.float32)
        ours = jax.grad(lambda x, w, out=out: jnp.sum(matmul(x, w) * out), argnums=(0, 1))(x, w)
        plain = jax.grad(lambda x, w, out=out: jnp.sum((x @ w) * out), argnums=(0, 1))(x, w)
        for a, b in zip(ours, plain):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
