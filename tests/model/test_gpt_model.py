"""GPT: config binding, layouts (scan/unrolled), remat, loss, causality, cost model."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theseus.config import build, configuration, configure
from theseus.errors import ConfigError, TheseusError
from theseus.model.models import GPT
from theseus.model.models.gpt import stack_layers, unstack_layers
from theseus.model.module import Module

TINY = {"n_layers": 2, "n_embd": 32, "n_head": 4, "vocab_size": 128, "block_size": 16}


def tokens(batch: int = 2, length: int = 16, vocab: int = 128, seed: int = 0) -> jax.Array:
    """Random token ids."""
    return jnp.asarray(np.random.default_rng(seed).integers(0, vocab, (batch, length)), jnp.int32)


@pytest.fixture(scope="module")
def unrolled() -> tuple[GPT, dict]:
    """A tiny unscanned GPT and its parameters."""
    model = GPT(**TINY, scan_layers=False)
    return model, nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), tokens())["params"])


@pytest.fixture(scope="module")
def scanned_apply() -> tuple[GPT, object]:
    """A tiny scanned GPT and its jitted forward (compiled once for the module)."""
    model = GPT(**TINY, scan_layers=True)
    return model, jax.jit(lambda params, idx: model.apply({"params": params}, idx))


def test_config_keys_bind_to_gpt_fields() -> None:
    cfg = build(GPT)
    arch = cfg.architecture
    assert arch.block_size == 256 and arch.n_embd_ff is None and arch.mlp == "gelu"
    assert arch.param_dtype == "float32" and arch.dtype == "float32" and arch.remat == "none"
    cfg.architecture.n_layers = 3
    cfg.architecture.position = "learned"
    with configuration(cfg):
        model = configure(GPT)
    assert model.n_layers == 3 and model.position == "learned" and model.ff_width == 4 * model.n_embd


def test_inconsistent_shapes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="n_head"):
        GPT(n_embd=30, n_head=4)
    with pytest.raises(ConfigError, match="n_layers"):
        GPT(n_layers=0)


def test_scanned_and_unrolled_layouts_give_the_same_logits(unrolled, scanned_apply) -> None:
    model, params = unrolled
    _, scan_forward = scanned_apply
    idx = tokens()
    expected = jax.jit(lambda p, i: model.apply({"params": p}, i))(params, idx)
    stacked = stack_layers(params, model.n_layers)
    assert stacked["blocks"]["attn"]["qkv"]["kernel"].shape == (2, 3, 32, 32)
    np.testing.assert_allclose(scan_forward(stacked, idx), expected, atol=1e-5, rtol=1e-5)
    restored = unstack_layers(stacked)
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(params)
    assert expected.dtype == jnp.float32 and expected.shape == (2, 16, 128)


def test_logits_are_causal(unrolled, scanned_apply) -> None:
    _, params = unrolled
    _, forward = scanned_apply
    stacked = stack_layers(params, TINY["n_layers"])
    idx = tokens()
    changed = idx.at[:, 10:].set((idx[:, 10:] + 1) % 128)
    a, b = forward(stacked, idx), forward(stacked, changed)
    np.testing.assert_allclose(a[:, :10], b[:, :10], atol=1e-6)
    assert not np.allclose(a[:, 10:], b[:, 10:])


def test_remat_gives_the_same_gradients(unrolled) -> None:
    _, params = unrolled
    idx = tokens()
    stacked = stack_layers(params, TINY["n_layers"])

    def loss_of(remat: str):
        model = GPT(**TINY, remat=remat)

        def loss(p: dict) -> jax.Array:
            return model.token_loss(model.apply({"params": p}, idx), jnp.roll(idx, -1, axis=1))[0]

        return loss

    plain, remat = jax.jit(lambda p: (jax.grad(loss_of("none"))(p), jax.grad(loss_of("full"))(p)))(stacked)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6, rtol=1e-5), remat, plain)
    # every named policy traces to gradients of the same structure
    for policy in ("dots_saveable", "dots_with_no_batch_dims_saveable"):
        shapes = jax.eval_shape(jax.grad(loss_of(policy)), stacked)
        assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(plain)
    with pytest.raises(ConfigError, match="remat"):
        GPT(**TINY, remat="sometimes")


def test_unrolled_layer_scan_matches_the_loop(unrolled) -> None:
    _, params = unrolled
    stacked = stack_layers(params, TINY["n_layers"])
    idx = tokens()

    def loss_and_grads(model: GPT) -> tuple[object, str]:
        def loss(p: dict) -> jax.Array:
            return model.token_loss(model.apply({"params": p}, idx), jnp.roll(idx, -1, axis=1))[0]

        compiled = jax.jit(jax.value_and_grad(loss)).lower(stacked).compile()
        return compiled(stacked), compiled.as_text()

    (unrolled_out, unrolled_hlo), (looped_out, looped_hlo) = (
        loss_and_grads(GPT(**TINY)), loss_and_grads(GPT(**TINY, scan_unroll=1))
    )
    assert GPT(**TINY).layers_per_iteration == 2 and GPT(**TINY, remat="full").layers_per_iteration == 1
    assert GPT(**{**TINY, "n_layers": 12}).layers_per_iteration == 1  # deep: compile time flat in depth
    assert GPT(**{**TINY, "n_layers": 12}, scan_unroll=12).layers_per_iteration == 12
    assert " while(" not in unrolled_hlo and " while(" in looped_hlo
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6, rtol=1e-5), unrolled_out, looped_out)


def test_remat_recomputes_one_layer_at_a_time() -> None:
    shape = {**TINY, "n_layers": 4, "block_size": 64}
    idx = tokens(8, 64)

    def temp_bytes(remat: str) -> int:
        model = GPT(**shape, remat=remat)
        params = jax.eval_shape(lambda: nn.meta.unbox(model.init(jax.random.key(0), idx)["params"]))
        grad = jax.jit(jax.grad(lambda p: model.apply({"params": p}, idx).sum()))
        return int(grad.lower(params).compile().memory_analysis().temp_size_in_bytes)

    assert temp_bytes("full") < 0.5 * temp_bytes("none")


def test_attention_implementations_give_the_same_logits(unrolled) -> None:
    _, params = unrolled
    idx = tokens()
    models = {kind: GPT(**TINY, scan_layers=False, attention=kind) for kind in ("einsum", "xla")}
    logits = {kind: jax.jit(model.apply)({"params": params}, idx) for kind, model in models.items()}
    np.testing.assert_allclose(logits["einsum"], logits["xla"], atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="attention"):
        GPT(**TINY, attention="flash")
    with pytest.raises(ConfigError, match="scan_unroll"):
        GPT(**TINY, scan_unroll=-1)


def test_token_loss_matches_log_softmax_reference() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 11)).astype(np.float32)
    targets = rng.integers(0, 11, (3, 5))
    targets[0, 4] = -1  # ignored by the default mask
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, np.maximum(targets, 0)[..., None], -1)[..., 0]
    loss_sum, count = Module.token_loss(jnp.asarray(logits), jnp.asarray(targets))
    np.testing.assert_allclose(loss_sum, nll[targets >= 0].sum(), rtol=1e-5)
    assert count == 14
    mask = rng.random((3, 5)) > 0.5
    loss_sum, count = Module.token_loss(jnp.asarray(logits), jnp.asarray(np.maximum(targets, 0)), jnp.asarray(mask))
    np.testing.assert_allclose(loss_sum, (nll * mask).sum(), rtol=1e-5)
    assert count == mask.sum()


def test_token_loss_builds_no_one_hot() -> None:
    vocab = 4099  # a size no other array in the loss has
    logits = jnp.zeros((2, 3, vocab))
    targets = jnp.zeros((2, 3), jnp.int32)
    jaxpr = jax.make_jaxpr(lambda x: Module.token_loss(x, targets)[0])(logits)
    for eqn in jaxpr.jaxpr.eqns:
        if eqn.primitive.name in ("eq", "iota", "convert_element_type"):
            for out in eqn.outvars:
                shape = getattr(out.aval, "shape", ())
                assert not (shape and shape[-1] == vocab and out.aval.dtype in (jnp.bool_, jnp.int32)), eqn
    # the backward compares ids with the targets inside one fused pass: no mask is ever stored
    hlo = jax.jit(jax.grad(lambda x: Module.token_loss(x, targets)[0])).lower(logits).compile().as_text()
    entry = hlo[hlo.index("ENTRY"):]
    stored = [line for line in entry.splitlines() if re.search(rf"(pred|s32)\[[0-9,]*{vocab}\]", line.split("=")[1] if "=" in line else "")]
    assert not stored, stored


def test_variants_run_and_lay_out_their_parameters() -> None:
    model = GPT(
        **TINY, mlp="swiglu", position="learned", tie_embeddings=False, norm="rmsnorm", bias=True,
        dropout=0.5, dtype="bfloat16",
    )
    variables = jax.jit(model.init)(jax.random.key(0), tokens())
    params = nn.meta.unbox(variables["params"])
    assert set(params) == {"token_embedding", "position_embedding", "blocks", "final_norm", "lm_head"}
    assert params["blocks"]["mlp"]["gate_up"]["kernel"].shape == (2, 2, 32, 128)  # 8/3*32 rounded up to 64s
    assert params["blocks"]["attn"]["qkv"]["bias"].shape == (2, 3, 32)
    assert "bias" not in params["final_norm"]  # RMSNorm has no bias
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(params))
    names = nn.get_partition_spec(variables)["params"]
    assert names["lm_head"]["kernel"] == jax.sharding.PartitionSpec("n_embd", "vocab")
    assert names["blocks"]["mlp"]["gate_up"]["kernel"] == jax.sharding.PartitionSpec(
        "n_layers", "fused", "n_embd", "n_embd_ff"
    )

    def forward(p: dict, idx: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        def run(deterministic: bool, seed: int) -> jax.Array:
            rngs = {"dropout": jax.random.fold_in(key, seed)}
            return model.apply({"params": p}, idx, deterministic=deterministic, rngs=rngs)

        return run(True, 0), run(True, 1), run(False, 1)

    logits, again, dropped = jax.jit(forward)(params, tokens(), jax.random.key(1))
    assert logits.dtype == jnp.float32 and logits.shape == (2, 16, 128)
    np.testing.assert_array_equal(logits, again)
    assert not np.allclose(logits, dropped)
    with pytest.raises(TheseusError, match="longer than architecture.block_size=16"):
        jax.eval_shape(lambda p: model.apply({"params": p}, tokens(length=17)), params)


def test_flops_per_token_follows_palm_appendix_b() -> None:
    model = GPT(vocab_size=50304)  # 4 layers, d 256, 4 heads, GELU 4x, tied
    d, layers, vocab, seq = 256, 4, 50304, 256
    n_matmul = layers * (4 * d * d + 2 * d * 4 * d) + d * vocab
    assert model.matmul_params() == n_matmul
    assert model.flops_per_token(seq) == 6 * n_matmul + 12 * layers * 4 * (d // 4) * seq
    # cross-check the count against real parameters: every kernel plus the tied head
    shapes = jax.eval_shape(lambda k: model.init(k, jnp.zeros((1, 8), jnp.int32)), jax.random.key(0))
    flat = jax.tree_util.tree_flatten_with_path(nn.meta.unbox(shapes["params"]))[0]
    kernels = sum(leaf.size for path, leaf in flat if path[-1].key == "kernel")
    assert kernels + vocab * d == n_matmul
    assert Module.num_params(shapes) == n_matmul + 2 * layers * d + d  # plus the norm scales
