"""Pure, jitted training and evaluation steps.

A training batch is a dict of ``x`` (inputs), ``y`` (targets) and optionally ``mask``,
each ``[accum_steps, micro_B, T]`` (see :func:`theseus.training.sharding.microbatches`).
The step scans over the micro-batches, accumulating gradients of the summed token loss
divided by the true number of target tokens in the *whole* batch, so the update equals
the one from a single pass over all rows however they are split or padded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from theseus.model.module import Module
from theseus.training.sharding import (
    batch_sharding,
    boxed_params,
    replicated,
    sharding_context,
    shardings_of,
)

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    """Everything an update changes: the step counter, the parameters and the optimizer state."""

    step: jax.Array
    params: Any
    opt_state: Any

    @classmethod
    def create(cls, params: Any, tx: optax.GradientTransformation) -> TrainState:
        """A state at step 0 with a fresh optimizer state for ``params``."""
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def _boxed_state(model: Module, tx: optax.GradientTransformation, rng: jax.Array,
                 sample_shape: Sequence[int]) -> TrainState:
    # the optimizer state is built from boxed params so its moments inherit their logical axes
    return TrainState.create(boxed_params(model, rng, sample_shape), tx)


def train_state_shardings(
    model: Module, tx: optax.GradientTransformation, mesh: Mesh, sample_shape: Sequence[int]
) -> TrainState:
    """A :class:`TrainState` of ``NamedSharding``s: moments sharded like their parameters."""
    abstract = jax.eval_shape(lambda rng: _boxed_state(model, tx, rng, sample_shape), jax.random.key(0))
    return shardings_of(abstract, model, mesh)


def init_train_state(
    model: Module,
    tx: optax.GradientTransformation,
    mesh: Mesh,
    rng: jax.Array,
    sample_shape: Sequence[int],
) -> tuple[TrainState, TrainState]:
    """A sharded initial :class:`TrainState` and its shardings (pass them to :func:`make_train_step`)."""
    shardings = train_state_shardings(model, tx, mesh, sample_shape)

    def init(key: jax.Array) -> TrainState:
        with sharding_context(model, mesh):
            return nn.meta.unbox(_boxed_state(model, tx, key, sample_shape))

    return jax.jit(init, out_shardings=shardings)(rng), shardings


def _micro_loss(model: Module, params: Any, micro: Batch, rng: jax.Array,
                deterministic: bool) -> tuple[jax.Array, jax.Array]:
    logits = model.apply({"params": params}, micro["x"], deterministic=deterministic, rngs={"dropout": rng})
    return model.token_loss(cast(jax.Array, logits), micro["y"], micro.get("mask"))


def _token_weights(batch: Batch) -> jax.Array:
    mask = batch.get("mask")
    return (batch["y"] >= 0) if mask is None else mask


def make_train_step(
    model: Module,
    tx: optax.GradientTransformation,
    *,
    mesh: Mesh,
    state_shardings: TrainState,
    accum_steps: int = 1,
    schedule: optax.Schedule | None = None,
    donate: bool = True,
) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]]:
    """A jitted ``step(state, batch, rng) -> (state, metrics)``.

    ``batch`` holds ``[accum_steps, micro_B, T]`` arrays, split over ``batch`` on dim 1.
    Gradients are accumulated over the micro-batches with ``lax.scan``; the loss is the
    token-weighted mean over the whole batch. ``rng`` drives dropout (it is folded with
    the step and the micro-batch index). ``metrics``: ``loss``, ``grad_norm`` (global, before
    clipping), ``n_tokens``, ``lr`` (``schedule(step)``, or NaN without a schedule) and ``finite``
    (loss, gradient norm and the new parameters all finite).
    The input state's buffers are donated unless ``donate=False``.
    """
    if accum_steps < 1:
        raise ValueError(f"accum_steps must be at least 1, got {accum_steps}")

    def step(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]:
        if batch["x"].ndim != 3 or batch["x"].shape[0] != accum_steps:
            raise ValueError(
                f"expected a batch of [accum_steps={accum_steps}, micro_B, T] arrays, got {batch['x'].shape}; "
                "split a [B, T] batch with theseus.training.sharding.microbatches"
            )
        with sharding_context(model, mesh):
            n_tokens = jnp.sum(_token_weights(batch).astype(jnp.float32))
            denominator = jnp.maximum(n_tokens, 1.0)
            step_rng = jax.random.fold_in(rng, state.step)

            def micro_grads(index: jax.Array, micro: Batch) -> tuple[jax.Array, Any]:
                def objective(params: Any) -> tuple[jax.Array, jax.Array]:
                    loss_sum, _ = _micro_loss(model, params, micro, jax.random.fold_in(step_rng, index), False)
                    return loss_sum / denominator, loss_sum

                (_, loss_sum), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
                return loss_sum, grads

            if accum_steps == 1:
                loss_sum, grads = micro_grads(jnp.zeros((), jnp.int32), {k: v[0] for k, v in batch.items()})
            else:
                def body(carry: tuple[jax.Array, Any], inputs: tuple[jax.Array, Batch]) -> tuple[Any, None]:
                    total, acc = carry
                    loss_sum, grads = micro_grads(*inputs)
                    acc = jax.tree_util.tree_map(jnp.add, acc, grads)
                    return (total + loss_sum, jax.lax.with_sharding_constraint(acc, state_shardings.params)), None

                zeros = jax.tree_util.tree_map(jnp.zeros_like, state.params)
                (loss_sum, grads), _ = jax.lax.scan(
                    body, (jnp.zeros((), jnp.float32), zeros), (jnp.arange(accum_steps), batch)
                )
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
        loss = loss_sum / denominator
        grad_norm = optax.tree.norm(grads)
        metrics = {
            "loss": loss,
            "grad_norm": grad_norm,
            "n_tokens": n_tokens,
            "lr": jnp.asarray(schedule(state.step) if schedule is not None else jnp.nan, jnp.float32),
            # one flag for theseus.training.guard: is the state this step produced still finite?
            "finite": jnp.isfinite(loss) & jnp.isfinite(grad_norm) & jnp.isfinite(optax.tree.norm(params)),
        }
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return jax.jit(
        step,
        in_shardings=(state_shardings, batch_sharding(mesh, 3), replicated(mesh)),
        out_shardings=(state_shardings, replicated(mesh)),
        donate_argnums=(0,) if donate else (),
    )


def make_eval_step(
    model: Module, *, mesh: Mesh, param_shardings: Any
) -> Callable[[Any, Batch], Metrics]:
    """A jitted ``evaluate(params, batch) -> {"loss_sum", "n_tokens"}`` for ``[B, T]`` arrays.

    Sum both over batches and divide at the end for the token-weighted loss.
    """

    def evaluate(params: Any, batch: Batch) -> Metrics:
        with sharding_context(model, mesh):
            logits = model.apply({"params": params}, batch["x"], deterministic=True)
            loss_sum, n_tokens = model.token_loss(cast(jax.Array, logits), batch["y"], batch.get("mask"))
        return {"loss_sum": loss_sum, "n_tokens": n_tokens}

    return jax.jit(
        evaluate,
        in_shardings=(param_shardings, batch_sharding(mesh, 2)),
        out_shardings=replicated(mesh),
    )
