"""Placing batches on the mesh: micro-batches for gradient accumulation, rows split over ``batch``.

The model's side of sharding (logical rules, parameter shardings, sharded init) lives in
:mod:`theseus.model.sharding`, beside the models; its names are imported here too, so the
training code reads one module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from theseus.base.axis import Axis
from theseus.model.sharding import (
    Rules,
    boxed_params,
    init_params,
    logical_rules,
    param_shardings,
    sharding_context,
    shardings_of,
)

__all__ = [
    "Rules",
    "batch_sharding",
    "boxed_params",
    "init_params",
    "logical_rules",
    "microbatches",
    "param_shardings",
    "replicated",
    "shard_batch",
    "sharding_context",
    "shardings_of",
]


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, ndim: int = 3, batch_dim: int | None = None) -> NamedSharding:
    """Rows split over the ``batch`` mesh axis: dim 1 of ``[accum, micro_B, T]``, dim 0 of ``[B, T]``."""
    dim = batch_dim if batch_dim is not None else (1 if ndim == 3 else 0)
    spec: list[str | None] = [None] * ndim
    spec[dim] = Axis.BATCH.value
    return NamedSharding(mesh, P(*spec))


def microbatches(batch: Mapping[str, Any], accum_steps: int) -> dict[str, Any]:
    """Split a global ``[B, T]`` batch into ``[accum_steps, B // accum_steps, T]``.

    Row ``j * accum_steps + a`` goes to micro-batch ``a``, so a device holding a
    contiguous block of rows holds the same block of every micro-batch.
    """
    out = {}
    for key, value in batch.items():
        rows = value.shape[0]
        if rows % accum_steps:
            raise ValueError(f"batch of {rows} rows cannot be split into {accum_steps} micro-batches")
        split = value.reshape(rows // accum_steps, accum_steps, *value.shape[1:])
        out[key] = np.swapaxes(split, 0, 1) if isinstance(value, np.ndarray) else jnp.swapaxes(split, 0, 1)
    return out


def shard_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """Place this process's rows of a host batch onto the mesh, split over ``batch``.

    Arrays are ``[accum, micro_B, T]`` (split on dim 1) or ``[B, T]`` (split on dim 0);
    with several processes each passes its own rows. Alone, one ``device_put`` places them
    all (asynchronously), a third of the host time of the multi-process path.
    """
    if jax.process_count() == 1:
        return dict(jax.device_put(dict(batch), {key: batch_sharding(mesh, np.ndim(v)) for key, v in batch.items()}))
    return {
        key: jax.make_array_from_process_local_data(batch_sharding(mesh, np.ndim(value)), np.asarray(value))
        for key, value in batch.items()
    }
