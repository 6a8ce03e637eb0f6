"""Optimizers: registry, weight-decay masks, SGD arithmetic, Muon's orthogonalisation and progress."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from theseus.config import build, configuration
from theseus.model.models import GPT
from theseus.registry import OPTIMIZERS, SCHEDULES
from theseus.training.optimizers import build_optimizer
from theseus.training.optimizers.adamw import AdamWConfig
from theseus.training.optimizers.base import decay_mask
from theseus.training.optimizers.muon import MuonConfig, muon_labels
from theseus.training.optimizers.sgd import SGDConfig


def fake_params() -> dict:
    """A parameter tree named like GPT's (scanned blocks of 2 layers, untied head)."""
    rng = np.random.default_rng(0)

    def normal(*shape: int) -> jax.Array:
        return jnp.asarray(rng.normal(size=shape), jnp.float32)

    return {
        "token_embedding": {"embedding": normal(16, 8)},
        "blocks": {
            "attn": {"qkv": {"kernel": normal(2, 3, 8, 8), "bias": normal(2, 3, 8)}},
            "attn_norm": {"scale": normal(2, 8)},  # 2-D only because layers are stacked
            "mlp": {"up": {"kernel": normal(2, 8, 32)}, "down": {"kernel": normal(2, 32, 8)}},
        },
        "final_norm": {"scale": normal(8)},
        "lm_head": {"kernel": normal(8, 16)},
    }


def decayed_paths(mask: dict) -> set[str]:
    """Slash-joined paths whose mask is True."""
    flat = jax.tree_util.tree_flatten_with_path(mask)[0]
    return {"/".join(str(k.key) for k in path) for path, value in flat if value}


def test_registry_holds_the_builtins_and_their_configs_build_together() -> None:
    assert {"adamw", "sgd", "muon"} <= set(OPTIMIZERS.keys())
    assert {"constant", "cosine", "linear", "wsd"} <= set(SCHEDULES.keys())
    classes = [entry.config for _, entry in OPTIMIZERS.items()] + [entry.config for _, entry in SCHEDULES.items()]
    cfg = build(GPT, *classes)  # shared keys (optimization.lr, weight_decay ...) agree on defaults
    assert cfg.optimization.lr == 3e-4 and cfg.optimization.weight_decay == 0.1


def test_decay_mask_spares_norms_biases_and_embeddings() -> None:
    assert decayed_paths(decay_mask(fake_params())) == {
        "blocks/attn/qkv/kernel", "blocks/mlp/up/kernel", "blocks/mlp/down/kernel", "lm_head/kernel",
    }


def test_adamw_weight_decay_touches_only_masked_params() -> None:
    params = fake_params()
    tx = build_optimizer("adamw", 0.1, AdamWConfig(weight_decay=0.5))
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    new = jax.jit(lambda p, g: optax.apply_updates(p, tx.update(g, tx.init(p), p)[0]))(params, zeros)
    decayed = decayed_paths(decay_mask(params))
    for (path, before), after in zip(
        jax.tree_util.tree_flatten_with_path(params)[0], jax.tree_util.tree_leaves(new)
    ):
        name = "/".join(str(k.key) for k in path)
        expected = before * (1 - 0.1 * 0.5) if name in decayed else before
        np.testing.assert_allclose(after, expected, rtol=1e-6, err_msg=name)


def test_sgd_momentum_decay_and_clipping_arithmetic() -> None:
    params = {"w": {"kernel": jnp.ones((2, 2))}, "n": {"scale": jnp.ones(2)}}
    grads = {"w": {"kernel": jnp.full((2, 2), 0.1)}, "n": {"scale": jnp.full(2, 0.1)}}
    tx = build_optimizer("sgd", 0.5, SGDConfig(momentum=0.9, weight_decay=0.1, grad_clip=None))
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    np.testing.assert_allclose(updates["w"]["kernel"], -0.5 * (0.1 + 0.1 * 1.0))
    np.testing.assert_allclose(updates["n"]["scale"], -0.5 * 0.1)
    updates, _ = tx.update(grads, state, params)
    np.testing.assert_allclose(updates["n"]["scale"], -0.5 * (0.9 * 0.1 + 0.1), rtol=1e-6)

    clipped = build_optimizer("sgd", 1.0, SGDConfig(momentum=0.0, weight_decay=0.0, grad_clip=1.0))
    huge = jax.tree_util.tree_map(lambda g: g * 1000, grads)
    updates, _ = clipped.update(huge, clipped.init(params), params)
    np.testing.assert_allclose(optax.tree.norm(updates), 1.0, rtol=1e-5)


