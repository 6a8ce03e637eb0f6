"""The quick API: configure and run a job from Python (notebooks, prototyping).

::

    from theseus.quick import quick

    with quick("gpt/train/pretrain", "/tmp/theseus", "my-run") as j:
        j.config.training.batch_size = 16      # checked like a key=value override
        j.save("run.yaml", chip="h100", n_chips=8)   # for `theseus run` / `theseus submit`
        j()                                    # runs exactly like `theseus run`
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from theseus.config import (
    Schema,
    build,
    flatten_tree,
    merge,
    nest_tree,
    schema,
    to_config,
    to_tree,
    to_yaml,
)
from theseus.errors import ConfigError, TheseusError
from theseus.fsio import atomic_write_text
from theseus.job import ExecutionSpec, RunOutcome, resolve_job, run_job
from theseus.request import request_section


class ConfigView:
    """Attribute access to a job's config; every assignment is checked against the schema."""

    def __init__(self, owner: QuickJob, prefix: str = "") -> None:
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_prefix", prefix)

    def _key(self, name: str) -> str:
        return f"{self._prefix}.{name}" if self._prefix else name

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Any:
        key = self._key(name)
        sch: Schema = self._owner.schema
        if key in sch.fields:
            return flatten_tree(self._owner.tree).get(key, self._owner.tree_value(key))
        if key in sch.sections():
            return ConfigView(self._owner, key)
        raise ConfigError(f"unknown config key {key}{sch.suggest(key)}")

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __setitem__(self, name: str, value: Any) -> None:
        key = self._key(name)
        self._owner.set(key, value)

    def __dir__(self) -> list[str]:
        n = len(self._prefix) + 1 if self._prefix else 0
        keys = [k for k in self._owner.schema.fields if k.startswith(self._prefix)]
        return sorted({k[n:].split(".")[0] for k in keys})

    def to_dict(self) -> dict[str, Any]:
        """This section as a plain nested dict."""
        node: Any = self._owner.tree
        for part in self._prefix.split(".") if self._prefix else []:
            node = node[part]
        return dict(node)

    def __repr__(self) -> str:
        return to_yaml(self.to_dict()) if self._prefix == "" else f"{self._prefix}: {self.to_dict()!r}"


class QuickJob:
    """A job key plus its mutable, strictly checked config and a run identity."""

    def __init__(self, job: str, out_path: str | Path, name: str, project: str, group: str) -> None:
        self.key, self.job_cls = resolve_job(job)
        self.schema = schema(*self.job_cls.config())
        tree = to_tree(build(*self.job_cls.config()))
        assert isinstance(tree, dict)
        self.tree: dict[str, Any] = tree
        self.spec = ExecutionSpec(name=name, root=Path(out_path), project=project, group=group)
        self.request: dict[str, Any] = {}

    @property
    def config(self) -> ConfigView:
        """The config, with attribute access: ``j.config.optimization.lr = 1e-3``."""
        return ConfigView(self)

    def tree_value(self, key: str) -> Any:
        """The current value of a dotted key."""
        return flatten_tree(self.tree).get(key)

    def set(self, key: str, value: Any) -> None:
        """Set a dotted key, checked like a command-line override."""
        self.tree = merge(self.schema, self.tree, nest_tree({key: value}), " in quick()")

    def override(self, overrides: Sequence[str]) -> None:
        """Apply ``key=value`` strings."""
        from theseus.config import apply_overrides

        self.tree = apply_overrides(self.schema, self.tree, overrides)

    def _full_tree(self, chip: str | None = None, n_chips: int | None = None) -> dict[str, Any]:
        tree = dict(self.tree)
        tree["job"] = self.key
        request = request_section(self.request, chip, n_chips)
        if request:
            tree["request"] = request
        return tree

    def save(self, path: str | Path, chip: str | None = None, n_chips: int | None = None) -> Path:
        """Write the config as a YAML that ``theseus run`` and ``theseus submit`` accept."""
        p = Path(path)
        if not p.parent.exists():
            raise TheseusError(f"directory {p.parent} does not exist")
        atomic_write_text(p, to_yaml(self._full_tree(chip, n_chips)))
        return p

    def __call__(self, *, fresh: bool = False) -> RunOutcome:
        """Run the job locally, exactly like ``theseus run``."""
        return run_job(self.key, to_config(self._full_tree()), self.spec, fresh=fresh)


@contextmanager
def quick(
    job: str,
    out_path: str | Path,
    name: str,
    *,
    project: str = "default",
    group: str = "default",
    overrides: Sequence[str] = (),
) -> Iterator[QuickJob]:
    """Yield a :class:`QuickJob` for ``job`` that runs as ``name`` under ``out_path``."""
    handle = QuickJob(job, out_path, name, project, group)
    if overrides:
        handle.override(overrides)
    yield handle
