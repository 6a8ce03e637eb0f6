"""Checkpoints: asynchronous, atomic, checksummed orbax saves with a ``latest`` pointer and retention.

Layout under a run's ``checkpoints/``::

    <step>/              orbax writes ``<step>.orbax-checkpoint-tmp*`` first and renames it
        state/           when every byte is on disk; then the primary process hashes every
        meta/            file into ``checksums.json``. A checkpoint is complete once its
        checksums.json   checksums are there, so an interrupted save is never chosen.
    latest               the newest complete step, as text (this module is its only writer; for
                         people and shell tools: ``theseus submit`` reads it on remote hosts)
    .damaged-<time>/     checkpoints whose files no longer match their checksums, set aside
    .superseded-<time>/  checkpoints set aside by ``theseus restore``

Restoring verifies the checksums and falls back to the newest intact checkpoint, saying
so in the log. Retention always keeps the newest complete checkpoint. Listing
(:func:`list_checkpoints`) and :func:`verify` read the directory only and never import JAX.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from theseus.config import field
from theseus.errors import (
    CheckpointDamaged,
    StorageError,
    TheseusError,
    describe_os_error,
    is_user_os_error,
    storage_error_from_message,
)
from theseus.fsio import atomic_write_json, atomic_write_text, read_json
from theseus.rundir import now

_STEP_DIR = re.compile(r"^\d+$")
MANIFEST = "checksums.json"
LATEST = "latest"
#: the orbax items of a checkpoint: the saved pytree and its JSON metadata
STATE_ITEM = "state"
META_ITEM = "meta"
#: where a training checkpoint's state keeps the model parameters (beside ``step`` and ``opt_state``)
PARAMS = "params"
#: set in a checkpoint's metadata: the checkpoint is complete only once its manifest exists
_CHECKSUMMED = "checksummed"
_ORBAX_DONE = "_CHECKPOINT_METADATA"

log = logging.getLogger("theseus")


@dataclass
class CheckpointConfig:
    """When checkpoints are written and how many are kept."""

    every_steps: int | None = field(
        "checkpoint/every_steps", default=None, doc="save every N steps (None: only at the end)", ge=1,
        changeable=True,
    )
    keep_last: int = field(
        "checkpoint/keep_last", default=3, doc="keep the newest K checkpoints", ge=1,
        changeable=True,
    )
    keep_every: int | None = field(
        "checkpoint/keep_every",
        default=None,
        doc="also keep every checkpoint whose step is a multiple of N",
        ge=1,
        changeable=True,
    )
    async_save: bool = field(
        "checkpoint/async_save", default=True, doc="write checkpoints in the background",
        changeable=True,
    )


@dataclass(frozen=True)
class CheckpointInfo:
    """One complete checkpoint on disk."""

    step: int
    path: Path
    saved_at: float | None
    size_bytes: int


def is_complete(path: Path) -> bool:
    """True when ``path`` is a committed checkpoint (orbax finished it, and its checksums are written).

    Checkpoints saved before checksums existed carry no promise of them and count as
    complete once orbax committed them.
    """
    if not (path / _ORBAX_DONE).exists():
        return False
    if (path / MANIFEST).exists():
        return True
    meta = read_json(path / META_ITEM / "metadata")
    return not (isinstance(meta, dict) and meta.get(_CHECKSUMMED))


def complete_steps(directory: str | Path) -> list[int]:
    """Steps with a complete checkpoint in ``directory``, ascending."""
    d = Path(directory)
    if not d.is_dir():
        return []
    steps = []
    for child in d.iterdir():
        if child.is_dir() and _STEP_DIR.match(child.name) and is_complete(child):
            steps.append(int(child.name))
    return sorted(steps)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(path: Path) -> None:
    """Hash every file of the committed checkpoint ``path`` into its ``checksums.json``."""
    files = {
        str(f.relative_to(path)): {"bytes": f.stat().st_size, "sha256": _digest(f)}
        for f in sorted(path.rglob("*"))
        if f.is_file() and f.name != MANIFEST
    }
    atomic_write_json(path / MANIFEST, {"algorithm": "sha256", "files": files})


def verify(directory: str | Path, step: int) -> str | None:
    """What is wrong with checkpoint ``step`` (a file missing, resized or changed), or ``None``.

    A checkpoint without checksums (saved by an older theseus) cannot be checked and
    passes; loading it is the remaining test.
    """
    path = Path(directory) / str(step)
    if not (path / MANIFEST).exists():
        return None
    manifest = read_json(path / MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        return f"its {MANIFEST} is unreadable"
    for rel, want in sorted(files.items()):
        f = path / rel
        try:
            size = f.stat().st_size
        except FileNotFoundError:
            return f"{rel} is missing"
        if size != want.get("bytes"):
            return f"{rel} has {size} bytes, {want.get('bytes')} were saved"
        if _digest(f) != want.get("sha256"):
            return f"{rel} does not match its checksum"
    return None


def integrity(directory: str | Path, step: int) -> str:
    """``ok``, ``unverified`` (no checksums) or ``damaged: <what>`` for checkpoint ``step``."""
    problem = verify(directory, step)
    if problem is not None:
        return f"damaged: {problem}"
    return "ok" if (Path(directory) / str(step) / MANIFEST).exists() else "unverified"


def refresh_latest(directory: str | Path) -> int | None:
    """Point ``latest`` at the newest complete step (remove it when there is none); return that step."""
    d = Path(directory)
    steps = complete_steps(d)
    if steps:
        atomic_write_text(d / LATEST, f"{steps[-1]}\n")
        return steps[-1]
    (d / LATEST).unlink(missing_ok=True)
    return None


def set_aside(directory: str | Path, steps: Iterable[int], label: str) -> Path:
    """Move checkpoints ``steps`` into ``.<label>-<time>/`` (never deleted) and refresh ``latest``."""
    d = Path(directory)
    aside = d / f".{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir(parents=True, exist_ok=True)
    for step in steps:
        shutil.move(str(d / str(step)), str(aside / str(step)))
    refresh_latest(d)
    return aside


def choose_intact(directory: str | Path, step: int | None = None) -> int:
    """``step`` when it is complete and intact, else (``step=None``) the newest intact checkpoint.

    Raises :class:`TheseusError` when there is none, naming what is wrong.
    """
    d = Path(directory)
    steps = complete_steps(d)
    if step is not None:
        if step not in steps:
            have = ", ".join(map(str, steps)) or "none"
            raise TheseusError(f"no checkpoint at step {step} in {d} (have: {have})")
        problem = verify(d, step)
        if problem is not None:
            raise CheckpointDamaged(f"checkpoint {step} in {d} is damaged ({problem}); choose another step")
        return step
    if not steps:
        raise TheseusError(f"no complete checkpoint in {d}")
    for candidate in reversed(steps):
        problem = verify(d, candidate)
        if problem is None:
            return candidate
        log.warning("checkpoint %d in %s is damaged (%s); trying an older one", candidate, d, problem)
    raise CheckpointDamaged(f"every checkpoint in {d} is damaged")


def read_meta(directory: str | Path, step: int) -> dict[str, Any]:
    """The JSON metadata saved with checkpoint ``step`` (empty when unreadable)."""
    try:
        data = json.loads((Path(directory) / str(step) / META_ITEM / "metadata").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_params(directory: str | Path, step: int) -> Any:
    """The parameters alone (the state's :data:`PARAMS`) of checkpoint ``step``, as numpy arrays.

    orbax restores them partially: the optimizer state, often twice their size, is never
    read. Raises :class:`TheseusError` when the checkpoint holds no parameters.
    """
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    where = Path(directory).resolve() / str(step) / STATE_ITEM  # orbax reads relative paths as nothing
    checkpointer = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
    stored = checkpointer.metadata(where).item_metadata.tree
    if not isinstance(stored, dict) or PARAMS not in stored:
        raise TheseusError(f"checkpoint {where.parent} holds no {PARAMS!r} (is it a training checkpoint?)")
    item = {PARAMS: jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), stored[PARAMS])}
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
    restored = checkpointer.restore(
        where, args=ocp.args.PyTreeRestore(item=item, restore_args=restore_args, partial_restore=True)
    )
    return restored[PARAMS]


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
    """The steps a retention policy keeps: the newest ``keep_last`` (at least one), multiples of ``keep_every``."""
    ordered = sorted(steps)
    keep = set(ordered[-max(1, keep_last):])  # the newest one is never dropped
    if keep_every:
        keep |= {s for s in ordered if s % keep_every == 0}
    return keep


class CheckpointManager:
    """Save and restore pytrees of arrays plus JSON metadata, one directory per step.

    Saves are asynchronous by default: :meth:`save` returns once the arrays are copied
    off the devices, and a background thread waits for orbax's commit, writes the
    checksums, points ``latest`` at the new step and applies retention. :meth:`wait`
    blocks until all that is done. Works for multi-process runs (orbax coordinates the
    processes; process 0 writes the checksums and ``latest`` and prunes).
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

        if keep_last < 1:
            raise TheseusError(f"checkpoint.keep_last must be >= 1, got {keep_last}")
        self.directory = Path(directory).resolve()
        self.keep_last = keep_last
        self.keep_every = keep_every
        self.directory.mkdir(parents=True, exist_ok=True)
        handler = ocp.CompositeCheckpointHandler()
        self._ckpt: Any = ocp.AsyncCheckpointer(handler) if async_save else ocp.Checkpointer(handler)
        self._async = async_save
        self._finisher: threading.Thread | None = None
        self._failure: tuple[int, BaseException] | None = None

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
            if is_complete(target):
                return  # already saved (e.g. the final step after an interval save)
            if _is_primary():
                shutil.rmtree(target)
        state = _to_savable(state)
        _check_room(self.directory, state, step)
        record = dict(meta or {})
        record.setdefault("step", step)
        record["saved_at"] = now()
        record[_CHECKSUMMED] = True
        try:
            self._ckpt.save(
                target,
                args=ocp.args.Composite(
                    **{STATE_ITEM: ocp.args.StandardSave(state), META_ITEM: ocp.args.JsonSave(record)}
                ),
            )
        except Exception as exc:
            self._discard(step)
            raise _storage_error(exc, target) from exc
        if self._async:
            self._finisher = threading.Thread(
                target=self._finish, args=(step,), name="theseus-checkpoint-commit", daemon=True
            )
            self._finisher.start()
        else:
            self._finish(step)
            self._raise_failure()

    def _finish(self, step: int) -> None:
        """Wait for orbax's commit, then write the checksums, ``latest`` and prune (process 0)."""
        try:
            if self._async:
                self._ckpt.wait_until_finished()
            if _is_primary():
                write_manifest(self.directory / str(step))
                self._after_commit()
        except BaseException as exc:  # handed to the thread that waits
            self._failure = (step, exc)

    def wait(self) -> None:
        """Block until the last save is committed, checksummed and pruned; raise what went wrong."""
        finisher = self._finisher
        if finisher is not None:
            finisher.join()
            self._finisher = None
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is None:
            return
        step, exc = self._failure
        self._failure = None
        self._discard(step)
        raise _storage_error(exc, self.directory / str(step)) from exc

    def _discard(self, step: int) -> None:
        """Remove what a failed save of ``step`` left (never a complete checkpoint)."""
        if not _is_primary():
            return
        for tmp in self.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)
        target = self.directory / str(step)
        if target.is_dir() and not is_complete(target):
            shutil.rmtree(target, ignore_errors=True)

    def _after_commit(self) -> None:
        steps = complete_steps(self.directory)
        if not steps:
            return
        refresh_latest(self.directory)
        keep = retained(steps, self.keep_last, self.keep_every)
        for pruned in self.directory.glob(".pruned-*"):  # left by a crash in the middle of a delete
            shutil.rmtree(pruned, ignore_errors=True)
        for step in steps:
            if step not in keep:
                # renamed first, so a crash mid-delete never leaves half a checkpoint under its step
                gone = self.directory / f".pruned-{step}"
                os.replace(self.directory / str(step), gone)
                shutil.rmtree(gone, ignore_errors=True)

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
        Checksums are not checked here: see :meth:`restore_intact`.
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
            args=ocp.args.Composite(
                **{STATE_ITEM: ocp.args.StandardRestore(target), META_ITEM: ocp.args.JsonRestore()}
            ),
        )
        return restored[STATE_ITEM], dict(restored[META_ITEM] or {})

    def restore_intact(self, template: Any, step: int | None = None) -> tuple[Any, dict[str, Any], int] | None:
        """Restore ``step``, or the newest checkpoint that passes its checksums and loads.

        With ``step=None`` a damaged checkpoint is skipped and, once an intact one is
        restored, set aside into ``.damaged-<time>/`` with a warning naming both. Returns
        ``(state, meta, step)``, or ``None`` when there is no checkpoint at all. Raises
        :class:`CheckpointDamaged` when ``step`` (or every checkpoint) is damaged.
        """
        self.wait()
        candidates = [step] if step is not None else list(reversed(self.steps()))
        damaged: list[tuple[int, str]] = []
        for candidate in candidates:
            problem = verify(self.directory, candidate)
            if problem is None:
                try:
                    state, meta = self.restore(template, candidate)
                except Exception as exc:
                    if is_user_os_error(exc) or (step is not None and not _looks_damaged(exc)):
                        raise
                    problem = f"it does not load: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                else:
                    self._set_aside_damaged(damaged, candidate)
                    return state, meta, candidate
            if step is not None:
                raise CheckpointDamaged(
                    f"checkpoint {step} in {self.directory} is damaged ({problem}); choose another step"
                )
            damaged.append((candidate, problem))
        if damaged:
            listed = "; ".join(f"{s}: {p}" for s, p in damaged[:3])
            raise CheckpointDamaged(
                f"every checkpoint in {self.directory} is damaged ({listed}); use --fresh to start over"
            )
        return None

    def _set_aside_damaged(self, damaged: list[tuple[int, str]], restored: int) -> None:
        if not damaged or not _is_primary():
            return
        aside = set_aside(self.directory, [s for s, _ in damaged], "damaged")
        for s, problem in damaged:
            log.warning(
                "checkpoint %d is damaged (%s): moved it to %s and resumed from checkpoint %d instead",
                s, problem, aside, restored,
            )

    def close(self) -> None:
        """Finish pending writes and release orbax's resources."""
        try:
            self.wait()
        finally:
            close = getattr(self._ckpt, "close", None)
            if close is not None:
                close()


