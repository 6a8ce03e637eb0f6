"""``wsd``: warmup, a long stable phase at the peak, then a short decay (warmup-stable-decay)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import optax

from theseus.config import field
from theseus.errors import TheseusError
from theseus.training.schedules.base import DecayConfig, between, progress, warmup_factor


@dataclass
class WSDConfig(DecayConfig):
    """Warmup, stable and decay phases; the decay takes the last ``decay_pct`` of the run."""

    decay_pct: float = field(
        "optimization/decay_pct", default=0.1, doc="fraction of total steps spent decaying", ge=0, le=1
    )
    decay_shape: Literal["linear", "sqrt", "cosine"] = field(
        "optimization/decay_shape", default="linear", doc="shape of the decay: linear, sqrt (1 - sqrt) or cosine"
    )

    def decay(self, total_steps: int) -> int:
        """The number of decay steps for a run of ``total_steps``."""
        if not 0.0 <= self.decay_pct <= 1.0:
            raise TheseusError(f"optimization.decay_pct must be in [0, 1], got {self.decay_pct}")
        return round(self.decay_pct * total_steps)


def _decay_shape(kind: str, fraction: jax.Array) -> jax.Array:
    if kind == "sqrt":
        return 1.0 - jnp.sqrt(fraction)
    if kind == "cosine":
        return 0.5 * (1.0 + jnp.cos(jnp.pi * fraction))
    return 1.0 - fraction


def build(cfg: WSDConfig, total_steps: int) -> optax.Schedule:
    """Peak from step ``W`` through the first decay step ``total_steps - D``; floor at the last step."""
    warmup = cfg.warmup(total_steps)
    decay = cfg.decay(total_steps)
    decay_start = total_steps - decay
    if warmup > decay_start:
        raise TheseusError(
            f"warmup ({warmup} steps) and decay ({decay} steps) do not fit in {total_steps} steps; "
            "lower optimization.warmup_pct/warmup_steps or optimization.decay_pct"
        )
    floor = cfg.lr * cfg.min_lr_ratio

    def schedule(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step)
        decayed = between(floor, cfg.lr, _decay_shape(cfg.decay_shape, progress(step, decay_start, total_steps - 1)))
        after_warmup = jnp.where(step < decay_start, cfg.lr, decayed)
        return jnp.where(step < warmup, cfg.lr * warmup_factor(step, warmup), after_warmup)

    return schedule
