"""JAX's persistent compilation cache: compiled steps are reused across runs and resumes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from theseus.config import field

DEFAULT_DIR = "~/.cache/theseus/xla"


@dataclass
class CompileCacheConfig:
    """Where compiled XLA programs are cached between processes."""

    compilation_cache: str | None = field(
        "system/compilation_cache",
        default=DEFAULT_DIR,
        doc="directory of JAX's persistent compilation cache (None: off); $JAX_COMPILATION_CACHE_DIR wins",
        changeable=True,
    )


def enable(cfg: CompileCacheConfig) -> Path | None:
    """Turn the cache on (before the first compile); returns its directory or ``None``."""
    import jax

    directory = os.environ.get("JAX_COMPILATION_CACHE_DIR") or cfg.compilation_cache
    if not directory:
        return None
    path = Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home must not stop training
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
