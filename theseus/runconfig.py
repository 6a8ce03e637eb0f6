"""Run YAMLs: read one into a job key and a checked config (what ``theseus run`` and ``submit``
share), and carry an old one's values over to another job's config (``theseus configure -p``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig

from theseus.config import ConfigError, Schema, check_value, flatten_tree, load_yaml, nest_tree, resolve


def load_run_config(
    yaml_path: str, overrides: Sequence[str] = (), job_key: str | None = None
) -> tuple[str, DictConfig]:
    """Read a run YAML, check it against its job's schema, apply ``key=value`` overrides.

    The job comes from the YAML's ``job:`` key or ``job_key``; a disagreement between the
    two, an unknown key or a wrong type is a :class:`ConfigError`.
    """
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


def carry_over(sch: Schema, old: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split an old YAML tree into the values ``sch`` accepts (nested) and the dotted keys dropped.

    A key is dropped when ``sch`` does not declare it or its value does not fit the key's
    type; ``job`` and ``request`` are not config keys and are left to the caller.
    """
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in flatten_tree({k: v for k, v in old.items() if k not in ("job", "request")}).items():
        spec = sch.fields.get(key)
        if spec is None:
            dropped.append(key)
            continue
        try:
            kept[key] = check_value(spec.type, value)
        except Exception:  # check_value's private mismatch, or a value its coercion refuses
            dropped.append(key)
    return nest_tree(kept), dropped
