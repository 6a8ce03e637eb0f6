"""The run directory: the one place the CLI, the dashboard and dispatch read a run from.

::

    OUT/data/<dataset>/                tokenized data, shared by the runs under OUT
    OUT/runs/<project>/<group>/<name>/
        config.yaml  job.json  status.json  metrics.jsonl  log.txt
        config_history.jsonl   (the config it started with, then each change and the step it took effect)
        checkpoints/<step>/   checkpoints/latest   (laid out by theseus.checkpoint)
        results/
        tensorboard/  wandb/   (when those sinks are enabled)

Every JSON/YAML file is written atomically. A run is guarded by a lock file beside it
(``.<name>.lock``) held with ``flock``: a second live process gets a clear error, and a
lock left by a dead process is simply taken over (the kernel drops ``flock`` locks when
their holder dies).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from theseus.errors import RunLockedError
from theseus.fsio import (
    append_line,
    atomic_write_json,
    atomic_write_text,
    last_jsonl,
    read_json,
    read_jsonl,
)
from theseus.names import check_name

STATES = ("queued", "running", "completed", "failed", "preempted")

#: names in the layout above (dispatch spells remote paths with them)
RUNS = "runs"
CONFIG_FILE = "config.yaml"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
HEARTBEAT_STALE_S = 120.0


def now() -> float:
    """Wall-clock time in seconds (one place to read the clock)."""
    return time.time()


def iso(ts: float | None) -> str:
    """A compact local ISO timestamp, or '-'."""
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def run_parts(project: str, group: str, name: str) -> tuple[str, str, str, str]:
    """The path of a run under its output root, as parts: ``("runs", project, group, name)``."""
    return (RUNS, project, group, name)


def data_dir(root: str | Path) -> Path:
    """``root/data``: the tokenized datasets every run under the output root ``root`` reads."""
    return Path(root) / "data"


def new_run_id() -> str:
    """A fresh run identifier: 8 lowercase hex digits (also the run's W&B id)."""
    return secrets.token_hex(4)


@dataclass(frozen=True)
class RunDirectory:
    """Paths and file operations of one run directory."""

    path: Path

    @classmethod
    def of(
        cls, root: str | Path, name: str, project: str = "default", group: str = "default"
    ) -> RunDirectory:
        """The run directory for ``name`` under the output root ``root``.

        Raises :class:`TheseusError` unless ``name``, ``project`` and ``group`` are plain
        names (see :func:`theseus.names.check_name`), so a run never lands outside ``root``.
        """
        check_name(project, "project")
        check_name(group, "group")
        check_name(name, "run name")
        return cls(Path(root).joinpath(*run_parts(project, group, name)))

    @property
    def name(self) -> str:
        """The run's name."""
        return self.path.name

    @property
    def output_root(self) -> Path | None:
        """The output root ``OUT`` of ``OUT/runs/<project>/<group>/<name>``; ``None`` for a directory laid out otherwise."""
        parents = self.path.resolve().parents
        return parents[3] if len(parents) > 3 and parents[2].name == RUNS else None

    @property
    def config_path(self) -> Path:
        """The resolved config (all that is needed to reproduce the run)."""
        return self.path / CONFIG_FILE

    @property
    def config_history_path(self) -> Path:
        """One JSON record per config event: the start (whole config), each change, each restore."""
        return self.path / "config_history.jsonl"

    @property
    def job_path(self) -> Path:
        """Identity: job key, versions, host, git commit."""
        return self.path / "job.json"

    @property
    def status_path(self) -> Path:
        """State, pid, host, start/end, step and heartbeat."""
        return self.path / STATUS_FILE

    @property
    def metrics_path(self) -> Path:
        """One JSON record per log step."""
        return self.path / METRICS_FILE

    @property
    def log_path(self) -> Path:
        """The human-readable log."""
        return self.path / "log.txt"

    @property
    def checkpoints_dir(self) -> Path:
        """Orbax checkpoints, one directory per step."""
        return self.path / CHECKPOINTS

    @property
    def results_dir(self) -> Path:
        """Evaluation results (JSON)."""
        return self.path / "results"

    @property
    def tensorboard_dir(self) -> Path:
        """TensorBoard event files (``logging.tensorboard=true``)."""
        return self.path / "tensorboard"

    @property
    def lock_path(self) -> Path:
        """The lock file, beside the run directory so the run can be archived while held."""
        return self.path.parent / f".{self.path.name}.lock"

    def exists(self) -> bool:
        """True once the run has written its config."""
        return self.config_path.is_file()

    # ---- status
    def read_status(self) -> dict[str, Any] | None:
        """The current status record, or ``None``."""
        data = read_json(self.status_path)
        return data if isinstance(data, dict) else None

    def write_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json (atomically) and return the new record."""
        status = self.read_status() or {}
        status.update(fields)
        atomic_write_json(self.status_path, status)
        return status

    def read_job(self) -> dict[str, Any] | None:
        """The job.json record, or ``None``."""
        data = read_json(self.job_path)
        return data if isinstance(data, dict) else None

    def run_id(self) -> str | None:
        """The run's identifier (job.json ``run_id``): kept across resumes, new after ``--fresh``."""
        value = (self.read_job() or {}).get("run_id")
        return value if isinstance(value, str) else None

    def update_job(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into job.json (atomically) and return the new record."""
        record = self.read_job() or {}
        record.update(fields)
        atomic_write_json(self.job_path, record)
        return record

    def last_metrics(self) -> dict[str, Any] | None:
        """The last record of metrics.jsonl."""
        return last_jsonl(self.metrics_path)

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one metrics record."""
        self.path.mkdir(parents=True, exist_ok=True)
        append_line(self.metrics_path, json.dumps(record, sort_keys=True, default=float))

    def truncate_metrics(self, after_step: int) -> None:
        """Drop metrics records past ``after_step`` (a resume replays those steps)."""
        if not self.metrics_path.is_file():
            return
        kept = []
        with open(self.metrics_path) as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line torn by a crash
                if isinstance(rec, dict) and int(rec.get("step", 0)) <= after_step:
                    kept.append(json.dumps(rec, sort_keys=True))
        atomic_write_text(self.metrics_path, "".join(k + "\n" for k in kept))

    def read_config_history(self) -> list[dict[str, Any]]:
        """The records of config_history.jsonl, oldest first (a line torn by a crash is skipped)."""
        if not self.config_history_path.is_file():
            return []
        return read_jsonl(self.config_history_path)

    def append_config_history(self, record: dict[str, Any]) -> None:
        """Append one config event (``event``, ``step``, ``time`` and what changed)."""
        self.path.mkdir(parents=True, exist_ok=True)
        append_line(self.config_history_path, json.dumps(record, sort_keys=True, default=str))

    def restep_last_config_event(self, step: int) -> None:
        """Set the step of the newest config event (a resume fell back to an older checkpoint than expected)."""
        records = self.read_config_history()
        if not records or records[-1].get("step") == step:
            return
        records[-1]["step"] = step
        atomic_write_text(
            self.config_history_path, "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records)
        )

    def write_result(self, name: str, obj: Any) -> Path:
        """Write ``results/<name>.json`` atomically and return its path."""
        path = self.results_dir / f"{name}.json"
        atomic_write_json(path, obj)
        return path

    def write_config(self, yaml_text: str) -> None:
        """Write config.yaml atomically."""
        atomic_write_text(self.config_path, yaml_text)

    def effective_state(self) -> str:
        """The state, with 'running' shown as 'stale' when its process is gone."""
        status = self.read_status() or {}
        state = str(status.get("state", "unknown"))
        if state == "running" and not _holder_alive(status):
            return "stale"
        return state

    @contextmanager
    def lock(self) -> Iterator[dict[str, Any] | None]:
        """Hold the run's lock; yields the record of a dead previous holder, if any."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # the holder's record stays as it is: only the holder may rewrite it
                holder = _read_lock(fd)
                who = (
                    f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
                    if holder
                    else "another process"
                )
                raise RunLockedError(
                    f"run {self.name} is in use by {who}; wait for it to finish or stop it first"
                ) from None
            previous = _read_lock(fd)
            os.ftruncate(fd, 0)
            os.pwrite(
                fd,
                json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": now()}).encode(),
                0,
            )
            try:
                yield previous or None
            finally:
                try:
                    os.ftruncate(fd, 0)
                except OSError:
                    pass
        finally:
            os.close(fd)


def _read_lock(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        data = json.loads(raw.decode()) if raw else {}
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _holder_alive(status: dict[str, Any]) -> bool:
    pid = status.get("pid")
    host = status.get("host")
    if host != socket.gethostname() or not isinstance(pid, int):
        beat = status.get("heartbeat")
        return isinstance(beat, (int, float)) and now() - beat < HEARTBEAT_STALE_S
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def iter_runs(root: str | Path) -> Iterator[RunDirectory]:
    """Every run directory under ``root/runs`` (project/group/name), sorted."""
    base = Path(root) / RUNS
    if not base.is_dir():
        return
    for project in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for group in sorted(g for g in project.iterdir() if g.is_dir() and not g.name.startswith(".")):
            for path in sorted(r for r in group.iterdir() if r.is_dir() and not r.name.startswith(".")):
                run = RunDirectory(path)
                if run.exists() or run.status_path.is_file():
                    yield run
