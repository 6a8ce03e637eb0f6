"""``wsd``: warmup, a long stable phase at the peak, then a short decay (warmup-stable-decay)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import optax

from theseus.config import field
from theseus.errors import TheseusError
from theseus.training.schedules.base import DecayConfig, decay, with_warmup


@dataclass
class WSDConfig(DecayConfig):
    """Warmup, stable and decay phases; the decay takes the last ``decay_pct`` of the run."""

    decay_pct: float = field(
        "optimization/decay_pct", default=0.1, doc="fraction of total steps spent decaying", ge=0, le=1,
        changeable=True,
    )
    decay_shape: Literal["linear", "sqrt", "cosine"] = field(
        "optimization/decay_shape", default="linear", doc="shape of the decay: linear, sqrt (1 - sqrt) or cosine",
        changeable=True,
    )

    def decay(self, total_steps: int) -> int:
        """The number of decay steps for a run of ``total_steps``."""
        if not 0.0 <= self.decay_pct <= 1.0:
            raise TheseusError(f"optimization.decay_pct must be in [0, 1], got {self.decay_pct}")
        return round(self.decay_pct * total_steps)


def build(cfg: WSDConfig, total_steps: int) -> optax.Schedule:
    """Peak from step ``W`` through the first decay step ``total_steps - D``; floor at the last step."""
    warmup = cfg.warmup(total_steps)
    decay_steps = cfg.decay(total_steps)
    decay_start = total_steps - decay_steps
    if warmup > decay_start:
        raise TheseusError(
            f"warmup ({warmup} steps) and decay ({decay_steps} steps) do not fit in {total_steps} steps; "
            "lower optimization.warmup_pct/warmup_steps or optimization.decay_pct"
        )
    stable = optax.constant_schedule(cfg.lr)
    tail = decay(cfg.decay_shape, cfg.lr, cfg.min_lr_ratio, decay_steps - 1)
    return with_warmup(cfg.lr, warmup, optax.join_schedules([stable, tail], [decay_start - warmup]))
