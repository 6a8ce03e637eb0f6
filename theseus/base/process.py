"""Which process this is, asked without starting JAX's backend as a side effect."""

from __future__ import annotations

import sys


def is_primary() -> bool:
    """True for process 0, and whenever JAX's backend has not started yet.

    Asking ``jax.process_index()`` before ``jax.distributed.initialize`` would start a
    single-process backend and make joining a multi-process run impossible, so this
    only asks once the backend is up.
    """
    if "jax" not in sys.modules:
        return True
    from jax._src import xla_bridge

    if not xla_bridge.backends_are_initialized():
        return True
    import jax

    return bool(jax.process_index() == 0)


def seconds_since_start() -> float:
    """Wall-clock seconds since this process started (its ``exec``, interpreter start-up included)."""
    import time

    import psutil

    return time.time() - psutil.Process().create_time()
