"""The ``theseus`` command line: a thin shell over config, job and run-directory code.

Heavy modules (JAX, the job registry) are imported inside the commands that need them,
so ``theseus --help`` stays instant. A user mistake (:class:`TheseusError`) prints one
line on stderr and exits 2; ``-v`` adds the traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from theseus.errors import TheseusError, describe_os_error, is_user_os_error

F = TypeVar("F", bound=Callable[..., Any])

_VERBOSE = False


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def user_errors(fn: F) -> F:
    """Turn :class:`TheseusError` (and a full, read-only or forbidden disk) into one line on stderr, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TheseusError as exc:
            if _VERBOSE:
                traceback.print_exc()
            _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except OSError as exc:
            if not is_user_os_error(exc):
                raise
            if _VERBOSE:
                traceback.print_exc()
            _fail(describe_os_error(exc))

    return wrapper  # type: ignore[return-value]


def _setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("theseus")
    if not any(
        isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        for h in logger.handlers
    ):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[theseus] %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    if not verbose:
        # orbax logs its background failures with tracebacks; theseus reports them in one line
        for name in ("absl", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _load_modules(modules: Sequence[str]) -> None:
    from theseus.registry import load_module

    for module in modules:
        load_module(module)


load_option = click.option(
    "--load",
    "load",
    multiple=True,
    metavar="MODULE|FILE.py",
    help="Import a module or .py file first so it can register jobs (repeatable).",
)


accept_data_option = click.option(
    "--accept-data-change",
    is_flag=True,
    help="Continue even though the tokenized data changed since the run started (recorded in its history).",
)


def _project_group(fn: F) -> F:
    fn = click.option("-g", "--group", default="default", show_default=True, help="Run group.")(fn)
    fn = click.option("-p", "--project", default="default", show_default=True, help="Run project.")(fn)
    return fn


#: commands that start JAX: Ctrl-C there is handled by theseus.interrupt (a save, or a clean stop)
_INTERRUPTIBLE = ("run", "restore", "generate", "export")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and full tracebacks.")
@click.version_option(package_name="theseus", message="theseus %(version)s")
@click.pass_context
def theseus(ctx: click.Context, verbose: bool) -> None:
    """Train and evaluate language models on JAX: configure, run, submit, restore."""
    global _VERBOSE
    _VERBOSE = verbose
    if ctx.invoked_subcommand in _INTERRUPTIBLE:
        from theseus import interrupt

        interrupt.install()
    _setup_logging(verbose)


# --------------------------------------------------------------------------- jobs


@theseus.command()
@load_option
@user_errors
def jobs(load: tuple[str, ...]) -> None:
    """List the registered jobs."""
    from rich.console import Console
    from rich.table import Table

    from theseus.registry import JOBS, PLUGIN_ERRORS

    _load_modules(load)
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("job")
    table.add_column("description")
    for key, cls in JOBS.items():
        describe = getattr(cls, "describe", None)
        table.add_row(key, describe() if callable(describe) else "")
    for key, reason in sorted(JOBS.broken.items()):
        table.add_row(key, f"[red]unavailable:[/red] {reason}")
    for key, reason in sorted(PLUGIN_ERRORS.items()):
        table.add_row(f"plugin {key}", f"[red]failed to load:[/red] {reason}")
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


# --------------------------------------------------------------------------- configure


@theseus.command()
@click.argument("job")
@click.argument("out_yaml", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option(
    "-p", "--previous", type=click.Path(dir_okay=False), help="Carry matching values over from this YAML."
)
@click.option("--chip", help="Accelerator to request when submitted (e.g. h100).")
@click.option(
    "-n", "--n-chips", "--n_chips", "n_chips", type=int, help="Number of chips to request (0: CPU)."
)
@load_option
@user_errors
def configure(
    job: str,
    out_yaml: str,
    overrides: tuple[str, ...],
    previous: str | None,
    chip: str | None,
    n_chips: int | None,
    load: tuple[str, ...],
) -> None:
    """Write the config of JOB to OUT_YAML, with key=value OVERRIDES applied (`theseus keys JOB` lists the keys)."""
    from theseus.config import load_yaml, missing_keys, resolve, schema, to_tree, to_yaml
    from theseus.fsio import atomic_write_text
    from theseus.job import resolve_job
    from theseus.request import request_section
    from theseus.runconfig import carry_over

    _load_modules(load)
    key, job_cls = resolve_job(job)
    classes = job_cls.config()
    layers = []
    dropped: list[str] = []
    request: dict[str, Any] = {}
    if previous:
        old = load_yaml(previous)
        kept, dropped = carry_over(schema(*classes), old)
        layers.append((kept, f" in {previous}"))
        if isinstance(old.get("request"), dict):
            request.update(old["request"])
    cfg = resolve(classes, *layers, overrides=overrides)
    tree = to_tree(cfg)
    tree["job"] = key
    request = request_section(request, chip, n_chips)
    if request:
        tree["request"] = request
    out = Path(out_yaml)
    if not out.parent.exists():
        raise TheseusError(f"directory {out.parent} does not exist")
    atomic_write_text(out, to_yaml(tree))
    click.echo(f"wrote {out} for job {key}")
    for d in dropped:
        click.echo(f"  dropped {d} from {previous}: not a key of {key}")
    missing = missing_keys({k: v for k, v in tree.items() if k not in ("job", "request")})
    if missing:
        click.echo(f"  still to set before running: {', '.join(missing)}")


@theseus.command()
@click.argument("job")
@click.argument("prefix", required=False, default="")
@load_option
@user_errors
def keys(job: str, prefix: str, load: tuple[str, ...]) -> None:
    """List every config key of JOB (those starting with PREFIX): type, default, class and doc.

    A changeable key may take a new value under an existing run (the run continues and
    records the change); a new value for a fixed key is refused.
    """
    from rich.console import Console
    from rich.table import Table

    from theseus.job import resolve_job
    from theseus.keys import job_keys, table_rows

    _load_modules(load)
    key, job_cls = resolve_job(job)
    found = job_keys(job_cls, prefix)
    if not found:
        raise TheseusError(f"job {key} has no config key starting with {prefix!r}")
    table = Table(box=None, header_style="bold")
    for col in ("key", "type", "default", "class", "description"):
        table.add_column(col, overflow="fold")
    for row in table_rows(found):
        table.add_row(*row)
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


# --------------------------------------------------------------------------- run


@theseus.command()
@click.argument("name")
@click.argument("yaml_path", metavar="YAML", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.argument("overrides", nargs=-1)
@_project_group
@click.option("-j", "--job", "job_key", help="Job key (when the YAML names none).")
@click.option(
    "--fresh", is_flag=True, help="Start over; the previous run is moved to .archive/, not deleted."
)
@accept_data_option
@load_option
@user_errors
def run(
    name: str,
    yaml_path: str,
    out: str,
    overrides: tuple[str, ...],
    project: str,
    group: str,
    job_key: str | None,
    fresh: bool,
    accept_data_change: bool,
    load: tuple[str, ...],
) -> None:
    """Run the job in YAML as run NAME under the output root OUT (resuming if it exists).

    An existing run continues: with new values for changeable keys (a longer
    training.steps, a lower optimization.lr ...) it continues under them, even when it
    had completed; a new value for a fixed key is refused (`theseus keys JOB` shows which).
    """
    from theseus.job import ExecutionSpec, run_job
    from theseus.runconfig import load_run_config
    from theseus.rundir import RunDirectory

    RunDirectory.of(out, name, project, group)  # the names are checked before anything else
    _load_modules(load)
    key, cfg = load_run_config(yaml_path, overrides, job_key)
    spec = ExecutionSpec(name=name, root=Path(out), project=project, group=group)
    outcome = run_job(
        key, cfg, spec, fresh=fresh, argv=sys.argv, linger=True, accept_data_change=accept_data_change
    )
    sys.exit(outcome.exit_code)


# --------------------------------------------------------------------------- checkpoints / restore


@theseus.command()
@click.argument("name")
@click.argument("out", type=click.Path(file_okay=False))
@_project_group
@click.option("--verify", is_flag=True, help="Check every file against the checksums written at save time.")
@user_errors
def checkpoints(name: str, out: str, project: str, group: str, verify: bool) -> None:
    """List the complete checkpoints of run NAME."""
    from rich.console import Console
    from rich.table import Table

    from theseus.checkpoint import integrity, list_checkpoints
    from theseus.rundir import iso

    run = _existing_run(out, name, project, group)
    infos = list_checkpoints(run.checkpoints_dir)
    if not infos:
        click.echo(f"run {name} has no checkpoints yet")
        return
    latest = infos[-1].step
    table = Table(box=None, header_style="bold")
    for col in ("step", "saved", "size", *(["integrity"] if verify else []), ""):
        table.add_column(col)
    for info in infos:
        table.add_row(
            str(info.step),
            iso(info.saved_at),
            _human_bytes(info.size_bytes),
            *([integrity(run.checkpoints_dir, info.step)] if verify else []),
            "latest" if info.step == latest else "",
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


def _existing_run(out: str, name: str, project: str, group: str) -> Any:
    from theseus.rundir import RunDirectory

    run = RunDirectory.of(out, name, project, group)
    if not run.path.is_dir():
        raise TheseusError(f"no run {name} in {Path(out) / 'runs' / project / group}")
    return run


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


@theseus.command()
@click.argument("name")
@click.argument("checkpoint")
@click.argument("out", type=click.Path(file_okay=False))
@click.argument("overrides", nargs=-1)
@_project_group
@accept_data_option
@load_option
@user_errors
def restore(
    name: str,
    checkpoint: str,
    out: str,
    overrides: tuple[str, ...],
    project: str,
    group: str,
    accept_data_change: bool,
    load: tuple[str, ...],
) -> None:
    """Continue run NAME from checkpoint step CHECKPOINT (newer ones are set aside, not deleted).

    key=value OVERRIDES change changeable keys from that step on (e.g. a lower
    optimization.lr); the change is recorded in the run's config_history.jsonl.
    """
    from theseus.job import ExecutionSpec, restore_run

    _load_modules(load)
    _existing_run(out, name, project, group)
    try:
        step = int(checkpoint)
    except ValueError:
        raise TheseusError(
            f"CHECKPOINT must be a step number (see `theseus checkpoints {name} {out}`)"
        ) from None
    spec = ExecutionSpec(name=name, root=Path(out), project=project, group=group)
    sys.exit(
        restore_run(
            spec, step, overrides=overrides, argv=sys.argv, linger=True, accept_data_change=accept_data_change
        )
    )


# --------------------------------------------------------------------------- ls / status / logs


def _metrics_summary(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return ""
    keys = [k for k in ("loss", "val_loss", "lr", "tokens_per_s") if k in metrics]
    parts = []
    for k in keys:
        v = metrics[k]
        parts.append(f"{k}={v:.4g}" if isinstance(v, (int, float)) else f"{k}={v}")
    return " ".join(parts)


@theseus.command(name="ls")
@click.argument("out", type=click.Path(file_okay=False), required=False)
@user_errors
def ls_runs(out: str | None) -> None:
    """List the runs under OUT with state, step and last metrics (no OUT: the submitted runs)."""
    from rich.console import Console
    from rich.table import Table

    from theseus.rundir import iso, iter_runs

    if out is None:
        _ls_submitted()
        return
    if not Path(out).is_dir():
        raise TheseusError(f"{out} does not exist")
    runs = list(iter_runs(out))
    if not runs:
        click.echo(f"no runs under {out}")
        return
    table = Table(box=None, header_style="bold")
    for col in ("run", "job", "state", "step", "updated", "metrics"):
        table.add_column(col)
    for run in runs:
        status = run.read_status() or {}
        rel = run.path.relative_to(Path(out) / "runs")
        table.add_row(
            str(rel),
            str(status.get("job", "-")),
            run.effective_state(),
            str(status.get("step") if status.get("step") is not None else "-"),
            iso(status.get("heartbeat")),
            _metrics_summary(run.last_metrics()),
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


@theseus.command()
@click.argument("name")
@click.argument("out", type=click.Path(file_okay=False), required=False)
@_project_group
@user_errors
def status(name: str, out: str | None, project: str, group: str) -> None:
    """Show the state of run NAME under OUT (no OUT: the submitted run NAME)."""
    from theseus.checkpoint import latest_step

    if out is None:
        _status_submitted(name, project, group)
        return
    run = _existing_run(out, name, project, group)
    st = run.read_status() or {}
    rows = _status_rows(str(run.path), st, run.effective_state(), latest_step(run.checkpoints_dir), run.last_metrics())
    for label, value in rows:
        click.echo(f"{label:<11}{value}")


def _status_rows(
    where: str, st: dict[str, Any], state: str, newest: int | None, metrics: dict[str, Any] | None
) -> list[tuple[str, Any]]:
    """The rows `theseus status` prints for a run's status record, local or remote."""
    from theseus.rundir import iso

    beat = st.get("heartbeat")
    rows = [
        ("run", where),
        ("job", st.get("job", "-")),
        ("state", state),
        ("step", st.get("step", "-")),
        ("host", f"{st.get('host', '-')} (pid {st.get('pid', '-')})"),
        ("started", iso(st.get("started_at"))),
        ("ended", iso(st.get("ended_at"))),
        (
            "heartbeat",
            f"{iso(beat)} ({time.time() - beat:.0f}s ago)" if isinstance(beat, (int, float)) else "-",
        ),
        ("attempt", st.get("attempt", "-")),
        ("checkpoint", "-" if newest is None else newest),
        ("metrics", _metrics_summary(metrics) or "-"),
    ]
    if st.get("error"):
        rows.append(("error", st["error"]))
    return rows


@theseus.command()
@click.argument("name")
@click.argument("out", type=click.Path(file_okay=False), required=False)
@_project_group
@click.option("-n", "--lines", default=40, show_default=True, help="How many lines from the end.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@user_errors
def logs(name: str, out: str | None, project: str, group: str, lines: int, follow: bool) -> None:
    """Print the end of run NAME's log (no OUT: the output of the submitted run NAME)."""
    if out is None:
        _logs_submitted(name, project, group, lines, follow)
        return
    run = _existing_run(out, name, project, group)
    if not run.log_path.is_file():
        raise TheseusError(f"run {name} has no log yet")
    with open(run.log_path, errors="replace") as fh:
        tail = fh.readlines()[-lines:] if lines > 0 else []
        click.echo("".join(tail), nl=False)
        while follow:
            line = fh.readline()
            if line:
                click.echo(line, nl=False)
            else:
                time.sleep(0.5)


# --------------------------------------------------------------------------- submit / cancel / pull


@theseus.command()
@click.argument("name")
@click.argument("yaml_path", metavar="YAML", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--host", "hosts", multiple=True, metavar="H", help="Plain SSH host (repeat: one process per host).")
@click.option("--cluster", metavar="C", help="SLURM cluster.")
@click.option("--chip", help="Accelerator kind (overrides the YAML's request).")
@click.option("-n", "--n-chips", "n_chips", type=int, help="Chips in total (0: CPU).")
@click.option("--nodes", type=int, help="Nodes (SLURM) or hosts (plain SSH).")
@click.option("--tasks-per-node", type=int, help="Processes per node of a CPU run on SLURM.")
@click.option("--time", "time_limit", metavar="LIMIT", help="Time limit, e.g. 2:00:00 or 1-00:00:00.")
@click.option("--partition", help="SLURM partition.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Environment variable for the run (repeatable; kept out of every file).")
@click.option("--dry-run", is_flag=True, help="Print the plan and the exact scripts; contact nothing.")
@click.option("--wait", is_flag=True, help="Wait for the run to end; exit with its exit code.")
@click.option("--fresh", is_flag=True, help="Start the remote run over instead of resuming it.")
@click.option("--dispatch-config", metavar="PATH", help="Dispatch config  [default: $THESEUS_DISPATCH_CONFIG or ~/.theseus.yaml]")
@_project_group
@click.option("-j", "--job", "job_key", help="Job key (when the YAML names none).")
@load_option
@user_errors
def submit(
    name: str,
    yaml_path: str,
    overrides: tuple[str, ...],
    hosts: tuple[str, ...],
    cluster: str | None,
    chip: str | None,
    n_chips: int | None,
    nodes: int | None,
    tasks_per_node: int | None,
    time_limit: str | None,
    partition: str | None,
    env: tuple[str, ...],
    dry_run: bool,
    wait: bool,
    fresh: bool,
    dispatch_config: str | None,
    project: str,
    group: str,
    job_key: str | None,
    load: tuple[str, ...],
) -> None:
    """Run the job in YAML as run NAME on an SSH host or a SLURM cluster."""
    from theseus.dispatch.dispatch import launch, parse_env, plan, render

    p = plan(
        name,
        yaml_path,
        overrides,
        target=cluster,
        hosts=hosts,
        chip=chip,
        n_chips=n_chips,
        nodes=nodes,
        tasks_per_node=tasks_per_node,
        time_limit=time_limit,
        partition=partition,
        env=parse_env(env),
        project=project,
        group=group,
        job_key=job_key,
        loads=load,
        fresh=fresh,
        dispatch_config=dispatch_config,
    )
    if dry_run:
        click.echo(render(p))
        return
    handle = launch(p)
    pg = "" if project == group == "default" else f" -p {project} -g {group}"
    click.echo(f"submitted {name} to {p.target}: theseus status|logs|cancel|pull {name}{pg}")
    if wait:
        sys.exit(_wait_exit_code(handle))


def _wait_exit_code(handle: Any) -> int:
    final = handle.wait()
    code = {"completed": 0, "preempted": 75}.get(final.state)
    if code is not None:
        click.echo(f"run {handle.name} {final.state}")
        return code
    _fail(f"{handle.record.backend} {handle.record.target}: run {handle.name} {final.state}: {final.detail}")
    return 2


def _ls_submitted() -> None:
    from rich.console import Console
    from rich.table import Table

    from theseus.dispatch.dispatch import list_submissions
    from theseus.rundir import iso

    records = list_submissions(refresh=True)
    if not records:
        click.echo("no submitted runs (theseus ls OUT lists the runs under OUT)")
        return
    table = Table(box=None, header_style="bold")
    for col in ("run", "job", "on", "state", "step", "submitted", "detail"):
        table.add_column(col)
    for r in records:
        step = r.last.get("step")
        table.add_row(
            f"{r.project}/{r.group}/{r.name}",
            r.job,
            f"{r.backend} {r.target}",
            r.state,
            "-" if step is None else str(step),
            iso(r.submitted_at),
            str(r.last.get("detail") or ""),
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


def _status_submitted(name: str, project: str, group: str) -> None:
    from theseus.dispatch.dispatch import get
    from theseus.rundir import iso

    handle = get(name, project, group)
    record = handle.record
    st = handle.status()
    run_status = {"job": record.job, **st.run_status}
    rows = _status_rows(f"{record.target}:{record.run_dir}", run_status, st.state, st.checkpoint, st.metrics)
    rows.insert(3, ("detail", st.detail or "-"))
    rows += [("submitted", f"{iso(record.submitted_at)} to {record.backend} {record.target} (id {record.id})")]
    rows += [("scheduler", st.scheduler or "-")]
    for label, value in rows:
        click.echo(f"{label:<11}{value}")


def _logs_submitted(name: str, project: str, group: str, lines: int, follow: bool) -> None:
    from theseus.dispatch.dispatch import get

    handle = get(name, project, group)
    if follow:
        handle.follow(lambda text: click.echo(text, nl=False), lines)
    else:
        click.echo(handle.logs(lines), nl=False)


@theseus.command()
@click.argument("name")
@_project_group
@click.option("--wait", "wait_s", default=60.0, show_default=True, help="Seconds to let it save before SIGKILL.")
@user_errors
def cancel(name: str, project: str, group: str, wait_s: float) -> None:
    """Stop the submitted run NAME (it saves a checkpoint when it can)."""
    from theseus.dispatch.dispatch import get

    handle = get(name, project, group)
    before = handle.status()
    if before.state in ("completed", "failed", "cancelled", "lost", "preempted"):
        click.echo(f"run {name} already ended: {before.state}")
        return
    after = handle.cancel(wait_s)
    click.echo(f"run {name}: {after.state}")


@theseus.command()
@click.argument("name")
@click.argument("out", type=click.Path(file_okay=False), default="out")
@_project_group
@click.option("--checkpoints", is_flag=True, help="Bring back the checkpoints too.")
@user_errors
def pull(name: str, out: str, project: str, group: str, checkpoints: bool) -> None:
    """Copy the submitted run NAME's directory to OUT (config, metrics, logs, results)."""
    from theseus.dispatch.dispatch import get

    dest = get(name, project, group).pull(out, checkpoints=checkpoints)
    click.echo(f"pulled {name} into {dest}")


# --------------------------------------------------------------------------- generate


@theseus.command(name="generate")
@click.argument("name")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--prompt", "prompts", multiple=True, required=True, help="Text to continue (repeatable).")
@click.option("--step", type=int, default=None, help="Checkpoint step  [default: the newest]")
@click.option("--max-new-tokens", type=int, default=64, show_default=True, help="Tokens to add per prompt.")
@click.option("--temperature", type=float, default=0.8, show_default=True, help="0 decodes greedily.")
@click.option("--top-k", type=int, default=None, help="Sample among the K most likely tokens only.")
@click.option("--top-p", type=float, default=None, help="Sample from the smallest set holding mass P.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the sampling.")
@click.option("--stop", "stops", multiple=True, help="End a continuation before this string (repeatable).")
@_project_group
@load_option
@user_errors
def generate_text(
    name: str,
    out: str,
    prompts: tuple[str, ...],
    step: int | None,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    seed: int,
    stops: tuple[str, ...],
    project: str,
    group: str,
    load: tuple[str, ...],
) -> None:
    """Continue each --prompt with the newest (or --step) checkpoint of run NAME under OUT."""
    for option, texts in (("--prompt", prompts), ("--stop", stops)):
        for i, text in enumerate(texts, 1):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise TheseusError(
                    f"{option} number {i} is not valid UTF-8 (at character {exc.start}); pass UTF-8 text"
                ) from None
    run = _existing_run(out, name, project, group)
    if not run.exists():
        raise TheseusError(f"run {name} has no config.yaml: it never started")

    from theseus.inference.from_run import generate_from_run
    from theseus.trained_run import TrainedRun

    _load_modules(load)
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notes on optional checkpoint metadata
    done = generate_from_run(
        TrainedRun.at(run), prompts, max_new_tokens, step=step, temperature=temperature, top_k=top_k,
        top_p=top_p, seed=seed, stop_strings=stops,
    )
    logging.getLogger("theseus").info(
        "run %s, checkpoint %d: %d tokens in %.2f s (compilation included)", name, done.step, done.tokens, done.seconds
    )
    for i, (prompt, output) in enumerate(zip(prompts, done.outputs, strict=True)):
        if i:
            click.echo("-" * 40)
        click.echo(prompt + (output.text or ""))


# --------------------------------------------------------------------------- web


@theseus.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one).")
@click.option(
    "--token", envvar="THESEUS_WEB_TOKEN", help="Access token every request must carry (needed off loopback)."
)
@click.option("--generate-token", is_flag=True, help="Make up a token and print it once.")
@user_errors
def web(out: str, host: str, port: int, token: str | None, generate_token: bool) -> None:
    """Serve the dashboard of the runs under OUT: live curves, logs, checkpoints, compare, stop."""
    from theseus.web import missing_dependencies

    if missing_dependencies():
        raise TheseusError(
            f"theseus web needs {', '.join(missing_dependencies())}: pip install 'theseus[web]'"
        )
    from theseus.web.server import serve

    serve(out, host, port, token=token, generate_token=generate_token)


# --------------------------------------------------------------------------- lm-eval


@theseus.command(
    name="lm-eval",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,
)
@click.argument("harness_args", nargs=-1, type=click.UNPROCESSED)
@user_errors
def lm_eval_harness(harness_args: tuple[str, ...]) -> None:
    """lm-evaluation-harness's own command line, with `--model theseus` available.

    Every argument goes to lm-eval unchanged, e.g. `theseus lm-eval --model theseus
    --model_args run=NAME,out=OUT --tasks hellaswag`.
    """
    from theseus.evaluation.lm_eval_adapter import harness_main

    sys.exit(harness_main(harness_args))


# --------------------------------------------------------------------------- export


@theseus.command(name="export")
@click.argument("name")
@click.argument("out", type=click.Path(file_okay=False))
@click.argument("dest", type=click.Path(file_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["hf"]), default="hf", show_default=True,
    help="hf: a Hugging Face checkpoint folder (config.json, safetensors, tokenizer files).",
)
@click.option("--step", type=int, default=None, help="Checkpoint step  [default: the newest]")
@click.option(
    "--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default=None,
    help="Dtype of the weights  [default: the source checkpoint's, else the parameters']",
)
@_project_group
@load_option
@user_errors
def export_checkpoint(
    name: str,
    out: str,
    dest: str,
    fmt: str,
    step: int | None,
    dtype: str | None,
    project: str,
    group: str,
    load: tuple[str, ...],
) -> None:
    """Write a checkpoint of run NAME under OUT as the new folder DEST that transformers loads."""
    from theseus.export import export_run

    _load_modules(load)
    run = _existing_run(out, name, project, group)
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notes on optional checkpoint metadata
    done = export_run(run.path, Path(dest), step=step, dtype=dtype)
    click.echo(f"wrote {done.path}: {done.model_type} checkpoint of step {done.step} ({done.tensors} tensors)")


def main() -> None:
    """Console-script entry point (a computing command first re-executes with the allocator tuned)."""
    from theseus.base.tuning import reexec_tuned

    reexec_tuned()
    theseus()


if __name__ == "__main__":
    main()
