"""Notice a non-finite loss, gradient or parameter without adding a host sync to each step.

The training step reports ``finite`` (loss, gradient norm and the updated parameters all
finite). :class:`NonFiniteGuard` folds it, on the device, into the first step where it
was false; the loop reads that one number only where it waits for the device anyway
(when it logs metrics and before it saves a checkpoint), so a non-finite state is never
saved and never trained on for long.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


@jax.jit
def _start(finite: jax.Array, step: jax.Array) -> jax.Array:
    return jnp.where(finite, -1, step).astype(jnp.int32)


@jax.jit
def _fold(first: jax.Array, finite: jax.Array, step: jax.Array) -> jax.Array:
    return jnp.where((first < 0) & ~finite, step, first).astype(jnp.int32)


class NonFiniteGuard:
    """The first step whose ``finite`` flag was false, kept on the device until asked for."""

    def __init__(self) -> None:
        self._first: Any = None

    def observe(self, finite: jax.Array, step: int) -> None:
        """Fold step ``step``'s flag in (asynchronously: nothing waits for the device here)."""
        self._first = _start(finite, step) if self._first is None else _fold(self._first, finite, step)

    def first_bad_step(self) -> int | None:
        """The first step that went non-finite, or ``None`` (waits for the steps observed so far)."""
        if self._first is None:
            return None
        first = int(jax.device_get(self._first))
        return None if first < 0 else first
