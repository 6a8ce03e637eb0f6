"""What every optimizer shares: config keys, the registry entry type, and parameter masks.

Parameters are told apart by the name of their leaf (flax's conventions): ``bias``,
``scale`` (norms) and ``embedding`` (lookup tables) are never weight-decayed, and
neither is anything with fewer than two dimensions. Names are read from the dict keys
of the path, so the rules hold for scanned (layer-stacked) parameters too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import optax

from theseus.config import field

NO_DECAY_NAMES = ("bias", "scale", "embedding")


class OptimizerEntry(NamedTuple):
    """A registered optimizer: ``build(cfg, lr) -> GradientTransformation`` and its config class.

    ``lr`` is a float or an ``optax.Schedule`` giving the learning rate at each step.
    """

    build: Callable[[Any, optax.ScalarOrSchedule], optax.GradientTransformation]
    config: type


@dataclass
class OptimizerConfig:
    """Keys every optimizer reads."""

    weight_decay: float = field(
        "optimization/weight_decay", default=0.1, doc="decoupled weight decay (times lr) on matrices", ge=0,
        changeable=True,
    )
    grad_clip: float | None = field(
        "optimization/grad_clip",
        default=1.0,
        doc="clip gradients to this global norm; None or 0: no clipping",
        ge=0,
        changeable=True,
    )


def path_names(path: Sequence[Any]) -> list[str]:
    """The dict keys along a pytree path (boxes and other wrappers skipped)."""
    return [str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey)]


def is_decayed(path: Sequence[Any], leaf: Any) -> bool:
    """Whether weight decay applies: a matrix (2+ dims) not named like a bias, norm or embedding."""
    names = path_names(path)
    return bool(names) and names[-1] not in NO_DECAY_NAMES and len(getattr(leaf, "shape", ())) >= 2


def decay_mask(params: Any) -> Any:
    """A tree of bools, True where :func:`is_decayed` holds."""
    return jax.tree_util.tree_map_with_path(is_decayed, params)


def with_clipping(cfg: OptimizerConfig, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx`` preceded by global-norm clipping when ``cfg.grad_clip`` is set.

    Without clipping, a stateless identity takes the clip's place, so the optimizer state
    has one shape whatever ``grad_clip`` is: a run may turn clipping on or off on resume.
    """
    if cfg.grad_clip is None or cfg.grad_clip <= 0:
        return optax.chain(optax.identity(), tx)
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), tx)


def scaled_lr(lr: optax.ScalarOrSchedule, factor: float) -> optax.ScalarOrSchedule:
    """``lr`` times ``factor``, keeping it a schedule when it is one."""
    if callable(lr):
        return lambda step: lr(step) * factor
    return lr * factor
