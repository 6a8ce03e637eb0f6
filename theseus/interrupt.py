"""Ctrl-C in the commands that run jobs: a save when there is something to save, else a clean stop.

Left to Python, SIGINT becomes a ``KeyboardInterrupt`` raised wherever the main thread is:
inside an import (reported as a broken module), swallowed by a library, or, while JAX
compiles in C++, only once the compile returns; the interpreter then shuts down while
XLA's threads still run, which ended in ``Segmentation fault``. :func:`install` replaces
that: SIGINT never raises. Its C-level handler writes the signal number to a pipe
(:func:`signal.set_wakeup_fd`) that a watcher thread reads at once, even while the main
thread is busy in C++, and the watcher decides:

- a job that saves on request (``HANDLES_PREEMPTION``) and has reached its first step is
  asked to stop at the next step boundary, exactly as SIGTERM does (checkpoint, state
  ``preempted``, exit code 75);
- otherwise (during start-up or compilation, in a job that cannot save, or at a second
  Ctrl-C) the run's state is recorded as ``failed`` (``interrupted``), one line is
  printed, and the process ends at once with exit code 130 (``os._exit``: no interpreter
  shutdown). Every file theseus writes is written to a temporary name and renamed, and a
  checkpoint counts only once it is complete, so stopping anywhere leaves nothing torn;
- once the job has ended (the command is about to exit with the job's own code) it is
  ignored, so the exit code matches the recorded state.

Only the command line installs this; the Python API (``quick()``, ``run_job``) keeps
Python's own ``KeyboardInterrupt``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Protocol

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C

log = logging.getLogger("theseus")


class Stoppable(Protocol):
    """What the watcher needs of a job (see :class:`theseus.job.BasicJob`)."""

    HANDLES_PREEMPTION: ClassVar[bool]

    @property
    def stepped(self) -> bool:
        """True once the job reported its first step."""

    def stop_requested(self) -> bool:
        """True once a stop was asked for."""

    def request_stop(self) -> None:
        """Ask the job to stop at its next step boundary."""


class Finishable(Protocol):
    """What the watcher needs of a run's status record."""

    def finish(self, **fields: Any) -> None:
        """Record the final state."""


class _Watcher:
    """The thread that reads SIGINT from the wakeup pipe and acts on it."""

    def __init__(self, read_fd: int) -> None:
        self.read_fd = read_fd
        self.lock = threading.Lock()
        self.job: Stoppable | None = None
        self.status: Finishable | None = None
        self.name = ""
        self.ended = False
        thread = threading.Thread(target=self._read, name="theseus-interrupt", daemon=True)
        thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.read_fd, 64)
            except InterruptedError:
                continue
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum == signal.SIGINT:
                    self._interrupted()

    def _interrupted(self) -> None:
        with self.lock:
            if self.ended:
                return
            job = self.job
            if job is not None and job.HANDLES_PREEMPTION and job.stepped and not job.stop_requested():
                log.warning("Ctrl-C: saving at the next step boundary (Ctrl-C again stops at once)")
                job.request_stop()
                return
            self._stop_now()  # never returns

    def _stop_now(self) -> None:
        job, name = self.job, self.name
        if job is None:
            message = "interrupted before the run started"
        elif job.stepped:
            message = f"interrupted: run {name} stopped at once (state failed); run the same command to resume it"
        else:
            message = (
                f"interrupted: run {name} stopped before its first step (state failed); "
                "run the same command to start it again"
            )
        if self.status is not None:
            try:
                self.status.finish(state="failed", ended_at=time.time(), error="interrupted (Ctrl-C)")
            except Exception:  # the state cannot be recorded (a full disk): stopping matters more
                pass
        _to_log_files(message)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        if os.isatty(2):  # a live progress bar hid the cursor and holds the current line
            os.write(2, b"\x1b[?25h\n")
        os.write(2, (message + "\n").encode())
        os._exit(EXIT_INTERRUPTED)


_WATCHER: _Watcher | None = None


def _ignore(signum: int, frame: Any) -> None:
    """The Python-level SIGINT handler: nothing (the watcher acts on the wakeup pipe)."""


def install() -> None:
    """Handle Ctrl-C as this module describes, from now on in this process (main thread only; idempotent)."""
    global _WATCHER
    if threading.current_thread() is not threading.main_thread():
        return
    if _WATCHER is None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        _WATCHER = _Watcher(read_fd)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    signal.signal(signal.SIGINT, _ignore)


@contextmanager
def attached(job: Stoppable, status: Finishable, name: str) -> Iterator[None]:
    """While the block runs, Ctrl-C acts on ``job`` (and ``status``); after it, Ctrl-C is ignored.

    Does nothing unless :func:`install` was called in this process.
    """
    watcher = _WATCHER
    if watcher is None:
        yield
        return
    install()  # a library imported since may have replaced the handler
    with watcher.lock:
        watcher.job, watcher.status, watcher.name, watcher.ended = job, status, name, False
    try:
        yield
    finally:
        detach()


def detach() -> None:
    """From now on Ctrl-C is ignored: the job has ended and the caller records its own state.

    Taken under the watcher's lock, so a Ctrl-C being handled at that moment finishes first
    (and ends the process); one arriving later can no longer overwrite a recorded state.
    """
    watcher = _WATCHER
    if watcher is None:
        return
    with watcher.lock:
        watcher.job, watcher.status, watcher.ended = None, None, True


def _to_log_files(message: str) -> None:
    """Write ``message`` to the run's log.txt (the file handlers) without echoing it on the console."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, (), None)
    for handler in log.handlers:
        if isinstance(handler, logging.FileHandler):
            try:
                handler.handle(record)
                handler.flush()
            except Exception:
                pass
