"""Jobs and their lifecycle: identity, run directory, resume, preemption.

A job is a class with a ``CONFIG`` dataclass and a ``run()`` method:

- :class:`BasicJob` runs once; it may report progress and react to preemption.
- :class:`CheckpointedJob` can save and restore checkpoints in its run directory.
- :class:`RestoreableJob` resumes itself: :meth:`RestoreableJob.resume_state` hands it
  the newest complete checkpoint (or the one ``theseus restore`` chose).

:func:`run_job` is what ``theseus run`` and ``quick()`` call: it takes the run's lock,
decides between a fresh start, a resume and "already completed", writes ``config.yaml``,
``job.json`` and ``status.json``, installs the SIGTERM/SIGUSR1 handlers, keeps a
heartbeat, and records how the job ended.

A run's config may change under it only in its *changeable* keys (``field(...,
changeable=True)``: budgets, the learning rate and its schedule, intervals, logging,
evaluation, retention); a change there continues the run (a completed one too) and is
appended to ``config_history.jsonl`` with the step it took effect. A change to any other
key is refused, naming the keys.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, Generic, TypeVar

from omegaconf import DictConfig

import theseus
from theseus import interrupt
from theseus.checkpoint import (
    CheckpointConfig,
    CheckpointManager,
    complete_steps,
    refresh_latest,
    set_aside,
    verify,
)
from theseus.config import Schema, configuration, configure, missing_keys, schema, to_config, to_tree, to_yaml
from theseus.errors import CheckpointDamaged, ConfigError, Preempted, TheseusError
from theseus.fsio import atomic_write_json, write_json_even_when_full
from theseus.rundir import RunDirectory, data_dir, new_run_id, now

C = TypeVar("C")

EXIT_OK = 0
EXIT_USER_ERROR = 2
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: state saved, run again to resume
HEARTBEAT_S = 10.0

log = logging.getLogger("theseus")


@dataclass(frozen=True)
class ExecutionSpec:
    """Where and under which identity a job runs."""

    name: str
    root: Path
    project: str = "default"
    group: str = "default"

    @property
    def run(self) -> RunDirectory:
        """The run directory object."""
        return RunDirectory.of(self.root, self.name, self.project, self.group)

    @property
    def run_dir(self) -> Path:
        """``root/runs/<project>/<group>/<name>``."""
        return self.run.path

    @property
    def data_dir(self) -> Path:
        """``root/data``: tokenized datasets shared by every run under this root."""
        return data_dir(self.root)


class BasicJob(Generic[C]):
    """A unit of work with a config dataclass (``CONFIG``) hydrated into ``self.args``.

    ``self.args`` is the ``CONFIG`` instance of this run (the name ``config`` is taken by the
    class method that lists the config classes); ``self.spec`` is the run's identity and place
    (:class:`ExecutionSpec`).
    """

    CONFIG: ClassVar[type[Any]]
    #: True when the job checks :meth:`stop_requested` and saves before stopping; otherwise
    #: a preemption signal stops it at once with :class:`Preempted`.
    HANDLES_PREEMPTION: ClassVar[bool] = False
    #: set by :func:`run_job` (``--accept-data-change``): continue on data that changed since the run started
    accept_data_change: bool = False

    def __init__(self, spec: ExecutionSpec) -> None:
        self.spec = spec
        self.args: C = configure(self.CONFIG)
        self.log = log
        self._status: _StatusWriter | None = None
        self._stop = threading.Event()
        self._stepped = False

    @classmethod
    def config(cls) -> list[type[Any]]:
        """The classes whose fields make up this job's config schema."""
        return [cls.CONFIG]

    @classmethod
    def describe(cls) -> str:
        """The first line of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @property
    def run_dir(self) -> RunDirectory:
        """This job's run directory."""
        return self.spec.run

    def prepare(self) -> None:
        """Check what can be checked before anything is written; raise :class:`TheseusError` on a mistake.

        :func:`run_job` calls it before it creates or changes the run directory, so a bad
        input found here (missing data, sizes that do not fit, an impossible batch) leaves
        nothing behind. The default checks nothing.
        """

    def resolved(self) -> dict[str, Any]:
        """Config values :meth:`prepare` worked out for keys left to it, by dotted key.

        :func:`run_job` writes them into the run's ``config.yaml``, so the run reproduces
        from that file alone (the trainer fills in ``architecture.vocab_size`` from the data
        this way). The default is none.
        """
        return {}

    def run(self) -> None:
        """Do the job's work."""
        raise NotImplementedError

    def report(self, step: int, **info: Any) -> None:
        """Record progress: ``step`` (and any extra fields) go into status.json."""
        self._stepped = True
        if self._status is not None:
            self._status.update(step=step, **info)

    @property
    def stepped(self) -> bool:
        """True once the job reported its first step (a stop request can then be saved)."""
        return self._stepped

    def record_config_event(self, event: str, step: int, **fields: Any) -> None:
        """Append ``event`` (at ``step``, with ``fields``) to the run's config_history.jsonl (process 0 only)."""
        if _is_primary():
            _append_config_event(self.run_dir, event, step, None, **fields)

    def stop_requested(self) -> bool:
        """True once SIGTERM/SIGUSR1 arrived: save state and raise :class:`Preempted`."""
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Ask the job to stop at its next step boundary (what the signal handler calls)."""
        self._stop.set()


class CheckpointedJob(BasicJob[C]):
    """A job that saves and restores checkpoints under its run directory."""

    HANDLES_PREEMPTION: ClassVar[bool] = True

    def __init__(self, spec: ExecutionSpec) -> None:
        super().__init__(spec)
        self.checkpoint_config: CheckpointConfig = configure(CheckpointConfig)
        self._checkpoints: CheckpointManager | None = None

    @classmethod
    def config(cls) -> list[type[Any]]:
        """The job's own config plus the checkpoint policy."""
        return [*super().config(), CheckpointConfig]

    @property
    def checkpoints(self) -> CheckpointManager:
        """The run's checkpoint manager (created on first use)."""
        if self._checkpoints is None:
            self._checkpoints = CheckpointManager.from_config(
                self.run_dir.checkpoints_dir, self.checkpoint_config
            )
        return self._checkpoints

    def should_checkpoint(self, step: int) -> bool:
        """True when the interval policy asks for a checkpoint after ``step``."""
        every = self.checkpoint_config.every_steps
        return bool(every) and step % int(every or 1) == 0

    def save(self, step: int, state: Any, meta: dict[str, Any] | None = None) -> None:
        """Save ``state`` as checkpoint ``step`` (asynchronously when configured)."""
        self.checkpoints.save(step, state, meta)
        self.report(step, checkpoint_step=step)

    def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restore checkpoint ``step`` (default newest) shaped like ``template``."""
        return self.checkpoints.restore(template, step)

    def close(self) -> None:
        """Wait for pending checkpoint writes."""
        if self._checkpoints is not None:
            self._checkpoints.close()


class RestoreableJob(CheckpointedJob[C]):
    """A checkpointed job that resumes from its newest (or a chosen) checkpoint."""

    #: set by :func:`run_job` when ``theseus restore`` names a step
    restore_step: int | None = None
    #: the step recorded with this execution's config change, if any (see :func:`run_job`)
    _config_event_step: int | None = None

    def resume_step(self) -> int:
        """The checkpoint a resume will start from, as far as the directory tells (0: none)."""
        if self.restore_step is not None:
            return self.restore_step
        steps = complete_steps(self.run_dir.checkpoints_dir)
        return steps[-1] if steps else 0

    def resume_state(self, template: Any) -> tuple[Any, dict[str, Any]] | None:
        """The state to continue from, or ``None`` for a fresh start.

        That is the chosen checkpoint, else the newest one whose checksums hold (damaged
        newer ones are set aside with a warning). The metrics of steps after it are
        dropped, since they will be written again; with no checkpoint, all of them are.
        """
        found = self.checkpoints.restore_intact(template, self.restore_step)
        step = 0 if found is None else found[2]
        if _is_primary():
            self.run_dir.truncate_metrics(step)
            if self._config_event_step is not None and step != self._config_event_step:
                self.run_dir.restep_last_config_event(step)  # fell back past a damaged checkpoint
        if found is None:
            return None
        self.log.info("resuming %s from checkpoint step %d", self.spec.name, step)
        return found[0], found[1]


# --------------------------------------------------------------------------- running


class _StatusWriter:
    """Keeps status.json current: throttled step updates plus a heartbeat thread."""

    def __init__(self, run: RunDirectory, base: dict[str, Any], *, enabled: bool = True) -> None:
        self.run = run
        self.enabled = enabled
        self.state = dict(base)
        self._lock = threading.Lock()
        self._last_write = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="theseus-heartbeat", daemon=True)

    def start(self) -> None:
        self.write()
        if self.enabled:
            self._thread.start()

    def update(self, **fields: Any) -> None:
        with self._lock:
            self.state.update(fields)
            due = now() - self._last_write >= 1.0
        if due:
            self.write()

    def write(self) -> None:
        with self._lock:
            self.state["heartbeat"] = now()
            self._last_write = now()
            record = dict(self.state)
        if self.enabled and _is_primary():
            atomic_write_json(self.run.status_path, record)

    def _beat(self) -> None:
        while not self._done.wait(HEARTBEAT_S):
            try:
                self.write()
            except OSError:  # a full or vanished disk: the job itself reports it
                pass

    def finish(self, **fields: Any) -> None:
        """Record the final state; on a full disk the file is rewritten in place rather than left 'running'."""
        self._done.set()
        with self._lock:
            self.state.update(fields)
            self.state["heartbeat"] = now()
            record = dict(self.state)
        if not (self.enabled and _is_primary()):
            return
        try:
            write_json_even_when_full(self.run.status_path, record)
        except OSError as exc:
            log.error("could not record the run's final state in %s: %s", self.run.status_path, exc)


def _is_primary() -> bool:
    from theseus.base.process import is_primary

    return is_primary()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version(), "theseus": theseus.__version__}
    for pkg in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def resolve_job(job: str | type[BasicJob[Any]]) -> tuple[str, type[BasicJob[Any]]]:
    """``(key, class)`` for a registry key or a job class."""
    from theseus.registry import JOBS

    if isinstance(job, str):
        return job, JOBS[job]
    for key, cls in JOBS.items():
        if cls is job:
            return key, job
    return f"{job.__module__}.{job.__qualname__}", job


def validate(job_cls: type[BasicJob[Any]], cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` unless ``cfg`` fully configures ``job_cls``."""
    tree = to_tree(cfg)
    missing = missing_keys({k: v for k, v in tree.items() if k not in ("job", "request")})
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ConfigError(f"config key(s) without a value: {shown}; set them in the YAML or as key=value")
    for cls in job_cls.config():
        configure(cls, cfg)