def _check_room(directory: Path, state: Any, step: int) -> None:
    """Refuse a save that cannot fit (its arrays' bytes plus a little per file) before orbax starts it.

    A save that runs out of space midway fails in orbax's worker threads; this catches the
    usual case early, with the sizes in the message.
    """
    import jax

    leaves = jax.tree.leaves(state)
    needed = sum(int(getattr(leaf, "nbytes", 0)) for leaf in leaves) + 4096 * len(leaves) + 65536
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise StorageError(
            f"cannot save checkpoint {directory / str(step)}: it needs about {needed / 2**20:.2f} MiB and "
            f"{free / 2**20:.2f} MiB are free (ENOSPC); free some space and run the same command again"
        )


def _looks_damaged(exc: BaseException) -> bool:
    """True for the errors orbax raises on missing or unreadable checkpoint files."""
    return isinstance(exc, (FileNotFoundError, ValueError, KeyError))


def _storage_error(exc: BaseException, path: Path) -> BaseException:
    """A one-line :class:`StorageError` for a full, read-only or forbidden disk; else ``exc`` itself."""
    if isinstance(exc, TheseusError):
        return exc
    if is_user_os_error(exc):
        assert isinstance(exc, OSError)
        return StorageError(f"cannot save checkpoint {path}: {describe_os_error(exc, path)}")
    found = storage_error_from_message(exc, path)
    return StorageError(f"cannot save checkpoint {found}") if found is not None else exc


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
