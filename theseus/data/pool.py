"""A small ordered process pool for CPU-bound work on a stream.

Why not ``multiprocessing.Pool`` or ``ProcessPoolExecutor``: their ``imap`` reads its
whole input ahead (memory grows with a streaming dataset); ``fork`` is unsafe in a
process that runs threads (the job's heartbeat, the progress bar); and ``spawn``
re-runs the caller's ``__main__`` script in every worker. This pool spawns workers
without the caller's script, keeps at most ``max_in_flight`` tasks queued, yields
results in input order. Its workers ignore SIGINT/SIGTERM/SIGUSR1 (a signal sent to the
whole process group is for the parent, which stops them) and exit by themselves when the
parent dies.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import traceback
import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from theseus.errors import TheseusError

POLL_S = 0.5


def _serve(
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    func: Callable[[Any], Any],
    tasks: Any,
    results: Any,
    parent: int,
) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)  # a signal to the whole group is the parent's to handle
    try:
        initializer(*initargs)
    except BaseException as exc:
        results.put((-1, False, _portable(exc)))
        return
    while True:
        try:
            item = tasks.get(timeout=POLL_S)
        except queue.Empty:
            if os.getppid() != parent:  # the parent died (e.g. SIGKILL): stop
                return
            continue
        if item is None:
            return
        index, payload = item
        try:
            results.put((index, True, func(payload)))
        except BaseException as exc:
            results.put((index, False, _portable(exc)))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling as is, else a RuntimeError carrying its traceback."""
    if isinstance(exc, TheseusError):
        return TheseusError(str(exc))
    text = "".join(traceback.format_exception(exc))
    return RuntimeError(f"worker failed:\n{text}")


@contextmanager
def _without_main_script() -> Iterator[None]:
    """Hide ``__main__``'s file while starting children, so ``spawn`` does not re-run it."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


class OrderedPool:
    """``workers`` spawned processes applying ``func`` to a stream, results in order."""

    def __init__(
        self,
        func: Callable[[Any], Any],
        workers: int,
        initializer: Callable[..., None],
        initargs: tuple[Any, ...] = (),
        max_in_flight: int | None = None,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._tasks = context.Queue()
        self._results = context.Queue()
        self._max_in_flight = max_in_flight or 2 * workers
        args = (initializer, initargs, func, self._tasks, self._results, os.getpid())
        self._procs = [context.Process(target=_serve, args=args, daemon=True) for _ in range(workers)]
        with _without_main_script():
            for proc in self._procs:
                proc.start()

    def map(self, items: Iterable[Any]) -> Iterator[Any]:
        """``func(item)`` for each item, in order; a worker's exception is raised here."""
        done: dict[int, Any] = {}
        sent = received = 0
        source = iter(items)
        exhausted = False
        while True:
            while not exhausted and sent - received < self._max_in_flight:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                self._tasks.put((sent, item))
                sent += 1
            if received == sent and exhausted:
                return
            while received not in done:
                index, ok, value = self._next_result()
                if not ok:
                    raise value
                done[index] = value
            yield done.pop(received)
            received += 1

    def _next_result(self) -> tuple[int, bool, Any]:
        while True:
            try:
                result: tuple[int, bool, Any] = self._results.get(timeout=POLL_S)
                return result
            except queue.Empty:
                dead = [p for p in self._procs if not p.is_alive()]
                if dead:
                    raise TheseusError(
                        f"a tokenization worker died (exit code {dead[0].exitcode}; -9 is usually the system "
                        "running out of memory): run again with fewer data.workers"
                    ) from None

    def close(self) -> None:
        """Stop the workers (pending tasks are dropped)."""
        try:
            while True:
                self._tasks.get_nowait()
        except (queue.Empty, OSError, ValueError):
            pass
        for _ in self._procs:
            try:
                self._tasks.put_nowait(None)
            except Exception:
                break
        for proc in self._procs:
            proc.join(timeout=2 * POLL_S)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self._tasks.cancel_join_thread()
        self._results.cancel_join_thread()

    def __enter__(self) -> OrderedPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
