"""Progress you can plan around: a live bar with an ETA on a terminal, periodic plain lines elsewhere.

:class:`Progress` is what training and tokenization show while they run. On a terminal
(stderr is a TTY) it is a ``rich`` live bar: what the job is doing (``compiling the
training step``, ``validating``), done/total, elapsed time, ETA, rate and the latest
figures; log lines print above it. Anywhere else (CI, a SLURM log, a pipe) it writes one
plain log line when a phase starts and then every :data:`PLAIN_EVERY_S` seconds
(``$THESEUS_PROGRESS_EVERY`` to change it)::

    [theseus] training r: 120/1000 steps (12%), 0:01:02 elapsed, ETA 0:07:40, 2.1 steps/s, loss 2.3100

The ETA counts from the first update, so the compilation before it is left out of the
rate. :meth:`Progress.update` only stores numbers (the bar redraws on its own thread, and
a plain line is due at most every few seconds), so calling it every step costs nothing
measurable and never waits for a device.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

log = logging.getLogger("theseus")

PLAIN_EVERY_S = 30.0


def plain_every_s() -> float:
    """Seconds between plain progress lines (``$THESEUS_PROGRESS_EVERY``, else :data:`PLAIN_EVERY_S`)."""
    try:
        return max(0.0, float(os.environ.get("THESEUS_PROGRESS_EVERY", PLAIN_EVERY_S)))
    except ValueError:
        return PLAIN_EVERY_S


def clock(seconds: float) -> str:
    """``H:MM:SS``."""
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _rate(per_second: float, unit: str) -> str:
    """``1,234 docs/s``, ``2.5 steps/s`` or, below one a second, ``4.1 s/step``."""
    if per_second >= 100:
        return f"{per_second:,.0f} {unit}/s"
    if per_second >= 1:
        return f"{per_second:.3g} {unit}/s"
    return f"{1 / per_second:.3g} s/{unit.removesuffix('s')}"


class Pace:
    """Rate and ETA from the first update on (so the compilation before it does not count)."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.first: tuple[float, int] | None = None
        self.latest: tuple[float, int] | None = None

    def update(self, done: int, now: float) -> None:
        """Record that ``done`` units are complete at time ``now``."""
        if self.first is None:
            self.first = (now, done)
        self.latest = (now, done)

    def rate(self) -> float | None:
        """Units per second since the first update, or ``None`` before two distinct updates."""
        if self.first is None or self.latest is None:
            return None
        seconds, units = self.latest[0] - self.first[0], self.latest[1] - self.first[1]
        return units / seconds if seconds > 0 and units > 0 else None

    def eta(self) -> float | None:
        """Seconds left at the current rate, or ``None`` when unknown."""
        rate = self.rate()
        if rate is None or self.total is None or self.latest is None:
            return None
        return max(0.0, (self.total - self.latest[1]) / rate)


class Progress:
    """The display of one job's progress (use it as a context manager).

    ``label`` names the work (``training r``), ``total`` the units to reach (``None``:
    unknown, no ETA) and ``unit`` their name as shown after the count (``steps``, ``docs``).
    """

    def __init__(self, label: str, total: int | None, unit: str, *, live: bool | None = None) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.live = sys.stderr.isatty() if live is None else live
        self.pace = Pace(total)
        self.started = time.monotonic()
        self.done: int | None = None
        self.info = ""
        self.activity = ""
        self._last_line = 0.0
        self._announced: set[str] = set()
        self._every = plain_every_s()
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None

    # ---- what jobs call

    def phase(self, activity: str) -> None:
        """Say what the job is doing now (until the next :meth:`update`): ``compiling the training step``."""
        self.activity = activity
        if self._bar is not None:
            self._bar.update(self._task, description=self._describe())
        elif activity not in self._announced:  # a plain log says each kind of activity once
            self._announced.add(activity)
            log.info("%s: %s", self.label, activity)

    def update(self, done: int, info: str | None = None) -> None:
        """``done`` units are complete (``info``: short figures to show beside them)."""
        now = time.monotonic()
        with self._lock:
            self.pace.update(done, now)
            self.done = done
            if info is not None:
                self.info = info
            cleared = bool(self.activity)
            self.activity = ""
        if self._bar is not None:
            fields: dict[str, Any] = {"completed": done, "stats": self._stats(elapsed=False)}
            if cleared:
                fields["description"] = self._describe()
            self._bar.update(self._task, **fields)
        elif now - self._last_line >= self._every:
            self._last_line = now
            log.info(self.line())

    def note(self, info: str) -> None:
        """Replace the figures shown beside the count (e.g. the loss at a log step)."""
        with self._lock:
            self.info = info
        if self._bar is not None:
            self._bar.update(self._task, stats=self._stats(elapsed=False))

    # ---- what is shown

    def line(self) -> str:
        """The plain progress line: ``training r: 120/1000 steps (12%), 0:01:02 elapsed, ETA 0:07:40, ...``."""
        return f"{self.label}: {self._count()}, {self._stats()}"

    def _count(self) -> str:
        done = "-" if self.done is None else f"{self.done:,}"
        if self.total:
            percent = f" ({100 * (self.done or 0) / self.total:.0f}%)" if self.done is not None else ""
            return f"{done}/{self.total:,} {self.unit}{percent}"
        return f"{done} {self.unit}"

    def _stats(self, elapsed: bool = True) -> str:
        parts = [f"{clock(time.monotonic() - self.started)} elapsed"] if elapsed else []
        eta = self.pace.eta()
        if eta is not None:
            parts.append(f"ETA {clock(eta)}")
        rate = self.pace.rate()
        if rate is not None:
            parts.append(_rate(rate, self.unit))
        if self.info:
            parts.append(self.info)
        return ", ".join(parts)

    def _describe(self) -> str:
        return f"{self.label}: {self.activity}" if self.activity else self.label

    # ---- the live bar

    def __enter__(self) -> Progress:
        if self.live:
            self._start_bar()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            _restore_console_logging()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress
        from rich.table import Column

        console = Console(stderr=True)
        count = 2 * len(f"{self.total:,}") + 1 if self.total else 0
        fixed = 2 + len(self.label) + 21 + count + 1 + len(self.unit) + 1 + 8 + 1
        columns: list[Any] = [
            SpinnerColumn(),
            TextColumn("{task.description}", table_column=Column(no_wrap=True, min_width=len(self.label))),
            BarColumn(bar_width=20),
        ]
        if self.total:
            columns.append(MofNCompleteColumn())
        columns += [TextColumn(self.unit), TimeElapsedColumn()]
        # the figures give way first when the terminal is narrow
        room = Column(no_wrap=True, overflow="ellipsis", max_width=max(8, console.width - fixed))
        columns.append(TextColumn("{task.fields[stats]}", table_column=room))
        self._bar = RichProgress(*columns, console=console, transient=False, redirect_stderr=True)
        self._task = self._bar.add_task(self._describe(), total=self.total, completed=0, stats="")
        self._bar.start()
        _route_console_logging()  # log lines print above the bar instead of through it


_SWAPPED: list[tuple[logging.StreamHandler[Any], Any]] = []


def _route_console_logging() -> None:
    """Point the console log handlers at ``sys.stderr`` as the live display replaced it."""
    for handler in log.handlers:
        if type(handler) is logging.StreamHandler and handler.stream is not sys.stderr:
            _SWAPPED.append((handler, handler.setStream(sys.stderr)))


def _restore_console_logging() -> None:
    while _SWAPPED:
        handler, stream = _SWAPPED.pop()
        handler.setStream(stream)

