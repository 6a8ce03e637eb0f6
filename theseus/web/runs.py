"""Run summaries for the runs list, from pluggable sources.

The list is the concatenation of every source in :data:`SOURCES`: a function from the
output root to :class:`RunSummary` objects. :func:`local_runs` reads the run
directories under ``OUT/runs``; another kind of run (for example jobs submitted to a
cluster) joins the list with one call to :func:`add_source`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from theseus.rundir import RunDirectory, iter_runs, now

log = logging.getLogger("theseus")

#: how far back from the end of metrics.jsonl to look for the last validation loss
VAL_LOSS_WINDOW = 256 * 1024


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs list."""

    project: str
    group: str
    name: str
    job: str
    state: str
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    val_loss: float | None = None
    tokens_per_s: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    heartbeat: float | None = None
    error: str | None = None
    #: where it runs: ``local`` for run directories under OUT, else the source's label
    location: str = "local"
    #: True when the run page of this dashboard shows it (a run directory under OUT)
    has_page: bool = True

    @property
    def id(self) -> str:
        """``project/group/name``."""
        return f"{self.project}/{self.group}/{self.name}"

    @property
    def heartbeat_age(self) -> float | None:
        """Seconds since the last heartbeat."""
        return None if self.heartbeat is None else max(0.0, now() - self.heartbeat)

    @property
    def duration(self) -> float | None:
        """Seconds from the start of the current attempt to its end (or its last heartbeat)."""
        if self.started_at is None:
            return None
        end = self.ended_at or (now() if self.state == "running" else self.heartbeat)
        return None if end is None else max(0.0, end - self.started_at)

    @property
    def progress(self) -> float | None:
        """``step / total`` in [0, 1] when both are known."""
        if self.step is None or not self.total:
            return None
        return min(1.0, max(0.0, self.step / self.total))


RunSource = Callable[[Path], Iterable[RunSummary]]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def last_with(path: Path, key: str, max_bytes: int = VAL_LOSS_WINDOW) -> Any:
    """The value of ``key`` in the last record of a JSON-lines file that has it (only its tail is read)."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - max_bytes))
            lines = fh.read().splitlines()
    except OSError:
        return None
    needle = f'"{key}"'.encode()
    for line in reversed(lines):
        if needle not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and key in rec:
            return rec[key]
    return None


def summarize(run: RunDirectory) -> RunSummary:
    """The list row of one run directory."""
    status = run.read_status() or {}
    last = run.last_metrics() or {}
    project, group = run.path.parent.parent.name, run.path.parent.name
    steps = [s for s in (_int(status.get("step")), _int(last.get("step"))) if s is not None]
    return RunSummary(
        project=project,
        group=group,
        name=run.name,
        job=str(status.get("job") or (run.read_job() or {}).get("job") or "-"),
        state=run.effective_state(),
        step=max(steps) if steps else None,  # status.json is rewritten at most once a second
        total=_int(status.get("total_steps")),
        loss=_number(last.get("loss")),
        val_loss=_number(last.get("val_loss", last_with(run.metrics_path, "val_loss"))),
        tokens_per_s=_number(last.get("tokens_per_s")),
        started_at=_number(status.get("started_at")),
        ended_at=_number(status.get("ended_at")),
        heartbeat=_number(status.get("heartbeat")),
        error=str(status["error"]) if status.get("error") else None,
    )


def local_runs(root: Path) -> Iterator[RunSummary]:
    """Every run directory under ``root/runs``."""
    for run in iter_runs(root):
        yield summarize(run)


def submitted_runs(root: Path) -> Iterator[RunSummary]:
    """Runs sent to SSH hosts and SLURM clusters with ``theseus submit``, as last recorded here.

    The state is the one the submission record last saw (``theseus status NAME`` asks the
    remote again); the runs list never contacts a remote itself.
    """
    from theseus.dispatch.records import iter_records

    for record in iter_records():
        last = record.last or {}
        yield RunSummary(
            project=record.project,
            group=record.group,
            name=record.name,
            job=record.job,
            state=record.state,
            step=_int(last.get("step")),
            started_at=_number(record.submitted_at),
            ended_at=_number(record.cancelled_at),
            heartbeat=_number(last.get("checked_at")),
            error=str(last["detail"]) if last.get("detail") else None,
            location=f"{record.backend}:{record.target}",
            has_page=False,
        )


#: where the runs list comes from; extend with :func:`add_source`
SOURCES: list[RunSource] = [local_runs, submitted_runs]


def add_source(source: RunSource) -> None:
    """Add another kind of run to the list (called once, at import of the module providing it)."""
    if source not in SOURCES:
        SOURCES.append(source)


def list_runs(root: Path) -> list[RunSummary]:
    """Every run from every source; a source that fails is logged and skipped."""
    out: list[RunSummary] = []
    for source in SOURCES:
        try:
            out.extend(source(root))
        except Exception as exc:  # one broken source must not take the list down
            log.warning("run source %s failed: %s: %s", getattr(source, "__name__", source), type(exc).__name__, exc)
    return out


SORT_KEYS: dict[str, Callable[[RunSummary], Any]] = {
    "name": lambda r: r.id,
    "job": lambda r: r.job,
    "state": lambda r: r.state,
    "step": lambda r: r.step if r.step is not None else -1,
    "loss": lambda r: r.loss if r.loss is not None else float("inf"),
    "val_loss": lambda r: r.val_loss if r.val_loss is not None else float("inf"),
    "tokens_per_s": lambda r: r.tokens_per_s if r.tokens_per_s is not None else -1.0,
    "started": lambda r: r.started_at or 0.0,
    "duration": lambda r: r.duration or 0.0,
}


def select(runs: list[RunSummary], query: str = "", state: str = "", sort: str = "started",
           descending: bool = True) -> list[RunSummary]:
    """The runs whose id or job contains ``query`` and whose state is ``state`` (when given), sorted."""
    q = query.strip().lower()
    chosen = [
        r for r in runs
        if (not q or q in r.id.lower() or q in r.job.lower()) and (not state or r.state == state)
    ]
    return sorted(chosen, key=SORT_KEYS.get(sort, SORT_KEYS["started"]), reverse=descending)


def this_host() -> str:
    """The host name runs record in status.json."""
    return socket.gethostname()