def _config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old value, new value)}`` for every key whose value differs (``request`` aside)."""
    from theseus.config import flatten_tree

    a = flatten_tree({k: v for k, v in old.items() if k != "request"})
    b = flatten_tree({k: v for k, v in new.items() if k != "request"})
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _show_changes(changes: dict[str, tuple[Any, Any]], limit: int = 5) -> str:
    """``a.b (1 -> 2), c.d (x -> y)``, at most ``limit`` of them."""
    shown = [f"{key} ({_short(old)} -> {_short(new)})" for key, (old, new) in list(changes.items())[:limit]]
    return ", ".join(shown) + (" ..." if len(changes) > limit else "")


def _short(value: Any) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _archive(run: RunDirectory) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = run.path.parent / ".archive" / f"{run.name}-{stamp}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while dest.exists():
        dest = dest.with_name(f"{run.name}-{stamp}-{n}")
        n += 1
    os.replace(run.path, dest)
    return dest


class _Signals:
    """Route SIGTERM/SIGUSR1 to a job: a stop request first, an immediate stop on repeat.

    With ``linger`` (a CLI process that exits right after the job), a signal arriving
    after the job ended is ignored instead of killing the process: the exit code then
    matches the state already recorded.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self, job: BasicJob[Any], *, linger: bool = False) -> None:
        self.job = job
        self.linger = linger
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.job.HANDLES_PREEMPTION and not self.job.stop_requested():
            log.warning("%s received: saving at the next step boundary", name)
            self.job.request_stop()
            return
        raise Preempted(f"{name} received")

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, signal.SIG_IGN if self.linger else handler)


