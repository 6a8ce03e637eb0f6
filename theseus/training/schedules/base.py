"""What every learning-rate schedule shares: config keys, warmup, and the registry entry type.

Steps are counted from 0 and a run of ``total_steps`` updates ends at step
``total_steps - 1``. Warmup is linear over its ``W`` steps: step ``s < W`` gets
``lr * (s + 1) / W``, so step 0 already learns and step ``W - 1`` reaches the peak.
Decaying schedules reach ``lr * min_lr_ratio`` exactly at the last step and stay there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from theseus.config import field
from theseus.errors import TheseusError

DEFAULT_LR = 3e-4


class ScheduleEntry(NamedTuple):
    """A registered schedule: ``build(cfg, total_steps) -> optax.Schedule`` and its config class."""

    build: Callable[[Any, int], optax.Schedule]
    config: type


@dataclass
class LearningRateConfig:
    """The peak learning rate."""

    lr: float = field("optimization/lr", default=DEFAULT_LR, doc="peak learning rate", ge=0)


@dataclass
class WarmupConfig(LearningRateConfig):
    """Peak learning rate plus a linear warmup."""

    warmup_steps: int | None = field(
        "optimization/warmup_steps", default=None, doc="linear warmup steps; None: use warmup_pct", ge=0
    )
    warmup_pct: float = field(
        "optimization/warmup_pct",
        default=0.01,
        doc="warmup as a fraction of total steps (if warmup_steps is None)",
        ge=0,
        le=1,
    )

    def warmup(self, total_steps: int) -> int:
        """The number of warmup steps for a run of ``total_steps``."""
        check_total_steps(total_steps)
        steps = self.warmup_steps if self.warmup_steps is not None else round(self.warmup_pct * total_steps)
        if steps < 0:
            raise TheseusError(f"optimization.warmup_steps must not be negative, got {steps}")
        return int(steps)


@dataclass
class DecayConfig(WarmupConfig):
    """Warmup, then a decay to a floor."""

    min_lr_ratio: float = field(
        "optimization/min_lr_ratio", default=0.1, doc="final learning rate as a fraction of lr", ge=0, le=1
    )


def check_total_steps(total_steps: int) -> None:
    """Raise :class:`TheseusError` unless the run has at least one step."""
    if total_steps < 1:
        raise TheseusError(f"a schedule needs at least one training step, got total_steps={total_steps}")


def warmup_factor(step: jax.Array, warmup: int) -> jax.Array:
    """``min(1, (step + 1) / warmup)``; 1 when there is no warmup."""
    if warmup <= 0:
        return jnp.ones_like(step, dtype=jnp.float32)
    return jnp.minimum(1.0, (step.astype(jnp.float32) + 1.0) / warmup)


def progress(step: jax.Array, start: int, end: int) -> jax.Array:
    """Where ``step`` is between ``start`` (0) and ``end`` (1), clipped to [0, 1].

    An empty span (``end <= start``) is a step function: 1 from ``end`` on.
    """
    step = step.astype(jnp.float32)
    if end <= start:
        return (step >= end).astype(jnp.float32)
    return jnp.clip((step - start) / (end - start), 0.0, 1.0)


def between(floor: float, peak: float, fraction: jax.Array) -> jax.Array:
    """``floor + (peak - floor) * fraction``."""
    return floor + (peak - floor) * fraction
