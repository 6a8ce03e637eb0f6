"""``constant``: the peak learning rate after an optional linear warmup."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from theseus.training.schedules.base import WarmupConfig, warmup_factor

ConstantConfig = WarmupConfig


def build(cfg: ConstantConfig, total_steps: int) -> optax.Schedule:
    """``lr`` from the end of warmup on (set ``optimization.warmup_pct=0`` for none)."""
    warmup = cfg.warmup(total_steps)

    def schedule(step: jax.Array) -> jax.Array:
        return cfg.lr * warmup_factor(jnp.asarray(step), warmup)

    return schedule