def test_build_optimizer_reads_the_active_config() -> None:
    cfg = build(SGDConfig)
    cfg.optimization.momentum = 0.0
    cfg.optimization.weight_decay = 0.0
    cfg.optimization.grad_clip = None
    with configuration(cfg):
        tx = build_optimizer("sgd", 2.0)
    params = {"w": {"kernel": jnp.ones(3)}}
    updates, _ = tx.update({"w": {"kernel": jnp.ones(3)}}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"]["kernel"], -2.0)


def muon_step(params: dict, grads: dict) -> dict:
    """The updates of one Muon step with lr = muon_lr = 1 and no weight decay or clipping."""
    tx = build_optimizer("muon", 1.0, MuonConfig(lr=1.0, muon_lr=1.0, weight_decay=0.0, grad_clip=None))
    return tx.update(grads, tx.init(params), params)[0]


@pytest.mark.parametrize("shape", [(32, 64), (64, 32), (32, 32)])
def test_muon_matrix_update_is_orthogonal_and_width_scaled(shape: tuple[int, int]) -> None:
    grad = jnp.asarray(np.random.default_rng(0).normal(size=shape) * 1e-3, jnp.float32)
    params = {"mlp": {"up": {"kernel": jnp.zeros(shape)}}}
    update = muon_step(params, {"mlp": {"up": {"kernel": grad}}})["mlp"]["up"]["kernel"]
    fan_in, fan_out = shape  # a flax kernel is [in, out]
    singular = np.linalg.svd(np.asarray(-update) / max(1.0, fan_out / fan_in) ** 0.5, compute_uv=False)
    assert singular.min() > 0.5 and singular.max() < 1.3
    # the update points along the gradient: <-update, grad> > 0
    assert float(jnp.vdot(-update, grad)) > 0


def test_muon_orthogonalises_stacked_matrices_one_by_one() -> None:
    stacked = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 8, 16)), jnp.float32)
    together = muon_step({"qkv": {"kernel": jnp.zeros_like(stacked)}}, {"qkv": {"kernel": stacked}})
    for i in range(2):
        for j in range(3):
            alone = muon_step({"qkv": {"kernel": jnp.zeros((8, 16))}}, {"qkv": {"kernel": stacked[i, j]}})
            np.testing.assert_allclose(
                together["qkv"]["kernel"][i, j], alone["qkv"]["kernel"], rtol=1e-4, atol=1e-5
            )


def test_muon_routes_hidden_matrices_only() -> None:
    labels = jax.tree_util.tree_flatten_with_path(muon_labels(fake_params()))[0]
    muon = {"/".join(str(k.key) for k in path) for path, label in labels if label == "muon"}
    assert muon == {"blocks/attn/qkv/kernel", "blocks/mlp/up/kernel", "blocks/mlp/down/kernel"}


def test_muon_reduces_the_loss_of_a_small_network() -> None:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(64, 8)), jnp.float32)
    y = jnp.asarray(np.sin(rng.normal(size=(8, 1)).T * np.asarray(x)).sum(-1, keepdims=True), jnp.float32)
    params = {
        "hidden": {"kernel": jnp.asarray(rng.normal(size=(8, 32)) * 0.3, jnp.float32), "bias": jnp.zeros(32)},
        "lm_head": {"kernel": jnp.asarray(rng.normal(size=(32, 1)) * 0.3, jnp.float32)},
    }

    def loss(p: dict) -> jax.Array:
        h = jnp.tanh(x @ p["hidden"]["kernel"] + p["hidden"]["bias"])
        return jnp.mean((h @ p["lm_head"]["kernel"] - y) ** 2)

    tx = build_optimizer("muon", 1e-2, MuonConfig(lr=1e-2, muon_lr=0.02, weight_decay=0.0))

    @jax.jit
    def step(p: dict, state: optax.OptState) -> tuple[dict, optax.OptState, jax.Array]:
        value, grads = jax.value_and_grad(loss)(p)
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state, value

    state = tx.init(params)
    first = float(loss(params))
    for _ in range(60):
        params, state, _ = step(params, state)
    assert float(loss(params)) < 0.5 * first


@pytest.mark.parametrize("name", ["adamw", "sgd", "muon"])
def test_changeable_optimizer_keys_keep_the_shape_of_the_optimizer_state(name: str) -> None:
    """A resumed run may change any changeable optimization.* key: its checkpoint must still fit."""
    from theseus.config import schema, to_config, to_tree

    params = fake_params()
    entry = OPTIMIZERS[name]
    sch = schema(entry.config)
    tree = to_tree(build(entry.config))
    changed = {
        key.split(".")[1]: _another_value(key.split(".")[1], tree["optimization"][key.split(".")[1]])
        for key, spec in sch.fields.items()
        if spec.changeable
    }
    assert {"weight_decay", "grad_clip"} <= set(changed)
    with configuration(to_config(tree)):
        before = build_optimizer(name, 0.1).init(params)
    with configuration(to_config({"optimization": {**tree["optimization"], **changed}})):
        after = build_optimizer(name, 0.1).init(params)
    assert jax.tree.structure(before) == jax.tree.structure(after)
    assert [x.shape for x in jax.tree.leaves(before)] == [x.shape for x in jax.tree.leaves(after)]


def _another_value(leaf: str, value: object) -> object:
    """A legal new value; zero for numbers, since a zero is what could drop a transform (no clipping, no decay)."""
    if isinstance(value, bool):
        return not value
    if leaf in ("lr", "ns_steps"):
        return 3
    return 0 if isinstance(value, (int, float)) or value is None else value
