"""The dispatch config (``~/.theseus.yaml``): where ``theseus submit`` can send runs.

It names plain SSH hosts and SLURM clusters. It is read with the run config's own
machinery (:mod:`theseus.config`), so it is just as strict: an unknown key is an error
naming the closest known one, a value of the wrong type names the key and the type.
``theseus/dispatch/example.yaml`` is a documented example.

The file is found at ``--dispatch-config PATH``, else ``$THESEUS_DISPATCH_CONFIG``, else
``~/.theseus.yaml``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from theseus.config import build, configure, load_yaml, merge, missing_keys, schema, to_tree
from theseus.config import field as key
from theseus.dispatch.shell import check_env_key, check_name, check_remote_path
from theseus.errors import ConfigError

ENV_VAR = "THESEUS_DISPATCH_CONFIG"
DEFAULT_PATH = "~/.theseus.yaml"


@dataclass
class EnvironmentConfig:
    """What the remote virtualenv holds beyond theseus's own dependencies."""

    extras: list[str] = key("environment/extras", default=[], doc="theseus extras to install, e.g. [cuda12]")
    packages: list[str] = key("environment/packages", default=[], doc="more pip requirements")
    pip_args: list[str] = key(
        "environment/pip_args", default=[], doc="extra pip arguments, e.g. [--index-url, URL]"
    )
    system_site_packages: bool = key(
        "environment/system_site_packages", default=False, doc="let the venv see the interpreter's packages"
    )


@dataclass
class RemoteConfig:
    """What plain hosts and clusters share: the interpreter, directories, environment."""

    python: str = key("python", default="python3", doc="base interpreter on the remote (path or name)")
    work: str = key("work", doc="remote directory for shipped code, environments and job files")
    out: str = key("out", doc="remote output root: runs go to OUT/runs/<project>/<group>/<name>")
    ssh_options: list[str] = key("ssh_options", default=[], doc="extra ssh arguments, e.g. [-p, '2222']")
    env: dict[str, str] = key("env", default={}, doc="environment variables of the job")
    secrets: list[str] = key(
        "secrets", default=[], doc="names of local environment variables passed to the job"
    )
    setup: list[str] = key("setup", default=[], doc="shell lines run before the job (module load ...)")
    environment: EnvironmentConfig = dataclasses.field(default_factory=EnvironmentConfig)


@dataclass
class HostConfig(RemoteConfig):
    """A machine reached with ``ssh``, where runs start as detached processes."""

    ssh: str = key("ssh", doc="ssh target: user@host or a Host alias from ~/.ssh/config")
    chips: dict[str, int] = key("chips", default={}, doc="accelerators it has, e.g. {h100: 8}")
    address: str | None = key(
        "address", default=None, doc="address the other hosts reach it at (multi-host coordinator)"
    )


@dataclass
class ClusterConfig(RemoteConfig):
    """A SLURM cluster: jobs go in with ``sbatch`` on its login host (or here)."""

    login: str | None = key("login", default=None, doc="ssh target of a login node; null: run sbatch here")
    partition: str | None = key("partition", default=None, doc="default partition (null: SLURM's default)")
    partitions: list[str] = key("partitions", default=[], doc="partitions --partition may name (empty: any)")
    account: str | None = key("account", default=None, doc="sbatch --account")
    qos: str | None = key("qos", default=None, doc="sbatch --qos")
    gres: dict[str, str] = key("gres", default={}, doc="chip -> GRES, e.g. {h100: 'gpu:h100'}")
    sbatch: list[str] = key("sbatch", default=[], doc="more sbatch options, e.g. ['--mem=64G']")
    time: str | None = key("time", default=None, doc="default time limit, e.g. '1-00:00:00'")
    signal_before: int = key(
        "signal_before", default=120, doc="seconds before the time limit that SIGUSR1 asks for a checkpoint"
    )


_SECTIONS: dict[str, type[RemoteConfig]] = {"hosts": HostConfig, "clusters": ClusterConfig}


@dataclass
class DispatchConfig:
    """Every host and cluster of a dispatch config, by name (in file order)."""

    hosts: dict[str, HostConfig]
    clusters: dict[str, ClusterConfig]
    path: Path | None = None

    def target(self, name: str) -> HostConfig | ClusterConfig:
        """The host or cluster called ``name``."""
        if name in self.hosts:
            return self.hosts[name]
        if name in self.clusters:
            return self.clusters[name]
        raise ConfigError(f"no host or cluster {name!r} in {self.where}{_hint(name, self.names())}")

    def names(self) -> list[str]:
        """Host names, then cluster names."""
        return [*self.hosts, *self.clusters]

    @property
    def where(self) -> str:
        """The file it came from, for messages."""
        return str(self.path) if self.path is not None else "the dispatch config"


def _hint(name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (it has: {', '.join(known)})" if known else " (it names no hosts or clusters)"


def config_path(explicit: str | Path | None = None) -> Path:
    """The dispatch config file to read: the flag, else the environment variable, else the default."""
    chosen = explicit or os.environ.get(ENV_VAR) or DEFAULT_PATH
    return Path(chosen).expanduser()


def load_dispatch_config(explicit: str | Path | None = None) -> DispatchConfig:
    """Read and check the dispatch config; a missing file is an error that says where to put one."""
    path = config_path(explicit)
    if not path.is_file():
        raise ConfigError(
            f"no dispatch config at {path}: describe your hosts and clusters there "
            f"(see {Path(__file__).with_name('example.yaml')}) or pass --dispatch-config PATH"
        )
    return parse_dispatch_config(load_yaml(path), path)


def parse_dispatch_config(tree: Mapping[str, Any], path: Path | None = None) -> DispatchConfig:
    """Check a dispatch config tree and build a :class:`DispatchConfig`."""
    where = str(path) if path is not None else "the dispatch config"
    for top in tree:
        if top not in _SECTIONS:
            raise ConfigError(f"unknown key {top} in {where}{_hint(str(top), list(_SECTIONS))}")
    sections: dict[str, dict[str, Any]] = {}
    for top, cls in _SECTIONS.items():
        entries = tree.get(top) or {}
        if not isinstance(entries, Mapping):
            raise ConfigError(f"{top} in {where} must be a mapping of names to settings")
        parsed = {}
        for name, entry in entries.items():
            check_name(f"{top[:-1]} name", str(name))
            parsed[str(name)] = _entry(cls, entry, f"{top}.{name}", where)
        sections[top] = parsed
    clash = set(sections["hosts"]) & set(sections["clusters"])
    if clash:
        raise ConfigError(f"{', '.join(sorted(clash))} in {where} is both a host and a cluster: rename one")
    return DispatchConfig(hosts=sections["hosts"], clusters=sections["clusters"], path=path)


def _entry(cls: type[RemoteConfig], entry: Any, prefix: str, where: str) -> Any:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{prefix} in {where} must be a mapping of settings")
    sch = schema(cls)
    located = f" in {prefix} of {where}"
    try:
        tree = merge(sch, to_tree(build(cls)), entry, located)
    except ConfigError as exc:
        if located in str(exc):
            raise
        raise ConfigError(f"{exc}{located}") from None  # a type error: say whose key it is
    missing = missing_keys(tree)
    if missing:
        raise ConfigError(f"{prefix} in {where} needs {', '.join(missing)}")
    cfg = OmegaConf.create(tree)
    value = configure(cls, cfg)
    for remote_key in ("work", "out"):
        check_remote_path(f"{prefix}.{remote_key}", getattr(value, remote_key))
    for env_key in [*value.env, *value.secrets]:
        check_env_key(env_key, f"{prefix} of {where}")
    return value
