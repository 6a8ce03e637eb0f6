"""Stopping a run from the dashboard: SIGTERM to its process, as ``kill -TERM`` would.

The run then saves a checkpoint at its next step boundary and ends ``preempted``
(see :mod:`theseus.job`). The signal is sent only when the pid in status.json is
verifiably still that run's process: the run is ``running`` on this host, its lock
file names the same pid (the holder rewrites it when it takes the lock and empties it
on release), and the process was created no later than the run started (a recycled
pid belongs to a younger process).
"""

from __future__ import annotations

import json
import os
import signal
import socket

from theseus.errors import TheseusError
from theseus.rundir import RunDirectory

#: slack between a process's creation time and the start time the run recorded
CREATE_SLACK_S = 2.0


class CannotStop(TheseusError):
    """The run is not a live local process this dashboard may signal."""


def _lock_pid(run: RunDirectory) -> int | None:
    try:
        data = json.loads(run.lock_path.read_text() or "{}")
    except (OSError, ValueError):
        return None
    pid = data.get("pid") if isinstance(data, dict) else None
    return pid if isinstance(pid, int) else None


def verified_pid(run: RunDirectory) -> int:
    """The pid of the live process running ``run`` on this host, or :class:`CannotStop`."""
    import psutil

    status = run.read_status() or {}
    pid, host, started = status.get("pid"), status.get("host"), status.get("started_at")
    if status.get("state") != "running":
        raise CannotStop(f"run {run.name} is {status.get('state', 'unknown')}, not running")
    if host != socket.gethostname():
        raise CannotStop(f"run {run.name} runs on {host}, not on this host")
    if not isinstance(pid, int) or pid <= 0 or not isinstance(started, (int, float)):
        raise CannotStop(f"run {run.name} recorded no usable pid")
    if _lock_pid(run) != pid:
        raise CannotStop(f"run {run.name}: pid {pid} no longer holds the run's lock")
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        raise CannotStop(f"run {run.name}: process {pid} is gone") from None
    if created > started + CREATE_SLACK_S:
        raise CannotStop(f"run {run.name}: pid {pid} now belongs to another process")
    return pid


def stop_run(run: RunDirectory) -> int:
    """Send SIGTERM to ``run``'s process (see the module docstring) and return its pid."""
    pid = verified_pid(run)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise CannotStop(f"run {run.name}: process {pid} is gone") from None
    except PermissionError:
        raise CannotStop(f"run {run.name}: not allowed to signal process {pid}") from None
    return pid