class _QuietFileHandler(logging.FileHandler):
    """A log file handler that drops a record it cannot write (a full disk) instead of printing a traceback."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


class _RunLog:
    """Copy the ``theseus`` logger into the run's log.txt while the job runs."""

    def __init__(self, path: Path | None) -> None:
        self.handler = _QuietFileHandler(path) if path is not None else None
        if self.handler is not None:
            self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def __enter__(self) -> None:
        if self.handler is not None:
            log.addHandler(self.handler)
        if log.level == logging.NOTSET or log.level > logging.INFO:
            log.setLevel(logging.INFO)

    def __exit__(self, *exc: object) -> None:
        if self.handler is not None:
            log.removeHandler(self.handler)
            self.handler.close()


@dataclass
class RunOutcome:
    """How :func:`run_job` ended."""

    state: str
    exit_code: int
    run_dir: Path
    message: str = ""


def run_job(
    job: str | type[BasicJob[Any]],
    cfg: DictConfig,
    spec: ExecutionSpec,
    *,
    fresh: bool = False,
    restore_step: int | None = None,
    argv: Sequence[str] | None = None,
    linger: bool = False,
    accept_data_change: bool = False,
) -> RunOutcome:
    """Run ``job`` with ``cfg`` as run ``spec``: start, resume, or report it completed.

    Raises :class:`TheseusError` for user mistakes; those found before the job starts
    (config, names, the job's own :meth:`BasicJob.prepare` checks, a change to a key that
    cannot change under the run) leave nothing written. A change to changeable keys only
    continues the run and is recorded in ``config_history.jsonl``. ``linger`` keeps late
    SIGTERM/SIGUSR1 from killing the process once the job ended (for a CLI process that
    exits next). ``accept_data_change`` lets a resumed run continue on data that changed
    since it started (recorded in the history too).
    """
    key, job_cls = resolve_job(job)
    validate(job_cls, cfg)
    run = spec.run
    job_obj = _prepared(job_cls, cfg, spec, restore_step, accept_data_change)
    cfg, tree = _with_resolved(cfg, job_obj.resolved())
    tree["job"] = key
    if launch_rank(tree) != 0:
        # a secondary process of a multi-process run: process 0 owns the run directory
        return _execute(key, job_obj, cfg, tree, spec, _Decision("resume" if run.exists() else "start"),
                        argv, linger, primary=False)
    sch = schema(*job_cls.config())
    if _decide(run, spec.name, tree, sch, fresh, restore_step).kind == "completed":
        return _already_completed(run, spec.name)
    with run.lock() as previous_holder:
        if previous_holder and previous_holder.get("pid"):
            log.info("took over the lock of dead process %s", previous_holder.get("pid"))
        decision = _decide(run, spec.name, tree, sch, fresh, restore_step)
        if decision.kind == "completed":
            return _already_completed(run, spec.name)
        if decision.kind == "fresh":
            log.info("--fresh: moved the previous run to %s", _archive(run))
        elif decision.kind == "restart":
            log.info(
                "run %s never reached a step: starting it again with the new config "
                "(the failed attempt is in %s)",
                spec.name, _archive(run),
            )
        return _execute(key, job_obj, cfg, tree, spec, decision, argv, linger)


