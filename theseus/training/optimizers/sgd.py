"""``sgd``: SGD with (optionally Nesterov) momentum and decoupled weight decay on matrices."""

from __future__ import annotations

from dataclasses import dataclass

import optax

from theseus.config import field
from theseus.training.optimizers.base import OptimizerConfig, decay_mask, with_clipping


@dataclass
class SGDConfig(OptimizerConfig):
    """Momentum settings."""

    momentum: float = field(
        "optimization/momentum",
        default=0.9,
        doc="SGD momentum (0: none); fixed under a run, since 0 keeps no momentum buffer",
        ge=0,
        lt=1,
    )
    nesterov: bool = field("optimization/nesterov", default=False, doc="Nesterov momentum", changeable=True)


def build(cfg: SGDConfig, lr: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    """Clip, momentum, then ``-lr * (momentum_buffer + weight_decay * param)``."""
    parts = []
    if cfg.momentum:
        parts.append(optax.trace(decay=cfg.momentum, nesterov=cfg.nesterov))
    # present even at weight_decay=0 (adding 0 x param changes nothing), so the state keeps its
    # shape when a resumed run changes the decay
    parts.append(optax.add_decayed_weights(cfg.weight_decay, mask=decay_mask))
    parts.append(optax.scale_by_learning_rate(lr))
    return with_clipping(cfg, optax.chain(*parts))
