"""Gradient accumulation: any micro-batch split gives the update of one pass, padding included."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theseus.base.hardware import make_mesh
from theseus.model.models import GPT
from theseus.training.optimizers.sgd import SGDConfig, build
from theseus.training.sharding import microbatches, shard_batch
from theseus.training.step import TrainState, make_eval_step, make_train_step, train_state_shardings

MODEL = GPT(n_layers=2, n_embd=32, n_head=4, vocab_size=128, block_size=16)
LR = 0.5
# plain SGD: the update is -LR * gradient, so any error in the gradient's scale shows
TX = build(SGDConfig(momentum=0.0, weight_decay=0.0, grad_clip=None), LR)


@pytest.fixture(scope="module")
def setup() -> dict:
    """A 4-device data-parallel mesh, initial parameters and a padded batch of 16 rows."""
    mesh = make_mesh(1, jax.devices()[:4])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 128, (16, 17)).astype(np.int32)
    lengths = rng.integers(1, 17, 16)  # valid targets per row: uneven padding
    mask = (np.arange(16)[None, :] < lengths[:, None]).astype(np.float32)
    params = nn.meta.unbox(jax.jit(MODEL.init)(jax.random.key(0), jnp.asarray(x[:1, :16]))["params"])
    return {"mesh": mesh, "params": jax.device_get(params), "batch": {"x": x[:, :-1], "y": x[:, 1:], "mask": mask}}


def one_step(setup: dict, accum: int) -> tuple[dict, dict]:
    """One SGD update from the shared initial parameters with ``accum`` micro-batches."""
    mesh = setup["mesh"]
    shardings = train_state_shardings(MODEL, TX, mesh, (1, 16))
    state = jax.device_put(TrainState.create(setup["params"], TX), shardings)
    step = make_train_step(MODEL, TX, mesh=mesh, state_shardings=shardings, accum_steps=accum)
    state, metrics = step(state, shard_batch(microbatches(setup["batch"], accum), mesh), jax.random.key(0))
    return jax.device_get(state.params), {k: float(v) for k, v in metrics.items()}


@pytest.fixture(scope="module")
def reference(setup: dict) -> dict:
    """The update written out directly: mean NLL over all unmasked target tokens of the batch."""
    batch = {k: jnp.asarray(v) for k, v in setup["batch"].items()}

    def token_nll(params: dict) -> jax.Array:
        logp = jax.nn.log_softmax(MODEL.apply({"params": params}, batch["x"]), axis=-1)
        return -jnp.take_along_axis(logp, batch["y"][..., None], axis=-1)[..., 0]

    def loss(params: dict) -> tuple[jax.Array, jax.Array]:
        nll = token_nll(params)
        return jnp.sum(nll * batch["mask"]) / jnp.sum(batch["mask"]), nll

    (value, nll), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(setup["params"])
    params = jax.tree_util.tree_map(lambda p, g: p - LR * g, setup["params"], grads)
    return {"params": params, "loss": float(value), "nll": np.asarray(nll)}


def test_accumulated_update_equals_single_pass_with_uneven_padding(setup, reference) -> None:
    whole_params, whole = one_step(setup, 1)
    split_params, split = one_step(setup, 4)
    expected_params, expected_loss = reference["params"], reference["loss"]

    mask = setup["batch"]["mask"]
    assert whole["n_tokens"] == split["n_tokens"] == mask.sum()
    np.testing.assert_allclose([whole["loss"], split["loss"]], expected_loss, rtol=1e-5)
    for params in (whole_params, split_params):
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-4), params, expected_params
        )
    assert np.isfinite(split["grad_norm"]) and split["grad_norm"] > 0 and np.isnan(split["lr"])

    # a mean of per-micro-batch means differs on this batch, so the check above has teeth
    micro = microbatches({"nll": reference["nll"] * mask, "mask": mask}, 4)
    mean_of_means = np.mean([n.sum() / m.sum() for n, m in zip(micro["nll"], micro["mask"])])
    assert abs(mean_of_means - expected_loss) > 1e-3


def test_microbatches_keep_each_devices_rows_together() -> None:
    rows = np.arange(8)[:, None] * np.ones((1, 3), int)
    split = microbatches({"x": rows}, 2)["x"]
    assert split.shape == (2, 4, 3)
    np.testing.assert_array_equal(split[:, :, 0], [[0, 2, 4, 6], [1, 3, 5, 7]])
    with pytest.raises(ValueError, match="cannot be split"):
        microbatches({"x": rows}, 3)


def test_eval_step_sums_loss_and_tokens(setup, reference) -> None:
    mesh = setup["mesh"]
    shardings = train_state_shardings(MODEL, TX, mesh, (1, 16)).params
    params = jax.device_put(setup["params"], shardings)
    evaluate = make_eval_step(MODEL, mesh=mesh, param_shardings=shardings)
    batch = setup["batch"]
    halves = [{k: v[i * 8 : (i + 1) * 8] for k, v in batch.items()} for i in range(2)]
    results = [jax.device_get(evaluate(params, shard_batch(h, mesh))) for h in halves]
    loss = sum(r["loss_sum"] for r in results) / sum(r["n_tokens"] for r in results)
    np.testing.assert_allclose(loss, reference["loss"], rtol=1e-5)
