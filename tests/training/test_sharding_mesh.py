"""Meshes and sharded training on 8 CPU devices: DP 8x1, TP 1x8 and 4x2 match one device."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from theseus.base.axis import Axis
from theseus.base.hardware import make_mesh
from theseus.errors import TheseusError
from theseus.model.models import GPT
from theseus.training.optimizers import build_optimizer
from theseus.training.optimizers.adamw import AdamWConfig
from theseus.training.sharding import init_params, logical_rules, microbatches, shard_batch
from theseus.training.step import TrainState, init_train_state, make_train_step, train_state_shardings

MODEL = GPT(n_layers=2, n_embd=64, n_head=8, vocab_size=256, block_size=16)
SAMPLE = (1, 16)
STEPS = 3
TX = build_optimizer("adamw", 3e-3, AdamWConfig())


def batches() -> list[dict[str, np.ndarray]]:
    """Three global batches of 16 rows, split into 2 micro-batches of 8."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(STEPS):
        x = rng.integers(0, 256, (16, 17)).astype(np.int32)
        out.append(microbatches({"x": x[:, :-1], "y": x[:, 1:]}, 2))
    return out


def train(mesh: jax.sharding.Mesh, initial: TrainState) -> tuple[list[float], TrainState]:
    """Run STEPS updates on ``mesh`` from a copy of ``initial``; return the losses and final state."""
    shardings = train_state_shardings(MODEL, TX, mesh, SAMPLE)
    state = jax.device_put(initial, shardings)
    step = make_train_step(MODEL, TX, mesh=mesh, state_shardings=shardings, accum_steps=2)
    losses = []
    for batch in batches():
        state, metrics = step(state, shard_batch(batch, mesh), jax.random.key(0))
        losses.append(float(metrics["loss"]))
    return losses, state


@pytest.fixture(scope="module")
def reference() -> tuple[TrainState, list[float], TrainState]:
    """Initial state, losses and final state on a single device."""
    mesh = make_mesh(1, jax.devices()[:1])
    initial, _ = init_train_state(MODEL, TX, mesh, jax.random.key(0), SAMPLE)
    initial = jax.device_get(initial)
    losses, final = train(mesh, initial)
    return initial, losses, jax.device_get(final)


def test_mesh_axes_and_shape() -> None:
    assert len(jax.devices()) == 8
    mesh = make_mesh(2)
    assert mesh.axis_names == ("batch", "shard") and mesh.devices.shape == (4, 2)
    assert make_mesh(8).devices.shape == (1, 8)
    assert Axis.SHARD == "shard" and str(Axis.BATCH) == "batch"


@pytest.mark.parametrize("shard", [3, 0, 16])
def test_mesh_rejects_a_shard_count_that_does_not_divide(shard: int) -> None:
    with pytest.raises(TheseusError, match=f"8 devices cannot be split into shard={shard}"):
        make_mesh(shard)


@pytest.mark.parametrize("shard", [1, 8, 2], ids=["dp8x1", "tp1x8", "mixed4x2"])
def test_sharded_training_matches_one_device(reference, shard: int) -> None:
    initial, expected_losses, expected = reference
    mesh = make_mesh(shard)
    losses, state = train(mesh, initial)
    np.testing.assert_allclose(losses, expected_losses, rtol=2e-5)
    assert losses[-1] < losses[0]
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(np.asarray(a), b, atol=2e-5, rtol=1e-4),
        state.params, expected.params,
    )
    assert int(state.step) == STEPS

    # the parameters really are laid out as the rules say
    params = state.params
    qkv = params["blocks"]["attn"]["qkv"]["kernel"]  # (layers, fused, n_embd, n_attn)
    assert qkv.sharding.spec == P(None, None, None, "shard")
    assert qkv.addressable_shards[0].data.shape == (2, 3, 64, 64 // shard)
    embedding = params["token_embedding"]["embedding"]  # (vocab, n_embd)
    assert embedding.sharding.spec == P("shard", None)
    assert embedding.addressable_shards[0].data.shape == (256 // shard, 64)
    down = params["blocks"]["mlp"]["down"]["kernel"]  # (layers, n_embd_ff, n_embd)
    assert down.addressable_shards[0].data.shape == (2, 256 // shard, 64)
    scale = params["blocks"]["attn_norm"]["scale"]
    assert scale.sharding.spec == P(None, None) and scale.addressable_shards[0].data.shape == (2, 64)
    # and so are the Adam moments
    mu = state.opt_state[1][0].mu["blocks"]["attn"]["qkv"]["kernel"]
    assert mu.sharding == qkv.sharding


def test_init_params_is_born_sharded_with_single_device_values(reference) -> None:
    initial, _, _ = reference
    mesh = make_mesh(4)
    params = init_params(MODEL, mesh, jax.random.key(0), SAMPLE)
    up = params["blocks"]["mlp"]["up"]["kernel"]
    assert up.sharding.spec == P(None, None, "shard")
    assert {s.data.shape for s in up.addressable_shards} == {(2, 64, 64)}
    jax.tree_util.tree_map(np.testing.assert_array_equal, jax.device_get(params), initial.params)
    assert ("activation_batch", "batch") in logical_rules(MODEL)
    assert ("vocab", "shard") in logical_rules(MODEL)
