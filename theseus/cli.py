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

from theseus.errors import TheseusError

F = TypeVar("F", bound=Callable[..., Any])

_VERBOSE = False


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def user_errors(fn: F) -> F:
    """Turn :class:`TheseusError` into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TheseusError as exc:
            if _VERBOSE:
                traceback.print_exc()
            _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

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


def _project_group(fn: F) -> F:
    fn = click.option("-g", "--group", default="default", show_default=True, help="Run group.")(fn)
    fn = click.option("-p", "--project", default="default", show_default=True, help="Run project.")(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and full tracebacks.")
@click.version_option(package_name="theseus", message="theseus %(version)s")
def theseus(verbose: bool) -> None:
    """Train and evaluate language models on JAX: configure, run, submit, restore."""
    global _VERBOSE
    _VERBOSE = verbose
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
    """Write the config of JOB to OUT_YAML, with key=value OVERRIDES applied."""
    from theseus.config import load_yaml, missing_keys, resolve, schema, to_tree, to_yaml
    from theseus.fsio import atomic_write_text
    from theseus.job import resolve_job

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
    if chip is not None:
        request["chip"] = chip
    if n_chips is not None:
        if n_chips < 0:
            raise TheseusError("-n/--n-chips must be >= 0")
        request["n_chips"] = n_chips
        if n_chips == 0:
            request["chip"] = None
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


def carry_over(sch: Any, old: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split an old YAML tree into values the new schema accepts and dropped keys."""
    from theseus.config import check_value, flatten_tree, nest_tree

    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in flatten_tree({k: v for k, v in old.items() if k not in ("job", "request")}).items():
        spec = sch.fields.get(key)
        if spec is None:
            dropped.append(key)
            continue
        try:
            kept[key] = check_value(spec.type, value)
        except Exception:
            dropped.append(key)
    return nest_tree(kept), dropped


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
    load: tuple[str, ...],
) -> None:
    """Run the job in YAML as run NAME under the output root OUT (resuming if it exists)."""
    from theseus.job import ExecutionSpec, run_job

    _load_modules(load)
    key, cfg = load_job_config(yaml_path, overrides, job_key)
    _check_name(name)
    spec = ExecutionSpec(name=name, root=Path(out), project=project, group=group)
    outcome = run_job(key, cfg, spec, fresh=fresh, argv=sys.argv)
    sys.exit(outcome.exit_code)


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or name in ("..",):
        raise TheseusError(f"run name {name!r} must be a plain name (no '/', not starting with '.')")


def load_job_config(yaml_path: str, overrides: Sequence[str], job_key: str | None = None) -> tuple[str, Any]:
    """Read a run YAML, check it against its job's schema, apply overrides."""
    from theseus.config import ConfigError, load_yaml, resolve
    from theseus.job import resolve_job

    tree = load_yaml(yaml_path)
    named = tree.get("job")
    if named is not None and not isinstance(named, str):
        raise ConfigError(f"{yaml_path}: 'job' must be a job key string")
    if job_key and named and job_key != named:
        raise ConfigError(f"{yaml_path} was written for job {named}, not {job_key}")
    key = job_key or named
    if not key:
        raise ConfigError(f"{yaml_path} names no job; add 'job: KEY' or pass -j KEY")
    key, job_cls = resolve_job(key)
    layer = {k: v for k, v in tree.items() if k != "job"}
    try:
        cfg = resolve(job_cls.config(), (layer, f" in {yaml_path}"), overrides=overrides)
    except ConfigError as exc:
        if named and "unknown config key" in str(exc):
            raise ConfigError(f"{exc} (is {yaml_path} written for job {key}?)") from None
        raise
    return key, cfg


# --------------------------------------------------------------------------- checkpoints / restore


