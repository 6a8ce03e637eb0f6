"""A submission plan: everything decided before anything is sent, and the scripts it implies.

Both backends read the same :class:`Plan`: the run's identity and resolved config, the
request (chips, nodes, tasks, time), the environment to pass, the code bundle and the
remote environment. ``--dry-run`` prints the plan and its scripts and stops there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from theseus.dispatch.config import ClusterConfig, HostConfig, RemoteConfig
from theseus.dispatch.environment import EnvRecipe, env_recipe, python_in
from theseus.dispatch.shell import Raw, command, exports, join_path, word, write_file
from theseus.dispatch.ship import Bundle
from theseus.errors import TheseusError
from theseus.request import Request
from theseus.rundir import run_parts

TIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time(text: str) -> int:
    """SLURM's time formats (``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``) in seconds."""
    m = TIME_RE.match(text.strip())
    if not m:
        raise TheseusError(f"--time {text!r} is not a time limit such as 30, 2:00:00 or 1-12:00:00")
    days, a, b, c = m.groups()
    nums = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-H, D-H:M, D-H:M:S
        h, mi, s = ([*nums, 0, 0])[:3]
        return int(days) * 86400 + h * 3600 + mi * 60 + s
    if len(nums) == 1:
        return nums[0] * 60
    if len(nums) == 2:
        return nums[0] * 60 + nums[1]
    return nums[0] * 3600 + nums[1] * 60 + nums[2]


@dataclass
class Plan:
    """One submission, fully decided."""

    sid: str
    name: str
    project: str
    group: str
    job_key: str
    config_yaml: str
    request: Request
    target: str
    backend: str  # "ssh" | "slurm"
    hosts: list[tuple[str, HostConfig]] = field(default_factory=list)
    cluster: ClusterConfig | None = None
    nodes: int = 1
    tasks_per_node: int = 1
    time: str | None = None
    partition: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    secret_keys: list[str] = field(default_factory=list)
    bundle: Bundle = field(default_factory=Bundle)
    fresh: bool = False

    # ---- where things go on a remote
    @property
    def primary(self) -> RemoteConfig:
        """The config of the cluster, or of the first host."""
        if self.cluster is not None:
            return self.cluster
        return self.hosts[0][1]

    recipes: dict[int, EnvRecipe] = field(default_factory=dict, repr=False)

    def env_recipe(self, cfg: RemoteConfig) -> EnvRecipe:
        """The environment ``cfg`` needs (computed once per config)."""
        if id(cfg) not in self.recipes:
            self.recipes[id(cfg)] = env_recipe(cfg.python, cfg.environment)
        return self.recipes[id(cfg)]

    def job_dir(self, cfg: RemoteConfig, process: int | None = None) -> str:
        """This submission's job directory on ``cfg``'s machine.

        With several plain hosts each process gets its own (hosts may share a filesystem).
        """
        base = join_path(cfg.work, "jobs", self.project, self.group, self.name, self.sid)
        return join_path(base, f"process-{process}") if process is not None and len(self.hosts) > 1 else base

    def code_dir(self, cfg: RemoteConfig) -> str:
        """Where the code bundle is unpacked on ``cfg``'s machine."""
        return join_path(cfg.work, "code", self.bundle.digest)

    def run_dir(self, cfg: RemoteConfig) -> str:
        """The run directory the remote ``theseus run`` writes."""
        return join_path(cfg.out, *run_parts(self.project, self.group, self.name))

    @property
    def time_s(self) -> int | None:
        """The time limit in seconds."""
        return parse_time(self.time) if self.time else None

    # ---- what runs there
    def run_command(self, cfg: RemoteConfig, job: str, fresh: str | None = None) -> str:
        """The remote ``theseus run`` command line (``fresh``: a shell fragment adding ``--fresh``)."""
        loads: list[str] = []
        for load in self.bundle.loads:
            loads += ["--load", word(join_path(self.code_dir(cfg), load)) if "/" in load else load]
        return command(
            word(python_in(cfg.work, self.env_recipe(cfg))),
            *("-m", "theseus.cli", "run", self.name),
            word(join_path(job, "config.yaml")),
            word(cfg.out),
            *("-p", self.project, "-g", self.group),
            *([Raw(fresh)] if fresh else []),
            *loads,
        )

    def preamble(self, cfg: RemoteConfig) -> str:
        """What every job script does first: note SIGTERM (the run saves and stops on its own, and
        the script still records its exit code), run the config's setup lines, put the code on
        PYTHONPATH."""
        lines = [
            "set -u",
            "trap 'echo \"theseus: SIGTERM: the run saves a checkpoint and stops\"' TERM",
            *cfg.setup,
            f"export PYTHONPATH={word(self.code_dir(cfg))}",
            "export PYTHONUNBUFFERED=1",
        ]
        return "\n".join(lines) + "\n"

    def record_exit(self, job: str) -> str:
        """Lines that write the run's exit code (``$rc``) to the job directory ``job``, atomically."""
        exit_file = join_path(job, "exit")
        return (
            f"printf '%s\\n' \"$rc\" > {word(exit_file + '.tmp')}\n"
            f"mv -f {word(exit_file + '.tmp')} {word(exit_file)}\n"
        )

    def job_files(self, job: str, scripts: dict[str, str]) -> str:
        """Lines that create the job directory ``job`` with the config and ``scripts`` (mode 0700)."""
        return (
            f"mkdir -p {word(job)}\n"
            + write_file(join_path(job, "config.yaml"), self.config_yaml)
            + "".join(write_file(join_path(job, name), text, "700") for name, text in scripts.items())
        )

    def exports(self, *, reveal: bool) -> str:
        """``export`` lines for the job's environment (secrets hidden unless ``reveal``)."""
        return exports(self.env, self.secret_keys, reveal=reveal)

    def describe(self) -> list[str]:
        """The plan in a few lines, for ``--dry-run`` and the submission log."""
        cfg = self.primary
        recipe = self.env_recipe(cfg)
        where = (
            f"cluster {self.target} (login {self.cluster.login or 'this machine'})"
            if self.cluster is not None
            else "host " + ", ".join(f"{n} ({h.ssh})" for n, h in self.hosts)
        )
        lines = [
            f"run          {self.name} (job {self.job_key}, {self.project}/{self.group})",
            f"submit to    {where}",
            f"request      {self.request.describe()}, {self.nodes} node(s) x {self.tasks_per_node} process(es)"
            + (f", time {self.time}" if self.time else "")
            + (f", partition {self.partition}" if self.partition else ""),
            f"code         {len(self.bundle.files)} files, digest {self.bundle.digest} -> {self.code_dir(cfg)}",
            f"environment  {recipe.digest} ({len(recipe.requirements)} requirements, python {recipe.python})"
            f" -> {join_path(cfg.work, 'envs', recipe.digest)}",
            f"job files    {self.job_dir(cfg)}",
            f"run dir      {self.run_dir(cfg)}",
        ]
        if self.env:
            shown = ", ".join(f"{k} (hidden)" if k in self.secret_keys else k for k in self.env)
            lines.append(f"variables    {shown}")
        return lines
