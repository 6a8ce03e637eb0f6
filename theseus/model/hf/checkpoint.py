"""A Hugging Face checkpoint folder: ``config.json``, safetensors weights (one file or sharded), tokenizer.

:func:`open_checkpoint` takes a local folder, or a hub id that it fetches (or finds in the
local hub cache) only when given one; without a network that is one clear error, never a
hang or a traceback.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from theseus.errors import TheseusError
from theseus.model.hf.safetensors import SafetensorsFile

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
)
KEY = "architecture.huggingface.model"


@dataclass(frozen=True, eq=False)
class HFCheckpoint:
    """A checkpoint folder with its parsed ``config.json`` and where each tensor lives (one per folder)."""

    path: Path
    config: Mapping[str, Any]

    @functools.cached_property
    def files(self) -> dict[str, SafetensorsFile]:
        """Tensor name → the (memory-mapped) file holding it."""
        index = self.path / INDEX
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError) as exc:
                raise TheseusError(f"{index} is not a valid safetensors index: {exc}") from None
            opened = {name: SafetensorsFile(self.path / name) for name in sorted(set(weight_map.values()))}
            return {tensor: opened[name] for tensor, name in weight_map.items()}
        single = self.path / WEIGHTS
        if single.is_file():
            weights = SafetensorsFile(single)
            return dict.fromkeys(weights.names(), weights)
        legacy = [p.name for p in self.path.glob("*.bin")] + [p.name for p in self.path.glob("*.pth")]
        hint = f" ({', '.join(legacy)} are PyTorch pickles, which theseus does not read)" if legacy else ""
        raise TheseusError(f"no {WEIGHTS} or {INDEX} in {self.path}{hint}")

    def has(self, name: str) -> bool:
        """Whether the checkpoint holds tensor ``name``."""
        return name in self.files

    def tensor(self, name: str) -> np.ndarray:
        """Tensor ``name`` as a read-only memory-mapped array."""
        return self.files[name].array(name)

    @property
    def tokenizer_files(self) -> list[Path]:
        """The tokenizer (and generation) files present in the folder."""
        return [self.path / name for name in TOKENIZER_FILES if (self.path / name).is_file()]


def open_checkpoint(model: str) -> HFCheckpoint:
    """The checkpoint at local folder ``model``, or hub id ``model`` (TheseusError if neither works)."""
    return _open(str(Path(model).expanduser()) if _looks_local(model) else model)


@functools.lru_cache(maxsize=8)
def _open(model: str) -> HFCheckpoint:
    path = Path(model)
    if not path.is_dir():
        if _looks_local(model):
            raise TheseusError(f"{KEY}={model}: no such directory")
        path = _fetch(model)
    config_file = path / CONFIG
    try:
        config = json.loads(config_file.read_text())
    except FileNotFoundError:
        raise TheseusError(f"{KEY}={model}: no {CONFIG} in {path}") from None
    except ValueError as exc:
        raise TheseusError(f"{config_file} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise TheseusError(f"{config_file} does not hold a JSON object")
    return HFCheckpoint(path.resolve(), config)


def _looks_local(model: str) -> bool:
    """A path (absolute, relative with ./ or ~, or more than one '/') rather than an ``org/name`` hub id."""
    return model.startswith((os.sep, ".", "~")) or model.count("/") > 1 or Path(model).exists()


def _fetch(repo_id: str) -> Path:
    """Download (or find in the local hub cache) a hub checkpoint's config, weights and tokenizer."""
    try:
        from huggingface_hub import snapshot_download

        patterns = [CONFIG, WEIGHTS, INDEX, "model-*.safetensors", *TOKENIZER_FILES]
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        why = "HF_HUB_OFFLINE is set and it is not in the local hub cache" if offline else type(exc).__name__
        raise TheseusError(
            f"{KEY}={repo_id} is not a local folder and the hub cannot provide it ({why}); "
            "download the checkpoint where the network is reachable and set the key to its folder"
        ) from None