def _prepared(
    job_cls: type[BasicJob[Any]],
    cfg: DictConfig,
    spec: ExecutionSpec,
    restore_step: int | None,
    accept_data_change: bool = False,
) -> BasicJob[Any]:
    with configuration(cfg):
        job_obj = job_cls(spec)
        job_obj.accept_data_change = accept_data_change
        if isinstance(job_obj, RestoreableJob):
            job_obj.restore_step = restore_step
        job_obj.prepare()
    return job_obj


def _with_resolved(cfg: DictConfig, resolved: dict[str, Any]) -> tuple[DictConfig, dict[str, Any]]:
    """``cfg`` (and its plain tree) with the values the job worked out laid over it."""
    from theseus.config import flatten_tree, nest_tree

    tree = to_tree(cfg)
    if not resolved:
        return cfg, tree
    flat = flatten_tree(tree)
    flat.update(resolved)
    tree = nest_tree(flat)
    return to_config(tree), tree


@dataclass(frozen=True)
class _Decision:
    """What :func:`run_job` does with a run: ``start``, ``fresh``, ``restart``, ``resume`` or ``completed``.

    ``changes`` are the changeable keys whose values differ from the run's config.yaml.
    """

    kind: str
    changes: dict[str, tuple[Any, Any]] = dataclasses.field(default_factory=dict)


