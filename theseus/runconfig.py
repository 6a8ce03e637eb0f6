"""Read a run YAML into a job key and a checked config (what ``theseus run`` and ``submit`` share)."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

from theseus.config import ConfigError, load_yaml, resolve


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
