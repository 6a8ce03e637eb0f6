"""Checkpoints: asynchronous, atomic orbax saves with a ``latest`` pointer and retention.

Layout under a run's ``checkpoints/``::

    <step>/            a complete checkpoint (orbax writes ``<step>.orbax-checkpoint-tmp*``
        state/         first and renames it only when every byte is on disk, so an
        meta/          interrupted save is never mistaken for a checkpoint)
    latest             the newest complete step, as text

Listing (:func:`list_checkpoints`) reads the directory only and never imports JAX.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from theseus.config import field
from theseus.errors import TheseusError
from theseus.fsio import atomic_write_text
from theseus.rundir import now

_STEP_DIR = re.compile(r"^\d+$")


@dataclass
class CheckpointConfig:
    """When checkpoints are written and how many are kept."""

    every_steps: int | None = field(
        "checkpoint/every_steps", default=None, doc="save every N steps (None: only at the end)"
    )
    keep_last: int = field("checkpoint/keep_last", default=3, doc="keep the newest K checkpoints")
    keep_every: int | None = field(
        "checkpoint/keep_every", default=None, doc="also keep every checkpoint whose step is a multiple of N"
    )
    async_save: bool = field("checkpoint/async_save", default=True, doc="write checkpoints in the background")


@dataclass(frozen=True)
class CheckpointInfo:
    """One complete checkpoint on disk."""

    step: int
    path: Path
    saved_at: float | None
    size_bytes: int


def complete_steps(directory: str | Path) -> list[int]:
    """Steps with a complete checkpoint in ``directory``, ascending."""
    d = Path(directory)
    if not d.is_dir():
        return []
    steps = []
    for child in d.iterdir():
        if child.is_dir() and _STEP_DIR.match(child.name) and (child / "_CHECKPOINT_METADATA").exists():
            steps.append(int(child.name))
    return sorted(steps)


def read_meta(directory: str | Path, step: int) -> dict[str, Any]:
    """The JSON metadata saved with checkpoint ``step`` (empty when unreadable)."""
    try:
        data = json.loads((Path(directory) / str(step) / "meta" / "metadata").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def list_checkpoints(directory: str | Path) -> list[CheckpointInfo]:
    """Every complete checkpoint with its step, save time and size."""
    out = []
    for step in complete_steps(directory):
        path = Path(directory) / str(step)
        meta = read_meta(directory, step)
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        saved = meta.get("saved_at")
        out.append(CheckpointInfo(step, path, float(saved) if saved is not None else None, size))
    return out


def latest_step(directory: str | Path) -> int | None:
    """The newest complete checkpoint's step, or ``None``."""
    steps = complete_steps(directory)
    return steps[-1] if steps else None


def retained(steps: Iterable[int], keep_last: int, keep_every: int | None) -> set[int]:
    """The steps a retention policy keeps: the newest ``keep_last`` plus multiples of ``keep_every``."""
    ordered = sorted(steps)
    keep = set(ordered[-keep_last:]) if keep_last > 0 else set()
    if keep_every:
        keep |= {s for s in ordered if s % keep_every == 0}
    return keep


class CheckpointManager:
    """Save and restore pytrees of arrays plus JSON metadata, one directory per step.

    Saves are asynchronous by default: :meth:`save` returns once the arrays are copied
    off the devices, and the write finishes in the background. :meth:`wait` blocks until
    it is committed; then ``latest`` is updated and retention applied. Works for
    multi-process runs (orbax coordinates the processes; process 0 writes ``latest``).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        keep_last: int = 3,
        keep_every: int | None = None,
        async_save: bool = True,
    ) -> None:
        import orbax.checkpoint as ocp

        self.directory = Path(directory).resolve()
        self.keep_last = keep_last
        self.keep_every = keep_every
        self.directory.mkdir(parents=True, exist_ok=True)
        handler = ocp.CompositeCheckpointHandler()
        self._ckpt: Any = ocp.AsyncCheckpointer(handler) if async_save else ocp.Checkpointer(handler)
        self._pending: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, directory: str | Path, cfg: CheckpointConfig) -> CheckpointManager:
        """A manager with ``cfg``'s retention and async settings."""
        return cls(directory, keep_last=cfg.keep_last, keep_every=cfg.keep_every, async_save=cfg.async_save)

    def save(self, step: int, state: Any, meta: dict[str, Any] | None = None) -> None:
        """Start saving ``state`` (a pytree of arrays) and ``meta`` (JSON) as ``step``."""
        import orbax.checkpoint as ocp

        self.wait()
        target = self.directory / str(step)
        if target.exists():
            if step in complete_steps(self.directory):
                return  # already saved (e.g. the final step after an interval save)
            shutil.rmtree(target)
        state = _to_savable(state)
        record = dict(meta or {})
        record.setdefault("step", step)
        record["saved_at"] = now()
        with self._lock:
            self._ckpt.save(
                target,
                args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(record)),
            )
            self._pending = step

    def wait(self) -> None:
        """Block until the last save is committed, then update ``latest`` and prune."""
        with self._lock:
            pending = self._pending
            if hasattr(self._ckpt, "wait_until_finished"):
                self._ckpt.wait_until_finished()
            self._pending = None
        if pending is not None:
            self._after_commit()

    def _after_commit(self) -> None:
        if not _is_primary():
            return
        steps = complete_steps(self.directory)
        if not steps:
            return
        atomic_write_text(self.directory / "latest", f"{steps[-1]}\n")
        keep = retained(steps, self.keep_last, self.keep_every)
        for step in steps:
            if step not in keep:
                shutil.rmtree(self.directory / str(step), ignore_errors=True)

    def latest_step(self) -> int | None:
        """The newest complete step."""
        return latest_step(self.directory)

    def steps(self) -> list[int]:
        """All complete steps."""
        return complete_steps(self.directory)

    def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restore ``step`` (default: newest) into the structure/shardings of ``template``.

        ``template`` is a pytree of arrays or ``jax.ShapeDtypeStruct`` (with shardings
        for sharded restores). Raises :class:`TheseusError` when there is no such step.
        """
        import jax
        import numpy as np
        import orbax.checkpoint as ocp

        self.wait()
        if step is None:
            step = self.latest_step()
            if step is None:
                raise TheseusError(f"no complete checkpoint in {self.directory}")
        if step not in complete_steps(self.directory):
            have = ", ".join(map(str, complete_steps(self.directory))) or "none"
            raise TheseusError(f"no checkpoint at step {step} in {self.directory} (have: {have})")

        def abstract(x: Any) -> Any:
            if isinstance(x, jax.ShapeDtypeStruct):
                return x
            arr = x if hasattr(x, "dtype") else np.asarray(x)
            sharding = getattr(arr, "sharding", None)
            return jax.ShapeDtypeStruct(np.shape(arr), arr.dtype, sharding=sharding)

        target = jax.tree.map(abstract, _to_savable(template))
        restored = self._ckpt.restore(
            self.directory / str(step),
            args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()),
        )
        return restored["state"], dict(restored["meta"] or {})

    def close(self) -> None:
        """Finish pending writes and release orbax's resources."""
        self.wait()
        close = getattr(self._ckpt, "close", None)
        if close is not None:
            close()


def _to_savable(tree: Any) -> Any:
    """Turn numpy/python scalars into 0-d arrays (orbax saves arrays only)."""
    import jax
    import numpy as np

    def fix(x: Any) -> Any:
        if isinstance(x, (int, float, bool, np.generic)):
            return np.asarray(x)
        return x

    return jax.tree.map(fix, tree)


def _is_primary() -> bool:
    from theseus.base.process import is_primary

    return is_primary()