def _decide(
    run: RunDirectory, name: str, tree: dict[str, Any], sch: Schema, fresh: bool, restore_step: int | None
) -> _Decision:
    """What to do with run ``name`` given the config ``tree``; refuse a change to a fixed key."""
    if fresh:
        return _Decision("fresh" if run.path.exists() else "start")
    if not run.exists():
        return _Decision("start")
    status = run.read_status() or {}
    changes = _config_changes(_load_tree(run), tree)
    fixed = {k: v for k, v in changes.items() if not sch.changeable(k)}
    if fixed:
        if restore_step is None and _never_stepped(run, status):
            return _Decision("restart")
        raise ConfigError(
            f"run {name} already exists with a different config: {_show_changes(fixed)} cannot change "
            "under a run; use --fresh to start over or choose another name"
        )
    if status.get("state") == "completed" and restore_step is None and not changes:
        return _Decision("completed")
    return _Decision("resume", changes)


def _never_stepped(run: RunDirectory, status: dict[str, Any]) -> bool:
    """True for a run that ended before its first step: nothing in it is worth keeping in place."""
    return (
        status.get("state") != "completed"
        and status.get("step") is None
        and not complete_steps(run.checkpoints_dir)
        and run.last_metrics() is None
    )


def _already_completed(run: RunDirectory, name: str) -> RunOutcome:
    status = run.read_status() or {}
    msg = f"run {name} already completed (step {status.get('step', '-')}); use --fresh to start over"
    log.info(msg)
    return RunOutcome("completed", EXIT_OK, run.path, msg)


def launch_rank(tree: dict[str, Any]) -> int:
    """This process's rank in a multi-process run, known before JAX starts (0 when alone).

    Read from ``system.process_id`` when set, else ``THESEUS_PROCESS_ID`` (set by
    ``theseus submit`` on plain hosts), else from SLURM's ``SLURM_PROCID``.
    """
    system = tree.get("system")
    if isinstance(system, dict) and isinstance(system.get("process_id"), int):
        return int(system["process_id"])
    if os.environ.get("THESEUS_PROCESS_ID", "").isdigit():
        return int(os.environ["THESEUS_PROCESS_ID"])
    try:
        return int(os.environ.get("SLURM_PROCID", "0")) if int(os.environ.get("SLURM_NTASKS", "1")) > 1 else 0
    except ValueError:
        return 0


