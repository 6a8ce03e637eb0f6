"""``adamw``: Adam with decoupled weight decay on matrices only, after gradient clipping."""

from __future__ import annotations

from dataclasses import dataclass

import optax

from theseus.config import field
from theseus.training.optimizers.base import OptimizerConfig, decay_mask, with_clipping


@dataclass
class AdamWConfig(OptimizerConfig):
    """Adam moments' decay rates and epsilon."""

    beta1: float = field(
        "optimization/beta1", default=0.9, doc="Adam first-moment decay", ge=0, lt=1,
        changeable=True,
    )
    beta2: float = field(
        "optimization/beta2", default=0.95, doc="Adam second-moment decay", ge=0, lt=1,
        changeable=True,
    )
    eps: float = field("optimization/eps", default=1e-8, doc="Adam epsilon", ge=0, changeable=True)


def adamw_transform(cfg: AdamWConfig, lr: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    """AdamW without clipping; norms, biases and embeddings are not decayed."""
    return optax.adamw(lr, b1=cfg.beta1, b2=cfg.beta2, eps=cfg.eps, weight_decay=cfg.weight_decay, mask=decay_mask)


def build(cfg: AdamWConfig, lr: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    """Clip by global norm, then AdamW."""
    return with_clipping(cfg, adamw_transform(cfg, lr))
