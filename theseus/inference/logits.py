"""The logits of a flax module as a ``logits_fn(params, idx)``: what generators and evaluations call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax

from theseus.model.module import Module
from theseus.model.sharding import sharding_context


@dataclass(frozen=True)
class ModelLogits:
    """``logits_fn`` of a flax module: ``model.apply({"params": params}, idx, deterministic=True)``.

    Hashable by the module's configuration, so equal models share compiled kernels. With a
    ``mesh`` and a theseus :class:`~theseus.model.module.Module`, the model's logical-axis
    rules are active while tracing, so its activation sharding constraints apply.
    """

    model: Any
    mesh: Any = None

    def __call__(self, params: Any, idx: jax.Array) -> jax.Array:
        with_rules = self.mesh is not None and isinstance(self.model, Module)
        if with_rules:
            with sharding_context(self.model, self.mesh):
                return self.model.apply({"params": params}, idx, deterministic=True)
        return self.model.apply({"params": params}, idx, deterministic=True)


def context_length(model: Any) -> int | None:
    """The longest input ``model`` takes: a theseus Module's :attr:`~Module.block_size`; ``None``: unknown.

    Any other flax module may carry a ``block_size`` attribute too (evaluations accept any
    module with theseus's ``__call__``).
    """
    block = model.block_size if isinstance(model, Module) else getattr(model, "block_size", None)
    return int(block) if block is not None else None