def _load_tree(run: RunDirectory) -> dict[str, Any]:
    from theseus.config import load_yaml

    try:
        return load_yaml(run.config_path)
    except TheseusError:
        return {}


def _execute(
    key: str,
    job_obj: BasicJob[Any],
    cfg: DictConfig,
    tree: dict[str, Any],
    spec: ExecutionSpec,
    decision: _Decision,
    argv: Sequence[str] | None,
    linger: bool,
    *,
    primary: bool = True,
) -> RunOutcome:
    run = spec.run
    resumed = decision.kind == "resume"
    old_tree = _load_tree(run) if resumed else {}
    run.path.mkdir(parents=True, exist_ok=True)
    run.results_dir.mkdir(exist_ok=True)
    previous = run.read_status() or {}
    if primary:
        _record_config_event(run, job_obj, decision, old_tree, tree, previous, argv)
        run.write_config(to_yaml(tree))
        identity = run.read_job() or {"created_at": now()}
        identity.setdefault("run_id", new_run_id())
        identity.update(
            job=key,
            name=spec.name,
            project=spec.project,
            group=spec.group,
            root=str(Path(spec.root).resolve()),
            host=socket.gethostname(),
            git_commit=_git_commit(),
            versions=_versions(),
            argv=list(argv) if argv is not None else sys.argv,
        )
        atomic_write_json(run.job_path, identity)
    status = _StatusWriter(
        run,
        {
            "state": "running",
            "job": key,
            "name": spec.name,
            "project": spec.project,
            "group": spec.group,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": now(),
            "ended_at": None,
            "step": previous.get("step") if resumed else None,
            "attempt": int(previous.get("attempt", 0)) + 1 if resumed else 1,
            "error": None,
        },
        enabled=primary,
    )
    status.start()
    with _RunLog(run.log_path if primary else None), interrupt.attached(job_obj, status, spec.name):
        log.info("%s %s (job %s) in %s", "resuming" if resumed else "starting", spec.name, key, run.path)
        try:
            try:
                with configuration(cfg):
                    job_obj._status = status
                    with _Signals(job_obj, linger=linger):
                        job_obj.run()
                        if isinstance(job_obj, CheckpointedJob):
                            job_obj.close()
            finally:
                interrupt.detach()  # the job has ended: a late Ctrl-C changes neither its state nor the exit code
        except Preempted as exc:
            _close_quietly(job_obj)
            status.finish(state="preempted", ended_at=now(), error=str(exc) or None)
            log.warning("run %s preempted; run the same command again to resume", spec.name)
            return RunOutcome("preempted", EXIT_PREEMPTED, run.path, str(exc))
        except KeyboardInterrupt:
            _close_quietly(job_obj)
            status.finish(state="failed", ended_at=now(), error="interrupted")
            raise
        except BaseException as exc:
            _close_quietly(job_obj)
            status.finish(state="failed", ended_at=now(), error=f"{type(exc).__name__}: {exc}")
            log.error("run %s failed: %s: %s", spec.name, type(exc).__name__, exc)
            raise
        status.finish(state="completed", ended_at=now())
        log.info("run %s completed", spec.name)
    return RunOutcome("completed", EXIT_OK, run.path)


