"""Read only the parameters out of a training checkpoint.

The trainer saves ``{"params": ..., "opt_state": ..., "step": ...}`` as the ``state`` item
of ``checkpoints/<step>/`` (see :mod:`theseus.checkpoint`). Evaluation needs the
parameters alone, so they are restored with orbax's partial restore: the optimizer state
(twice the size of the parameters for Adam) is never read. The arrays are checked
against the shapes the model's config implies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from theseus.checkpoint import choose_intact
from theseus.errors import TheseusError


def abstract_params(model: nn.Module, length: int = 8) -> Any:
    """The model's parameter tree as ``jax.ShapeDtypeStruct``\\ s (nothing is allocated)."""
    sample = jnp.zeros((1, max(1, length)), dtype=jnp.int32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), sample))
    return nn.meta.unbox(variables["params"])


def _unbox_stored(tree: Any, template: Any) -> Any:
    """Collapse ``{"value": array}`` nodes (parameters saved still boxed) where the template has a leaf."""
    if isinstance(tree, dict) and isinstance(template, dict):
        return {k: _unbox_stored(v, template.get(k)) for k, v in tree.items()}
    if isinstance(tree, dict) and not isinstance(template, dict) and set(tree) == {"value"}:
        return tree["value"]
    return tree


def _check(stored: Any, template: Any, where: str) -> None:
    paths = dict(jax.tree_util.tree_flatten_with_path(template)[0])
    found = dict(jax.tree_util.tree_flatten_with_path(stored)[0])
    missing = sorted(jax.tree_util.keystr(p) for p in paths.keys() - found.keys())
    extra = sorted(jax.tree_util.keystr(p) for p in found.keys() - paths.keys())
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise TheseusError(f"the parameters in {where} do not fit the model in config.yaml: {detail}")
    for path, want in paths.items():
        have = found[path]
        if tuple(have.shape) != tuple(want.shape):
            raise TheseusError(
                f"the parameters in {where} do not fit the model in config.yaml: "
                f"{jax.tree_util.keystr(path)} is {tuple(have.shape)}, the model needs {tuple(want.shape)}"
            )


def restore_params(checkpoints_dir: str | Path, model: nn.Module, step: int | None = None) -> tuple[Any, int]:
    """The parameters of checkpoint ``step`` (default: the newest) and the step, as device arrays.

    Raises :class:`TheseusError` when there is no such checkpoint, it is damaged (its files
    do not match their checksums) or its parameters do not match ``model``.
    """
    import orbax.checkpoint as ocp

    directory = Path(checkpoints_dir).resolve()
    step = choose_intact(directory, step)  # checksums verified; a damaged newest one is skipped with a warning
    where = directory / str(step)
    checkpointer = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
    state_meta = checkpointer.metadata(where / "state").item_metadata.tree
    if not isinstance(state_meta, dict) or "params" not in state_meta:
        raise TheseusError(f"checkpoint {where} holds no 'params' (is it a training checkpoint?)")
    item = {"params": jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), state_meta["params"])}
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
    restored = checkpointer.restore(
        where / "state",
        args=ocp.args.PyTreeRestore(item=item, restore_args=restore_args, partial_restore=True),
    )
    template = abstract_params(model)
    params = _unbox_stored(restored["params"], template)
    _check(params, template, str(where))
    dtypes = jax.tree.map(lambda t: t.dtype, template)
    return jax.tree.map(lambda x, dt: jnp.asarray(x, dtype=dt), params, dtypes), step
