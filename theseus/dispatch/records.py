"""Submission records: what this machine remembers about each submitted run.

One JSON file per run, ``$THESEUS_HOME/submissions/<project>/<group>/<name>.json``
(``THESEUS_HOME`` defaults to ``~/.theseus``), written atomically, mode 0600. It holds
everything needed to find the run again without the dispatch config, and never a
secret (only the *names* of the environment variables that were passed).

Format (``format: 1``)::

    format        1
    id            submission id, e.g. "20260101-120000-ab12cd"
    name project group job          the run's identity and job key
    backend       "ssh" | "slurm"
    target        host or cluster name in the dispatch config
    request       {chip, n_chips, nodes, tasks_per_node, partition, time}
    out           remote output root; run_dir = out/runs/<project>/<group>/<name>
    run_dir       remote run directory
    code          digest of the shipped code;  environment: digest of the remote venv
    env_keys      names of the environment variables given to the job
    processes     ssh: one per host: {host, ssh, ssh_options, job_dir, pid}
    slurm         slurm: {login, ssh_options, job_dir, job_id}
    submitted_at  unix time;  cancelled_at: unix time or null
    last          last known state: {state, detail, step, checked_at}

``state`` is one of ``queued running completed failed preempted cancelled lost unknown``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from theseus.errors import TheseusError
from theseus.fsio import atomic_write_text, read_json

FORMAT = 1
HOME_VAR = "THESEUS_HOME"
TERMINAL_STATES = ("completed", "failed", "preempted", "cancelled", "lost")


def home() -> Path:
    """theseus's local state directory (``$THESEUS_HOME`` or ``~/.theseus``)."""
    return Path(os.environ.get(HOME_VAR) or "~/.theseus").expanduser()


def submissions_dir() -> Path:
    """Where the records live."""
    return home() / "submissions"


def new_id() -> str:
    """A submission id: time-ordered and unique."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class Submission:
    """One submitted run, as recorded here (see the module docstring for the fields)."""

    id: str
    name: str
    project: str
    group: str
    job: str
    backend: str
    target: str
    request: dict[str, Any]
    out: str
    run_dir: str
    code: str
    environment: str
    env_keys: list[str] = field(default_factory=list)
    processes: list[dict[str, Any]] = field(default_factory=list)
    slurm: dict[str, Any] = field(default_factory=dict)
    submitted_at: float = field(default_factory=time.time)
    cancelled_at: float | None = None
    last: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT

    @property
    def path(self) -> Path:
        """This record's file."""
        return record_path(self.name, self.project, self.group)

    @property
    def state(self) -> str:
        """The last known state."""
        return str(self.last.get("state", "unknown"))

    def save(self) -> None:
        """Write the record atomically, readable by this user only."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_text(self.path, json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.chmod(self.path, 0o600)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Submission:
        """A record read back (unknown fields of newer formats are ignored)."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def record_path(name: str, project: str = "default", group: str = "default") -> Path:
    """The record file of a run."""
    return submissions_dir() / project / group / f"{name}.json"


def load(name: str, project: str = "default", group: str = "default") -> Submission:
    """The record of a submitted run; a clear error when there is none."""
    data = read_json(record_path(name, project, group))
    if not isinstance(data, dict):
        hint = "" if project == group == "default" else f" in {project}/{group}"
        raise TheseusError(f"no submitted run {name}{hint} (see `theseus ls`)")
    return Submission.from_dict(data)


def iter_records() -> Iterator[Submission]:
    """Every record, ordered by submission time."""
    base = submissions_dir()
    if not base.is_dir():
        return
    found = []
    for path in base.glob("*/*/*.json"):
        data = read_json(path)
        if isinstance(data, dict):
            try:
                found.append(Submission.from_dict(data))
            except TypeError:
                continue  # a damaged record
    yield from sorted(found, key=lambda s: s.submitted_at)
