"""Everything an evaluator needs from a finished (or running) run directory.

``config.yaml`` describes the model and the ``eval/*`` settings, ``checkpoints/`` holds the
parameters, and the run's tokenized training data (``OUT/data/<name>/meta.json``) names
the tokenizer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from theseus.config import Schema, configuration, configure, load_yaml, resolve, schema, to_config
from theseus.data.tokenizer import Tokenizer, TokenizerConfig, get_tokenizer
from theseus.errors import TheseusError
from theseus.evaluation.evaluator import EvaluatorConfig, build_evaluation
from theseus.evaluation.kinds.base import Evaluation
from theseus.evaluation.restore import restore_params
from theseus.fsio import read_json


@dataclass
class LoadedRun:
    """A run's model, parameters, tokenizer, evaluator settings and evaluations."""

    model: Any
    params: Any
    step: int
    tokenizer: Tokenizer
    config: EvaluatorConfig
    evaluations: list[Evaluation[Any]]


def model_class(evaluator_cls: type, tree: Mapping[str, Any], where: Path) -> type:
    """The ``MODEL`` of the job that wrote ``config.yaml`` when it is the evaluator's ``MODEL`` or a
    subclass of it, else the evaluator's ``MODEL``."""
    from theseus.registry import JOBS

    explicit = getattr(evaluator_cls, "MODEL", None)
    job = tree.get("job")
    job_cls = JOBS.get(job) if isinstance(job, str) else None
    trained = getattr(job_cls, "MODEL", None) if job_cls is not None else None
    if job_cls is not None and trained is None:
        raise TheseusError(f"run {where.name} (job {job}) trained no model: there is nothing to evaluate")
    if explicit is not None:
        if trained is not None and not issubclass(trained, explicit):
            raise TheseusError(
                f"run {where.name} trained a {trained.__name__} (job {job}); "
                f"{evaluator_cls.__name__} reads {explicit.__name__} checkpoints"
            )
        return trained if trained is not None else explicit  # type: ignore[no-any-return]
    if trained is not None:
        return trained  # type: ignore[no-any-return]
    raise TheseusError(f"cannot tell which model {where} trained; set MODEL on the evaluator class")


def _known(tree: Mapping[str, Any], sch: Schema, prefix: str = "") -> dict[str, Any]:
    """The part of ``tree`` whose keys ``sch`` declares (a run's config has other jobs' keys too)."""
    sections = sch.sections()
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if dotted in sch.fields:
            out[str(key)] = value
        elif dotted in sections and isinstance(value, Mapping):
            inner = _known(value, sch, dotted + ".")
            if inner:
                out[str(key)] = inner
    return out


def run_tokenizer(run_dir: Path, tree: Mapping[str, Any]) -> Tokenizer:
    """The tokenizer of the run's training data, else the config's ``tokenizer`` section."""
    parents = run_dir.resolve().parents
    if len(parents) > 3 and parents[2].name == "runs":  # OUT/runs/<project>/<group>/<name>
        for source in (tree.get("training") or {}).get("data") or []:
            name = source.get("name") if isinstance(source, Mapping) else None
            meta = read_json(parents[3] / "data" / str(name) / "meta.json") if name else None
            identity = meta.get("tokenizer") if isinstance(meta, dict) else None
            if isinstance(identity, dict):
                return _from_identity(identity)
    if isinstance(tree.get("tokenizer"), Mapping):
        return get_tokenizer(configure(TokenizerConfig))
    raise TheseusError(
        f"cannot tell which tokenizer run {run_dir.name} used (no tokenized data next to it and no "
        "tokenizer section in its config.yaml); pass tokenizer=..."
    )


def _from_identity(identity: Mapping[str, Any]) -> Tokenizer:
    import theseus.data.tokenizer as tokenizers

    rebuild = getattr(tokenizers, "tokenizer_from_identity", None)
    if rebuild is not None:
        return rebuild(dict(identity))  # type: ignore[no-any-return]
    keys = {
        "backend": identity.get("backend", "byte"),
        "name": identity.get("name"),
        "path": identity.get("path"),
    }
    return get_tokenizer(configure(TokenizerConfig, to_config({"tokenizer": keys})))


def load_run(
    evaluator_cls: type,
    run_dir: Path,
    step: int | None,
    overrides: Sequence[str],
    tokenizer: Tokenizer | None,
) -> LoadedRun:
    """Read ``run_dir``: build its model from ``config.yaml`` and restore the parameters of ``step``."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise TheseusError(f"{run_dir} is not a run directory (no config.yaml)")
    tree = load_yaml(config_path)
    cls = model_class(evaluator_cls, tree, run_dir)
    classes = [cls, EvaluatorConfig, TokenizerConfig]
    cfg = resolve(classes, (_known(tree, schema(*classes)), f" in {config_path}"), overrides=overrides)
    with configuration(cfg):
        model: Any = configure(cls)
        settings = configure(EvaluatorConfig)
        evaluations = [build_evaluation(key) for key in settings.evaluations]
        params, restored_step = restore_params(run_dir / "checkpoints", model, step)
        tok = tokenizer if tokenizer is not None else run_tokenizer(run_dir, tree)
    return LoadedRun(model, params, restored_step, tok, settings, evaluations)
