"""Write a Hugging Face checkpoint folder: ``config.json``, safetensors weights, tokenizer files.

The folder is written under a temporary name beside its destination and renamed when it is
complete, so a crash leaves nothing that looks like a checkpoint. Weights above
``max_shard_bytes`` are split into ``model-0000i-of-0000n.safetensors`` with a
``model.safetensors.index.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from theseus.errors import TheseusError
from theseus.model.hf.checkpoint import CONFIG, INDEX, WEIGHTS
from theseus.model.hf.safetensors import shard_names, write_safetensors

MAX_SHARD_BYTES = 5 * 10**9


def write_checkpoint(
    dest: Path,
    config: Mapping[str, Any],
    tensors: Mapping[str, np.ndarray],
    copies: Sequence[Path] = (),
    *,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> list[Path]:
    """Write ``tensors`` and ``config`` into the new folder ``dest`` and copy the files ``copies`` beside them.

    Raises :class:`TheseusError` when ``dest`` exists (nothing is overwritten). Returns the
    files written.
    """
    dest = Path(dest)
    if dest.exists():
        raise TheseusError(f"{dest} already exists; export into a new folder")
    if not dest.parent.is_dir():
        raise TheseusError(f"directory {dest.parent} does not exist")
    partial = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        _write(partial, config, tensors, copies, max_shard_bytes)
        os.rename(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return sorted(dest.iterdir())


def _write(
    folder: Path, config: Mapping[str, Any], tensors: Mapping[str, np.ndarray], copies: Sequence[Path], max_bytes: int
) -> None:
    metadata = {"format": "pt"}
    names = sorted(tensors)
    shards = shard_names(((name, tensors[name].nbytes) for name in names), max_bytes)
    if len(shards) == 1:
        write_safetensors(folder / WEIGHTS, tensors, metadata)
    else:
        weight_map: dict[str, str] = {}
        for i, shard in enumerate(shards, start=1):
            file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            write_safetensors(folder / file, {name: tensors[name] for name in shard}, metadata)
            weight_map.update(dict.fromkeys(shard, file))
        total = sum(int(tensors[name].nbytes) for name in names)
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    (folder / CONFIG).write_text(json.dumps(dict(config), indent=2, sort_keys=True) + "\n")
    for source in copies:
        shutil.copyfile(source, folder / source.name)