@theseus.command()
@click.argument("name")
@click.argument("out", type=click.Path(file_okay=False))
@_project_group
@user_errors
def checkpoints(name: str, out: str, project: str, group: str) -> None:
    """List the complete checkpoints of run NAME."""
    from rich.console import Console
    from rich.table import Table

    from theseus.checkpoint import list_checkpoints
    from theseus.rundir import iso

    run = _existing_run(out, name, project, group)
    infos = list_checkpoints(run.checkpoints_dir)
    if not infos:
        click.echo(f"run {name} has no checkpoints yet")
        return
    latest = infos[-1].step
    table = Table(box=None, header_style="bold")
    for col in ("step", "saved", "size", ""):
        table.add_column(col)
    for info in infos:
        table.add_row(
            str(info.step),
            iso(info.saved_at),
            _human_bytes(info.size_bytes),
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
@_project_group
@load_option
@user_errors
def restore(name: str, checkpoint: str, out: str, project: str, group: str, load: tuple[str, ...]) -> None:
    """Continue run NAME from checkpoint step CHECKPOINT (newer ones are set aside, not deleted)."""
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
    sys.exit(restore_run(spec, step, argv=sys.argv))


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
@click.argument("out", type=click.Path(file_okay=False))
@user_errors
def ls_runs(out: str) -> None:
    """List the runs under OUT with state, step and last metrics."""
    from rich.console import Console
    from rich.table import Table

    from theseus.rundir import iso, iter_runs

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
@click.argument("out", type=click.Path(file_okay=False))
@_project_group
@user_errors
def status(name: str, out: str, project: str, group: str) -> None:
    """Show the state of run NAME."""
    from theseus.checkpoint import latest_step
    from theseus.rundir import iso

    run = _existing_run(out, name, project, group)
    st = run.read_status() or {}
    beat = st.get("heartbeat")
    newest = latest_step(run.checkpoints_dir)
    rows = [
        ("run", str(run.path)),
        ("job", st.get("job", "-")),
        ("state", run.effective_state()),
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
        ("metrics", _metrics_summary(run.last_metrics()) or "-"),
    ]
    if st.get("error"):
        rows.append(("error", st["error"]))
    for label, value in rows:
        click.echo(f"{label:<11}{value}")


@theseus.command()
@click.argument("name")
@click.argument("out", type=click.Path(file_okay=False))
@_project_group
@click.option("-n", "--lines", default=40, show_default=True, help="How many lines from the end.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@user_errors
def logs(name: str, out: str, project: str, group: str, lines: int, follow: bool) -> None:
    """Print the end of run NAME's log."""
    run = _existing_run(out, name, project, group)
    if not run.log_path.is_file():
        raise TheseusError(f"run {name} has no log yet")
    with open(run.log_path) as fh:
        tail = fh.readlines()[-lines:] if lines > 0 else []
        click.echo("".join(tail), nl=False)
        while follow:
            line = fh.readline()
            if line:
                click.echo(line, nl=False)
            else:
                time.sleep(0.5)


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
    """Continue each --prompt with the newest (or --step) checkpoint of GPT run NAME under OUT."""
    import warnings

    run = _existing_run(out, name, project, group)
    config_path = run.path / "config.yaml"
    if not config_path.is_file():
        raise TheseusError(f"run {name} has no config.yaml: it never started")

    import jax

    from theseus.config import load_yaml
    from theseus.evaluation import Evaluator
    from theseus.evaluation.checkpoint_run import load_run, model_class
    from theseus.experiments.gpt import EvaluateGPT
    from theseus.inference import generate_cached
    from theseus.model.models import GPT

    _load_modules(load)
    trained = model_class(Evaluator, load_yaml(config_path), run.path)
    if not issubclass(trained, GPT):
        raise TheseusError(f"run {name} trained a {trained.__name__}; theseus generate samples GPT runs only")
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notes on optional checkpoint metadata
    loaded = load_run(EvaluateGPT, run.path, step, (), None)
    tokenizer = loaded.tokenizer
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = generate_cached(
            loaded.model,
            loaded.params,
            [tokenizer.encode(prompt) for prompt in prompts],
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_id=tokenizer.eot_id,
            stop_strings=list(stops),
            tokenizer=tokenizer,
            rng=jax.random.key(seed),
        )
    seconds = time.perf_counter() - started
    log = logging.getLogger("theseus")
    for warning in caught:
        log.warning("warning: %s", warning.message)
    tokens = sum(len(o.tokens) for o in outputs)
    log.info(
        "run %s, checkpoint %d: %d tokens in %.2f s (compilation included)", name, loaded.step, tokens, seconds
    )
    for i, (prompt, output) in enumerate(zip(prompts, outputs, strict=True)):
        if i:
            click.echo("-" * 40)
        click.echo(prompt + (output.text or ""))


def main() -> None:
    """Console-script entry point (a computing command first re-executes with the allocator tuned)."""
    from theseus.base.tuning import reexec_tuned

    reexec_tuned()
    theseus()


if __name__ == "__main__":
    main()
