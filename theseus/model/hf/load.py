"""Checkpoint tensors → parameters in their sharded layout, each device reading only its own slice.

The parameter tree's paths are the checkpoint's dotted names (``model.layers.0.mlp.up_proj.weight``
is ``params["model"]["layers"]["0"]["mlp"]["up_proj"]["weight"]``). A tensor is read from its
memory-mapped file one device shard at a time and cast to the parameter dtype on the way,
so loading never holds a whole float32 copy of the model beside the result.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from theseus.errors import TheseusError
from theseus.model.hf.checkpoint import HFCheckpoint

# names older checkpoints use for the same tensor: GPT-2 without its "transformer." prefix,
# GPT-NeoX's output head under transformers' newer name
_ALIASES = {"embed_out.weight": ("lm_head.weight",)}


def dotted(path: tuple[Any, ...]) -> str:
    """The checkpoint name of a parameter tree path."""
    return ".".join(str(getattr(key, "key", key)) for key in path)


def stored_name(checkpoint: HFCheckpoint, name: str) -> str:
    """The name ``checkpoint`` stores parameter ``name`` under (TheseusError when it has none)."""
    candidates = (name, *_ALIASES.get(name, ()), name.partition(".")[2])
    for candidate in candidates:
        if candidate and checkpoint.has(candidate):
            return candidate
    raise TheseusError(
        f"checkpoint {checkpoint.path} has no tensor {name} (does its config.json belong to its weights?)"
    )


def pretrained_params(checkpoint: HFCheckpoint, abstract: Any, shardings: Any | None = None) -> Any:
    """Read every leaf of ``abstract`` (a tree of ``ShapeDtypeStruct``) from ``checkpoint``.

    ``shardings`` (same tree, ``jax.sharding.Sharding`` leaves) places each device's slice;
    without it the arrays go to the default device.
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    placements = jax.tree_util.tree_leaves(shardings) if shardings is not None else [None] * len(flat)
    leaves = []
    for (path, spec), sharding in zip(flat, placements, strict=True):
        name = dotted(path)
        tensor = checkpoint.tensor(stored_name(checkpoint, name))
        if tuple(tensor.shape) != tuple(spec.shape):
            raise TheseusError(
                f"checkpoint {checkpoint.path}: {name} is {tuple(tensor.shape)}, the config implies {tuple(spec.shape)}"
            )
        leaves.append(_place(tensor, spec.dtype, sharding))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _place(tensor: np.ndarray, dtype: Any, sharding: Any) -> jax.Array:
    if sharding is None:
        return jax.device_put(np.asarray(tensor, dtype=dtype))
    return jax.make_array_from_callback(
        tuple(tensor.shape), sharding, lambda index: np.asarray(tensor[index], dtype=dtype)
    )
