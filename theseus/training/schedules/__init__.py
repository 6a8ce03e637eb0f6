"""Learning-rate schedules, registered by name in :data:`theseus.registry.SCHEDULES`.

Each entry is a :class:`ScheduleEntry` ``(build, config)``: ``build(cfg, total_steps)``
returns an ``optax.Schedule`` and ``config`` is the dataclass of its ``optimization/*``
keys. A new schedule is one module here plus one line below.
"""

from __future__ import annotations

import optax

from theseus.config import configure
from theseus.registry import SCHEDULES
from theseus.training.schedules import constant, cosine, linear, wsd
from theseus.training.schedules.base import ScheduleEntry

SCHEDULES["constant"] = ScheduleEntry(constant.build, constant.ConstantConfig)
SCHEDULES["cosine"] = ScheduleEntry(cosine.build, cosine.CosineConfig)
SCHEDULES["linear"] = ScheduleEntry(linear.build, linear.LinearConfig)
SCHEDULES["wsd"] = ScheduleEntry(wsd.build, wsd.WSDConfig)


def build_schedule(name: str, total_steps: int, cfg: object | None = None) -> optax.Schedule:
    """The schedule registered as ``name`` for ``total_steps``, configured from the active config unless ``cfg``."""
    entry: ScheduleEntry = SCHEDULES[name]
    return entry.build(cfg if cfg is not None else configure(entry.config), total_steps)


__all__ = ["ScheduleEntry", "build_schedule"]
