"""The remote submission API: send a run to an SSH host or a SLURM cluster, then follow it.

::

    from theseus.dispatch import submit

    run = submit("my-gpt", "gpt.yaml", ["training.steps=1000"], target="gpu1")
    run.status().state          # queued | running | completed | failed | preempted | cancelled | lost
    print(run.logs(lines=20))
    run.cancel()
    run.pull("out")             # config, metrics, logs, results (checkpoints=True for those too)

A submission resolves the run config here (so a bad key fails before anything is
sent), ships the exact code of this machine, makes sure the remote environment exists,
and starts an ordinary ``theseus run`` in the remote output directory. The remote run
therefore has the same run directory, resume and preemption behaviour as a local one.
What was submitted is recorded locally (:mod:`theseus.dispatch.records`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from theseus.config import to_tree, to_yaml
from theseus.dispatch.config import (
    ClusterConfig,
    DispatchConfig,
    HostConfig,
    RemoteConfig,
    load_dispatch_config,
)
from theseus.dispatch.environment import MARKER, env_dir, setup_script
from theseus.dispatch.plain import PlainBackend
from theseus.dispatch.plan import Plan, parse_time
from theseus.dispatch.records import TERMINAL_STATES, Submission, iter_records, load, new_id
from theseus.dispatch.runfiles import RemoteStatus, log_chunk, pull_run
from theseus.dispatch.shell import check_env_key, check_name, join_path, script, word
from theseus.dispatch.ship import build_bundle
from theseus.dispatch.slurm import SlurmBackend
from theseus.dispatch.ssh import Remote
from theseus.errors import TheseusError
from theseus.request import Request

log = logging.getLogger("theseus")

Backend = PlainBackend | SlurmBackend
BACKENDS: dict[str, Backend] = {"ssh": PlainBackend(), "slurm": SlurmBackend()}


# --------------------------------------------------------------------------- planning


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings (``--env``) as a dict, keys validated."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise TheseusError(f"--env {pair!r} is not of the form KEY=VALUE")
        out[check_env_key(key, "--env")] = value
    return out


def _fits(cfg: HostConfig | ClusterConfig, request: Request, per_node: int) -> bool:
    if request.cpu:
        return True
    assert request.chip is not None
    if isinstance(cfg, HostConfig):
        return cfg.chips.get(request.chip, 0) >= per_node
    return request.chip in cfg.gres


def _choose(
    dispatch: DispatchConfig, target: str | None, hosts: Sequence[str], request: Request, nodes: int | None
) -> tuple[str, list[tuple[str, HostConfig]], ClusterConfig | None]:
    """Pick the target: the named cluster or hosts, else the first that fits, in file order."""
    if target is not None and hosts:
        raise TheseusError("give --host or --cluster, not both")
    if hosts:
        for name in hosts:
            if name not in dispatch.hosts:
                if name in dispatch.clusters:
                    raise TheseusError(f"{name} is a cluster: use --cluster {name}")
                dispatch.target(name)  # raises with a suggestion
        if nodes is not None and nodes != len(hosts):
            raise TheseusError(f"--nodes {nodes} needs {nodes} hosts, but --host names {len(hosts)}")
        return hosts[0], [(h, dispatch.hosts[h]) for h in hosts], None
    if target is not None:
        cfg = dispatch.target(target)
        if isinstance(cfg, ClusterConfig):
            return target, [], cfg
        return _choose(dispatch, None, [target], request, nodes)
    n = nodes or 1
    per_node = request.n_chips // n if not request.cpu else 0
    fitting = [(name, cfg) for name, cfg in dispatch.hosts.items() if _fits(cfg, request, per_node)]
    if len(fitting) >= n:
        return fitting[0][0], fitting[:n], None
    for name, cluster in dispatch.clusters.items():
        if _fits(cluster, request, per_node):
            return name, [], cluster
    raise TheseusError(
        f"no host or cluster in {dispatch.where} fits {request.describe()} on {n} node(s); "
        "name one with --host or --cluster"
    )


def plan(
    name: str,
    config: str | Path | tuple[str, DictConfig],
    overrides: Sequence[str] = (),
    *,
    target: str | None = None,
    hosts: Sequence[str] = (),
    chip: str | None = None,
    n_chips: int | None = None,
    nodes: int | None = None,
    tasks_per_node: int | None = None,
    time_limit: str | None = None,
    partition: str | None = None,
    env: Mapping[str, str] | None = None,
    project: str = "default",
    group: str = "default",
    job_key: str | None = None,
    loads: Sequence[str] = (),
    fresh: bool = False,
    dispatch_config: str | Path | DispatchConfig | None = None,
) -> Plan:
    """Decide a submission without contacting anything: raises for every mistake found here.

    ``config`` is a run YAML path or an already resolved ``(job_key, config)`` pair.
    ``target`` names a host or cluster of the dispatch config, ``hosts`` several hosts
    (one process each); neither picks the first that fits the request.
    """
    for kind, value in (("run name", name), ("project", project), ("group", group)):
        check_name(kind, value)
    dispatch = (
        dispatch_config
        if isinstance(dispatch_config, DispatchConfig)
        else load_dispatch_config(dispatch_config)
    )
    from theseus.registry import load_module
    from theseus.runconfig import load_run_config

    for module in loads:
        load_module(module)
    if isinstance(config, tuple):
        key, cfg = config
    else:
        key, cfg = load_run_config(str(config), overrides, job_key)
    from theseus.job import resolve_job, validate

    validate(resolve_job(key)[1], cfg)
    tree = to_tree(cfg)
    tree["job"] = key
    request = Request.from_tree(tree.get("request"), f" in {config}" if not isinstance(config, tuple) else "")
    request = request.with_overrides(chip, n_chips)
    if nodes is not None and nodes < 1:
        raise TheseusError("--nodes must be at least 1")
    if tasks_per_node is not None and tasks_per_node < 1:
        raise TheseusError("--tasks-per-node must be at least 1")
    chosen, host_list, cluster = _choose(dispatch, target, hosts, request, nodes)
    n_nodes = nodes or (len(host_list) if host_list else 1)
    if not request.cpu and request.n_chips % n_nodes:
        raise TheseusError(f"{request.n_chips} chips do not split evenly over {n_nodes} nodes")
    per_node = 0 if request.cpu else request.n_chips // n_nodes
    if cluster is None:
        for host_name, host in host_list:
            if not _fits(host, request, per_node):
                have = ", ".join(f"{k} x {v}" for k, v in host.chips.items()) or "no accelerators"
                raise TheseusError(
                    f"host {host_name} cannot give {per_node} x {request.chip} (it has {have})"
                )
        if tasks_per_node not in (None, 1):
            raise TheseusError(
                "--tasks-per-node is for SLURM; a plain host runs one process that uses all its chips"
            )
        tasks = 1
    else:
        if not _fits(cluster, request, per_node):
            known = ", ".join(sorted(cluster.gres)) or "none"
            raise TheseusError(
                f"cluster {chosen} has no GRES mapping for chip {request.chip} (gres: {known})"
            )
        if per_node and tasks_per_node not in (None, per_node):
            raise TheseusError(
                f"a GPU run has one process per chip: --tasks-per-node must be {per_node} here"
            )
        tasks = per_node or tasks_per_node or 1
        if partition and cluster.partitions and partition not in cluster.partitions:
            raise TheseusError(
                f"partition {partition!r} is not one of cluster {chosen}'s partitions: {', '.join(cluster.partitions)}"
            )
    remote_cfg: RemoteConfig = cluster if cluster is not None else host_list[0][1]
    limit = time_limit or (cluster.time if cluster is not None else None)
    if limit:
        parse_time(limit)
    job_env = dict(remote_cfg.env)
    secret_keys: list[str] = []
    for secret in remote_cfg.secrets:
        if secret not in os.environ:
            raise TheseusError(f"secret {secret} named by {chosen} in {dispatch.where} is not set here")
        job_env[secret] = os.environ[secret]
        secret_keys.append(secret)
    for k, v in (env or {}).items():
        job_env[check_env_key(k, "--env")] = v
        secret_keys.append(k)
    tree["request"] = {"chip": request.chip, "n_chips": request.n_chips}
    return Plan(
        sid=new_id(),
        name=name,
        project=project,
        group=group,
        job_key=key,
        config_yaml=to_yaml(tree),
        request=request,
        target=chosen,
        backend="slurm" if cluster is not None else "ssh",
        hosts=host_list,
        cluster=cluster,
        nodes=n_nodes,
        tasks_per_node=tasks,
        time=limit,
        partition=partition or (cluster.partition if cluster is not None else None),
        env=job_env,
        secret_keys=sorted(set(secret_keys)),
        bundle=build_bundle(loads),
        fresh=fresh,
    )


def render(p: Plan) -> str:
    """The plan and the exact scripts a submission would run (secrets hidden): ``--dry-run``."""
    cfg = p.primary
    parts = ["\n".join(p.describe()), ""]
    parts += [
        f"--- the run config, sent as {join_path(p.job_dir(cfg, 0), 'config.yaml')}",
        p.config_yaml.rstrip("\n"),
        "",
    ]
    steps = [
        (
            "1. ship the code (if the remote has no copy yet): a tar stream unpacked by",
            upload_script(p.code_dir(cfg)),
        ),
        ("2. make sure the environment exists", script(setup_script(cfg.work, p.env_recipe(cfg), cfg.setup))),
    ]
    for i, (title, text) in enumerate(BACKENDS[p.backend].scripts(p), start=3):
        steps.append((f"{i}. {title}", text))
    for title, text in steps:
        parts += [f"--- {title}", text.rstrip("\n"), ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------- preparing a remote


def upload_script(code_dir: str) -> str:
    """Unpack a tar stream from stdin into ``code_dir`` (atomically; a concurrent copy wins)."""
    parent = word(code_dir.rsplit("/", 1)[0])
    return (
        "set -eu\numask 022\n"
        f"if [ -f {word(join_path(code_dir, '.complete'))} ]; then exit 0; fi\n"
        f"mkdir -p {parent}\n"
        f"tmp=$(mktemp -d {parent}/.incoming.XXXXXX)\n"
        'tar -x -f - -C "$tmp"\n'
        ': > "$tmp/.complete"\n'
        f'mv -T "$tmp" {word(code_dir)} 2>/dev/null || rm -rf "$tmp"\n'
    )


def prepare(remote: Remote, cfg: RemoteConfig, p: Plan) -> None:
    """Make sure ``remote`` has the code and the environment (each sent or built at most once)."""
    recipe = p.env_recipe(cfg)
    code = p.code_dir(cfg)
    probe = script(
        f"if [ -f {word(join_path(code, '.complete'))} ]; then echo 'theseus-code: present'; fi\n"
        f"if [ -f {word(join_path(env_dir(cfg.work, recipe), MARKER))} ]; then echo 'theseus-env: present'; fi\n"
    )
    found = remote.run(probe, timeout=120).markers()
    if found.get("code") != "present":
        data = p.bundle.tar()
        log.info(
            "%s: sending the code (%d files, %.1f MB)", remote.where, len(p.bundle.files), len(data) / 1e6
        )
        remote.run_with_input(upload_script(code), data)
    if found.get("env") != "present":
        log.info(
            "%s: building the environment %s (once; later submissions reuse it)", remote.where, recipe.digest
        )
        started = time.monotonic()
        remote.run(script(setup_script(cfg.work, recipe, cfg.setup)), timeout=3600)
        log.info("%s: environment ready in %.0f s", remote.where, time.monotonic() - started)


# --------------------------------------------------------------------------- submitting


def submit(
    name: str, config: str | Path | tuple[str, DictConfig], overrides: Sequence[str] = (), **kwargs: Any
) -> SubmittedRun:
    """Submit run ``name``; takes the arguments of :func:`plan` and returns a handle to the run."""
    return launch(plan(name, config, overrides, **kwargs))


def launch(p: Plan) -> SubmittedRun:
    """Carry out a plan: refuse if the run is still active, prepare the remotes, start, record."""
    try:
        previous: SubmittedRun | None = get(p.name, p.project, p.group)
    except TheseusError:
        previous = None
    if previous is not None and previous.record.state not in TERMINAL_STATES:
        state = previous.status().state
        if state not in TERMINAL_STATES and state != "unknown":
            raise TheseusError(
                f"run {p.name} is still {state} on {previous.record.target}: "
                f"cancel it first (theseus cancel {p.name}) or choose another name"
            )
    backend = BACKENDS[p.backend]
    for remote, remote_cfg in backend.remotes(p):
        prepare(remote, remote_cfg, p)
    cfg = p.primary
    fields = backend.launch(p)
    record = Submission(
        id=p.sid,
        name=p.name,
        project=p.project,
        group=p.group,
        job=p.job_key,
        backend=p.backend,
        target=p.target,
        request={
            "chip": p.request.chip,
            "n_chips": p.request.n_chips,
            "nodes": p.nodes,
            "tasks_per_node": p.tasks_per_node,
            "partition": p.partition,
            "time": p.time,
        },
        out=cfg.out,
        run_dir=p.run_dir(cfg),
        code=p.bundle.digest,
        environment=p.env_recipe(cfg).digest,
        env_keys=sorted(p.env),
        last={"state": "queued", "detail": "submitted", "step": None, "checked_at": time.time()},
        **fields,
    )
    record.save()
    where = (
        f"job {record.slurm['job_id']}"
        if record.slurm
        else ", ".join(f"pid {proc['pid']} on {proc['host']}" for proc in record.processes)
    )
    log.info("submitted %s to %s (%s)", p.name, p.target, where)
    return SubmittedRun(record)


# --------------------------------------------------------------------------- following a submitted run


class SubmittedRun:
    """A handle to a submitted run: its state, output, cancellation and files."""

    def __init__(self, record: Submission) -> None:
        self.record = record

    @property
    def backend(self) -> Backend:
        """The backend that runs it."""
        return BACKENDS[self.record.backend]

    @property
    def name(self) -> str:
        """The run's name."""
        return self.record.name

    def status(self) -> RemoteStatus:
        """Ask the remote for the run's state (one ssh round trip per machine) and remember it."""
        status = self.backend.look(self.record)
        self.record.last = {
            "state": status.state,
            "detail": status.detail,
            "step": status.step,
            "checked_at": time.time(),
        }
        self.record.save()
        return status

    def wait(
        self, poll_s: float = 2.0, timeout_s: float | None = None, until: Sequence[str] = TERMINAL_STATES
    ) -> RemoteStatus:
        """Poll until the state is one of ``until`` (default: any terminal state)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            status = self.status()
            if status.state in until:
                return status
            if deadline is not None and time.monotonic() > deadline:
                return status
            time.sleep(poll_s)

    def logs(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the job's output (every process's stdout and stderr)."""
        remote, job_dir = self.backend.log_source(self.record)
        text, _ = log_chunk(remote, job_dir, None, lines)
        return text

    def follow(self, write: Callable[[str], None], lines: int = 40, poll_s: float = 2.0) -> RemoteStatus:
        """Print the output as it grows until the run ends; returns the final state."""
        remote, job_dir = self.backend.log_source(self.record)
        text, offset = log_chunk(remote, job_dir, None, lines)
        write(text)
        while True:
            status = self.status()
            text, offset = log_chunk(remote, job_dir, offset, lines)
            write(text)
            if status.state in TERMINAL_STATES:
                return status
            time.sleep(poll_s)

    def cancel(self, wait_s: float = 60.0) -> RemoteStatus:
        """Stop the run (it saves a checkpoint if it can), record that, and return the new state."""
        self.record.cancelled_at = time.time()
        self.record.save()
        self.backend.cancel(self.record, wait_s)
        return self.status()

    def pull(self, out: str | Path, checkpoints: bool = False) -> Path:
        """Copy the remote run directory to ``out/runs/<project>/<group>/<name>``; returns that path."""
        from theseus.rundir import RunDirectory

        dest = RunDirectory.of(out, self.record.name, self.record.project, self.record.group).path
        origin = {"submission": self.record.id, "target": self.record.target, "run_dir": self.record.run_dir}
        return pull_run(
            self.backend.run_source(self.record),
            self.record.run_dir,
            dest,
            checkpoints=checkpoints,
            origin=origin,
        )


def get(name: str, project: str = "default", group: str = "default") -> SubmittedRun:
    """The handle of a submitted run, from its local record."""
    return SubmittedRun(load(name, project, group))


def list_submissions(refresh: bool = False) -> list[Submission]:
    """Every submitted run with its last known state (``refresh``: ask the remotes first).

    Each :class:`~theseus.dispatch.records.Submission` has ``name``, ``project``,
    ``group``, ``job``, ``backend``, ``target``, ``run_dir``, ``submitted_at`` and
    ``last`` (``{state, detail, step, checked_at}``). A remote that cannot be reached
    keeps its last known state, with the reason in ``last["detail"]``.
    """
    records = list(iter_records())
    if refresh:
        for record in records:
            if record.state in TERMINAL_STATES:
                continue
            try:
                SubmittedRun(record).status()
            except TheseusError as exc:
                record.last = {**record.last, "detail": f"unreachable: {exc}"}
    return records
