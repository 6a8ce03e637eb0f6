"""``linear``: linear warmup, then a straight line from the peak down to ``lr * min_lr_ratio``."""

from __future__ import annotations

import optax

from theseus.training.schedules.base import DecayConfig, decay, with_warmup

LinearConfig = DecayConfig


def build(cfg: LinearConfig, total_steps: int) -> optax.Schedule:
    """Peak at step ``W`` (end of warmup), floor at the last step ``total_steps - 1``."""
    warmup = cfg.warmup(total_steps)
    return with_warmup(cfg.lr, warmup, decay("linear", cfg.lr, cfg.min_lr_ratio, total_steps - 1 - warmup))
