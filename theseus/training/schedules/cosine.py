"""``cosine``: linear warmup, then a half cosine from the peak down to ``lr * min_lr_ratio``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from theseus.training.schedules.base import DecayConfig, between, progress, warmup_factor

CosineConfig = DecayConfig


def build(cfg: CosineConfig, total_steps: int) -> optax.Schedule:
    """Peak at step ``W`` (end of warmup), floor at the last step ``total_steps - 1``."""
    warmup = cfg.warmup(total_steps)
    floor = cfg.lr * cfg.min_lr_ratio

    def schedule(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step)
        shape = 0.5 * (1.0 + jnp.cos(jnp.pi * progress(step, warmup, total_steps - 1)))
        return jnp.where(step < warmup, cfg.lr * warmup_factor(step, warmup), between(floor, cfg.lr, shape))

    return schedule
