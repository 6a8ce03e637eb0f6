"""From a model's logical-axis rules and a mesh to the concrete shardings of its parameters.

Parameters carry logical axis names; :func:`logical_rules` turns the model's
``sharding`` property into flax rules (adding ``activation_batch → batch`` for
activations), and :func:`param_shardings` evaluates the model's init abstractly to
read the names of every parameter. :func:`init_params` then creates the parameters
directly in their sharded layout, never whole on one device. Training, evaluation and
generation all read a model's layout from here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
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


def boxed_params(model: Module, rng: jax.Array, sample_shape: Sequence[int]) -> Any:
    """The model's ``params`` collection with its logical-partitioning boxes (trace inside jit/eval_shape)."""
    return model.init(rng, jnp.zeros(tuple(sample_shape), jnp.int32))["params"]


def shardings_of(boxed_tree: Any, model: Module, mesh: Mesh) -> Any:
    """``NamedSharding`` for every leaf of an (abstract) boxed tree; unboxed leaves are replicated.

    A dimension the mesh axes its rule names do not divide (a vocabulary of 50257 over two
    devices, say) is replicated instead.
    """
    specs = nn.get_partition_spec(boxed_tree)
    shardings = nn.logical_to_mesh_sharding(specs, mesh, logical_rules(model))
    return jax.tree.map(_fit, shardings, nn.meta.unbox(boxed_tree))


def _fit(sharding: NamedSharding, leaf: Any) -> NamedSharding:
    shape = np.shape(leaf)
    spec = list(sharding.spec) + [None] * (len(shape) - len(sharding.spec))
    fitted = []
    for dim, axes in zip(shape, spec, strict=False):
        names = axes if isinstance(axes, tuple) else (axes,) if axes is not None else ()
        fitted.append(axes if dim % int(np.prod([sharding.mesh.shape[a] for a in names])) == 0 else None)
    return sharding if fitted == spec else NamedSharding(sharding.mesh, P(*fitted))


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
