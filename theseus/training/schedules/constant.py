"""``constant``: the peak learning rate after an optional linear warmup."""

from __future__ import annotations

import optax

from theseus.training.schedules.base import WarmupConfig, with_warmup

ConstantConfig = WarmupConfig


def build(cfg: ConstantConfig, total_steps: int) -> optax.Schedule:
    """``lr`` from the end of warmup on (set ``optimization.warmup_pct=0`` for none)."""
    return with_warmup(cfg.lr, cfg.warmup(total_steps), optax.constant_schedule(cfg.lr))
