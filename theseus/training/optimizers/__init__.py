"""Optimizers, registered by name in :data:`theseus.registry.OPTIMIZERS`.

Each entry is an :class:`OptimizerEntry` ``(build, config)``: ``build(cfg, lr)`` returns
an ``optax.GradientTransformation`` (``lr`` a float or a schedule) and ``config`` is the
dataclass of its ``optimization/*`` keys. A new optimizer is one module here plus one
line below.
"""

from __future__ import annotations

import optax

from theseus.config import configure
from theseus.registry import OPTIMIZERS
from theseus.training.optimizers import adamw, muon, sgd
from theseus.training.optimizers.base import OptimizerEntry

OPTIMIZERS["adamw"] = OptimizerEntry(adamw.build, adamw.AdamWConfig)
OPTIMIZERS["sgd"] = OptimizerEntry(sgd.build, sgd.SGDConfig)
OPTIMIZERS["muon"] = OptimizerEntry(muon.build, muon.MuonConfig)


def build_optimizer(
    name: str, lr: optax.ScalarOrSchedule, cfg: object | None = None
) -> optax.GradientTransformation:
    """The optimizer registered as ``name``, configured from the active config unless ``cfg``."""
    entry: OptimizerEntry = OPTIMIZERS[name]
    return entry.build(cfg if cfg is not None else configure(entry.config), lr)


__all__ = ["OptimizerEntry", "build_optimizer"]