def _record_config_event(
    run: RunDirectory,
    job: BasicJob[Any],
    decision: _Decision,
    old_tree: dict[str, Any],
    tree: dict[str, Any],
    previous_status: dict[str, Any],
    argv: Sequence[str] | None,
) -> None:
    """Append to config_history.jsonl: the whole config at a start; the changed keys at a resume or restore.

    ``step`` is the step the new values took effect after: the checkpoint a resumed job
    continues from (corrected by :meth:`RestoreableJob.resume_state` if it falls back to
    an older one), else the step the run had reached.
    """
    if decision.kind != "resume":
        _append_config_event(run, "start", 0, argv, config=tree)
        return
    restoring = isinstance(job, RestoreableJob) and job.restore_step is not None
    if not (decision.changes or restoring):
        return  # a plain resume: nothing changed
    if not run.config_history_path.is_file():  # a run started before histories were kept
        _append_config_event(run, "start", 0, [], config=old_tree)
    if isinstance(job, RestoreableJob):
        step = job.resume_step()
        job._config_event_step = step
    else:
        step = int(previous_status.get("step") or 0)
    changes = {k: [old, new] for k, (old, new) in decision.changes.items()}
    if changes:
        log.info("config changed from step %d on: %s", step, _show_changes(decision.changes, limit=20))
    _append_config_event(run, "restore" if restoring else "change", step, argv, changes=changes)


def _append_config_event(
    run: RunDirectory, event: str, step: int, argv: Sequence[str] | None, **fields: Any
) -> None:
    """One config_history.jsonl record: ``event``, ``step``, ``time``, the command line, and ``fields``."""
    record = {"event": event, "step": step, "time": now(), "argv": list(argv) if argv is not None else sys.argv}
    run.append_config_history({**record, **fields})


def _close_quietly(job: BasicJob[Any] | None) -> None:
    if isinstance(job, CheckpointedJob):
        try:
            job.close()
        except Exception as exc:  # a failing close must not hide the original error
            log.error("while closing checkpoints: %s", exc)


def restore_run(
    spec: ExecutionSpec,
    step: int,
    *,
    overrides: Sequence[str] = (),
    argv: Sequence[str] | None = None,
    linger: bool = False,
    accept_data_change: bool = False,
) -> int:
    """Continue run ``spec`` from checkpoint ``step``; newer checkpoints are set aside.

    The checkpoints after ``step`` move to ``checkpoints/.superseded-<time>/`` (never
    deleted), then the job runs again with the run's own ``config.yaml`` and the
    ``key=value`` ``overrides`` (changeable keys only: a fixed one is refused before
    anything moves). The restore and its changes are recorded in ``config_history.jsonl``.
    """
    from theseus.config import load_yaml, resolve

    run = spec.run
    if not run.exists():
        raise TheseusError(f"no run {spec.name} under {run.path.parent}")
    steps = complete_steps(run.checkpoints_dir)
    if step not in steps:
        have = ", ".join(map(str, steps)) or "none"
        raise TheseusError(f"run {spec.name} has no checkpoint at step {step} (have: {have})")
    problem = verify(run.checkpoints_dir, step)
    if problem is not None:
        raise CheckpointDamaged(
            f"checkpoint {step} of run {spec.name} is damaged ({problem}); choose another step"
        )
    tree = load_yaml(run.config_path)
    key = tree.get("job")
    if not isinstance(key, str):
        raise ConfigError(f"{run.config_path} names no job")
    _, job_cls = resolve_job(key)
    classes = job_cls.config()
    cfg = resolve(classes, (dict(tree), f" in {run.config_path}"), overrides=overrides)
    fixed = {k: v for k, v in _config_changes(tree, {**to_tree(cfg), "job": key}).items()
             if not schema(*classes).changeable(k)}
    if fixed:
        raise ConfigError(
            f"{_show_changes(fixed)} cannot change under run {spec.name}; "
            "only changeable keys may be set on restore (see `theseus keys JOB`)"
        )
    with run.lock():
        newer = [s for s in steps if s > step]
        if newer:
            aside = set_aside(run.checkpoints_dir, newer, "superseded")
            log.info("moved checkpoints %s aside to %s", newer, aside)
        else:
            refresh_latest(run.checkpoints_dir)
    outcome = run_job(
        key, cfg, spec, restore_step=step, argv=argv, linger=linger, accept_data_change=accept_data_change
    )
    return outcome.exit_code
