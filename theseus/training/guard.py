"""Notice a non-finite loss, gradient or parameter without adding a host sync or a dispatch to each step.

The training step reports ``finite`` (loss, gradient norm and the updated parameters all
finite) as a device scalar. :class:`NonFiniteGuard` only keeps a reference to it. The loop
asks for the first bad step where it waits for the device anyway (when it logs metrics and
before it saves a checkpoint), which reads the flags kept since the last check in one go;
so a non-finite state is never saved and never trained on for long. Should no check come
for :data:`MAX_PENDING` steps, the guard checks by itself.
"""

from __future__ import annotations

from typing import Any

import jax

MAX_PENDING = 256


class NonFiniteGuard:
    """The per-step ``finite`` flags since the last check, read from the device only when asked."""

    def __init__(self) -> None:
        self._pending: list[tuple[Any, int]] = []
        self._bad: int | None = None

    def observe(self, finite: jax.Array, step: int) -> None:
        """Remember step ``step``'s flag (nothing waits for the device here)."""
        self._pending.append((finite, step))
        if len(self._pending) >= MAX_PENDING and self._bad is None:
            self._bad = self._check()

    def first_bad_step(self) -> int | None:
        """The first observed step that went non-finite, or ``None`` (waits for the steps observed so far)."""
        if self._bad is None:
            self._bad = self._check()
        return self._bad

    def _check(self) -> int | None:
        flags = jax.device_get([flag for flag, _ in self._pending])
        pending, self._pending = self._pending, []
        return next((step for flag, (_, step) in zip(flags, pending, strict=True) if not bool(flag)), None)
