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

    lr: float = field("optimization/lr", default=DEFAULT_LR, doc="peak learning rate", ge=0, changeable=True)


@dataclass
class WarmupConfig(LearningRateConfig):
    """Peak learning rate plus a linear warmup."""

    warmup_steps: int | None = field(
        "optimization/warmup_steps", default=None, doc="linear warmup steps; None: use warmup_pct", ge=0,
        changeable=True,
    )
    warmup_pct: float = field(
        "optimization/warmup_pct",
        default=0.01,
        doc="warmup as a fraction of total steps (if warmup_steps is None)",
        ge=0,
        le=1,
        changeable=True,
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
        "optimization/min_lr_ratio", default=0.1, doc="final learning rate as a fraction of lr", ge=0, le=1,
        changeable=True,
    )


def check_total_steps(total_steps: int) -> None:
    """Raise :class:`TheseusError` unless the run has at least one step."""
    if total_steps < 1:
        raise TheseusError(f"a schedule needs at least one training step, got total_steps={total_steps}")


def with_warmup(lr: float, warmup: int, after: optax.Schedule) -> optax.Schedule:
    """``after`` (counting its steps from the end of warmup) behind a linear warmup to ``lr``."""
    if warmup <= 0:
        return after
    ramp = optax.linear_schedule(lr / warmup, lr, warmup - 1) if warmup > 1 else optax.constant_schedule(lr)
    return optax.join_schedules([ramp, after], [warmup])


# Decay shapes as functions of the progress f in [0, 1]. optax.cosine_decay_schedule serves
# "cosine"; optax has no 1 - sqrt(f), and its linear_schedule ends slightly below its end
# value under jit (-7.5e-12 for a floor of 0: XLA multiplies by the reciprocal of the step
# count), which would make the last step's learning rate negative.
_SHAPES: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda f: 1.0 - f,
    "sqrt": lambda f: 1.0 - jnp.sqrt(f),
}


def decay(shape: str, lr: float, min_lr_ratio: float, steps: int) -> optax.Schedule:
    """From ``lr`` at its step 0 to ``lr * min_lr_ratio`` at its step ``steps``, then flat.

    ``shape`` is ``linear``, ``cosine`` (a half cosine) or ``sqrt`` (``1 - sqrt`` of the
    progress). With ``steps <= 0`` the floor holds from step 0.
    """
    floor = lr * min_lr_ratio
    if steps <= 0:
        return optax.constant_schedule(floor)
    if shape == "cosine":
        return optax.cosine_decay_schedule(lr, steps, alpha=min_lr_ratio)
    curve = _SHAPES[shape]

    def schedule(step: jax.Array) -> jax.Array:
        fraction = jnp.clip(jnp.asarray(step, jnp.float32) / steps, 0.0, 1.0)
        return floor + (lr - floor) * curve(fraction)

    return schedule
