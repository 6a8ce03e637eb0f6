"""From a model's logical-axis rules and a mesh to concrete ``NamedSharding``s.

Parameters carry logical axis names; :func:`logical_rules` turns the model's
``sharding`` property into flax rules (adding ``activation_batch → batch`` for
activations), and :func:`param_shardings` evaluates the model's init abstractly to
read the names of every parameter. :func:`init_params` then creates the parameters
directly in their sharded layout, never whole on one device.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from theseus.base.axis import Axis
from theseus.model.axes import Axes
from theseus.model.module import Module

Rules = tuple[tuple[str, str | None], ...]


def _name(axis: Any) -> Any:
    return axis.value if isinstance(axis, enum.Enum) else axis


def logical_rules(model: Module) -> Rules:
    """The model's rules as plain strings, plus ``activation_batch → batch`` unless it set its own."""
    rules = [(_name(logical), _name(mesh_axis)) for logical, mesh_axis in model.sharding]
    if all(logical != Axes.BATCH.value for logical, _ in rules):
        rules.append((Axes.BATCH.value, Axis.BATCH.value))
    return tuple(rules)


@contextmanager
def sharding_context(model: Module, mesh: Mesh) -> Iterator[None]:
    """Activate the model's rules and the mesh, so activation constraints take effect while tracing."""
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nn.logical_axis_rules(logical_rules(model)):
        yield


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, ndim: int = 3, batch_dim: int | None = None) -> NamedSharding:
    """Rows split over the ``batch`` mesh axis: dim 1 of ``[accum, micro_B, T]``, dim 0 of ``[B, T]``."""
    dim = batch_dim if batch_dim is not None else (1 if ndim == 3 else 0)
    spec: list[str | None] = [None] * ndim
    spec[dim] = Axis.BATCH.value
    return NamedSharding(mesh, P(*spec))


def _sample(sample_shape: Sequence[int]) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(sample_shape), jnp.int32)


def boxed_params(model: Module, rng: jax.Array, sample_shape: Sequence[int]) -> Any:
    """The model's ``params`` collection with its logical-partitioning boxes (trace inside jit/eval_shape)."""
    return model.init(rng, jnp.zeros(tuple(sample_shape), jnp.int32))["params"]


def shardings_of(boxed_tree: Any, model: Module, mesh: Mesh) -> Any:
    """``NamedSharding`` for every leaf of an (abstract) boxed tree; unboxed leaves are replicated."""
    specs = nn.get_partition_spec(boxed_tree)
    return nn.logical_to_mesh_sharding(specs, mesh, logical_rules(model))


def param_shardings(model: Module, mesh: Mesh, sample_shape: Sequence[int]) -> Any:
    """Shardings of the model's parameters (same tree as the unboxed ``params`` collection)."""
    abstract = jax.eval_shape(lambda rng: boxed_params(model, rng, sample_shape), jax.random.key(0))
    return shardings_of(abstract, model, mesh)


def init_params(model: Module, mesh: Mesh, rng: jax.Array, sample_shape: Sequence[int]) -> Any:
    """The model's ``params`` collection, initialised in place in its sharded layout.

    ``sample_shape`` is the ``[B, T]`` of an example input (e.g. ``(1, block_size)``);
    the values do not depend on it.
    """
    shardings = param_shardings(model, mesh, sample_shape)

    def init(key: jax.Array) -> Any:
        with sharding_context(model, mesh):
            return nn.meta.unbox(boxed_params(model, key, sample_shape))

    return jax.jit(init, out_shardings=shardings)(rng)


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
