"""The trained model in a run directory: the one door every reader of a run goes through.

::

    run = TrainedRun.at("out/runs/default/default/my-run")   # or TrainedRun.locate("my-run", "out")
    loaded = run.load()              # the model, the newest intact checkpoint's parameters, the tokenizer
    loaded.model, loaded.params, loaded.step, loaded.tokenizer

:class:`TrainedRun` answers which job trained the run and with which model class, the
run's resolved config, its tokenizer, its complete checkpoints and the parameters of
one of them. The evaluator (:meth:`Evaluator.from_checkpoint`), ``theseus generate``,
``theseus export``, the lm-eval adapter and the standalone evaluation jobs read runs
through it. Paths come from :class:`~theseus.rundir.RunDirectory`; checkpoint item
names, checksums and the ``latest`` pointer are known to :mod:`theseus.checkpoint` alone.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax.linen as nn
from omegaconf import DictConfig

from theseus.checkpoint import choose_intact, read_params
from theseus.config import Schema, configure, load_yaml, resolve, schema
from theseus.data.output import read_meta
from theseus.data.tokenizer import Tokenizer, TokenizerConfig, get_tokenizer, tokenizer_from_identity
from theseus.errors import TheseusError
from theseus.rundir import RunDirectory, data_dir


@dataclass
class LoadedModel:
    """A run's model with the parameters of one checkpoint, its tokenizer and its resolved config."""

    model: Any
    params: Any
    step: int
    tokenizer: Tokenizer
    config: DictConfig


@dataclass(frozen=True)
class TrainedRun:
    """The trained model in one run directory (see the module doc)."""

    directory: RunDirectory

    @classmethod
    def at(cls, path: str | Path | RunDirectory) -> TrainedRun:
        """The run in ``path``; :class:`TheseusError` unless it has a ``config.yaml``."""
        directory = path if isinstance(path, RunDirectory) else RunDirectory(Path(path))
        if not directory.exists():
            raise TheseusError(f"{directory.path} is not a run directory (no config.yaml)")
        return cls(directory)

    @classmethod
    def locate(
        cls, run: str, root: str | Path | None = None, project: str = "default", group: str = "default"
    ) -> TrainedRun:
        """The run ``run`` names: a run directory path, or a run name under the output root ``root``.

        ``run`` is a path when it is absolute, contains ``/`` or no ``root`` is given.
        """
        if not run:
            raise TheseusError("name a run: a run directory, or a run name with its output root")
        if root is None or Path(run).is_absolute() or "/" in run:
            return cls.at(Path(run))
        return cls.at(RunDirectory.of(root, run, project, group))

    @property
    def path(self) -> Path:
        """The run directory."""
        return self.directory.path

    @property
    def name(self) -> str:
        """The run's name."""
        return self.directory.name

    @functools.cached_property
    def config_tree(self) -> dict[str, Any]:
        """``config.yaml`` as written when the run started (every key of its job)."""
        return load_yaml(self.directory.config_path)

    @property
    def job_key(self) -> str | None:
        """The key of the job that trained the run, as ``config.yaml`` names it."""
        job = self.config_tree.get("job")
        return job if isinstance(job, str) else None

    # ------------------------------------------------------------------ the model

    def model_class(self, expected: type | None = None) -> type[Any]:
        """The ``MODEL`` of the job that trained the run.

        With ``expected`` (an evaluator's ``MODEL``, say), the run's model must be that class
        or a subclass of it; it stands in when the job is not registered in this process.
        """
        from theseus.registry import JOBS

        key = self.job_key
        job_cls = JOBS.get(key) if key is not None else None
        trained = getattr(job_cls, "MODEL", None) if job_cls is not None else None
        if job_cls is not None and trained is None:
            raise TheseusError(f"run {self.name} (job {key}) trained no model: there is nothing to read")
        if expected is not None and trained is not None and not issubclass(trained, expected):
            raise TheseusError(
                f"run {self.name} trained a {trained.__name__} (job {key}); this reads {expected.__name__} runs"
            )
        found = trained if trained is not None else expected
        if found is None:
            raise TheseusError(
                f"cannot tell which model run {self.name} trained (job {key} is not registered here); "
                "pass --load with the module that registers it"
            )
        return found

    def resolve(self, classes: Sequence[type], overrides: Sequence[str] = ()) -> DictConfig:
        """The run's config for ``classes``: the keys of ``config.yaml`` they declare, then ``overrides``."""
        known = _known(self.config_tree, schema(*classes))
        return resolve(classes, (known, f" in {self.directory.config_path}"), overrides=overrides)

    # ------------------------------------------------------------------ the tokenizer

    def tokenizer(self, config: DictConfig | None = None) -> Tokenizer:
        """The tokenizer the run trained with.

        That is the one ``job.json`` records, else the one its training data under the
        output root was tokenized with, else its config's ``tokenizer`` section (read from
        ``config`` when given, so overrides apply).
        """
        recorded = (self.directory.read_job() or {}).get("tokenizer")
        if isinstance(recorded, Mapping):
            return tokenizer_from_identity(recorded)
        root = self.directory.output_root
        if root is not None:
            for source in (self.config_tree.get("training") or {}).get("data") or []:
                name = source.get("name") if isinstance(source, Mapping) else None
                meta = read_meta(data_dir(root) / str(name)) if name else None
                identity = meta.get("tokenizer") if isinstance(meta, dict) else None
                if isinstance(identity, Mapping):
                    return tokenizer_from_identity(identity)
        if isinstance(self.config_tree.get("tokenizer"), Mapping):
            cfg = config if config is not None else self.resolve([TokenizerConfig])
            return get_tokenizer(configure(TokenizerConfig, cfg))
        raise TheseusError(
            f"cannot tell which tokenizer run {self.name} used (no tokenized data next to it and no "
            "tokenizer section in its config.yaml); pass tokenizer=..."
        )

    # ------------------------------------------------------------------ checkpoints

    def newest_step(self) -> int:
        """The newest checkpoint whose files match their checksums (a damaged newer one is skipped, with a warning)."""
        return choose_intact(self.directory.checkpoints_dir)

    def params(self, model: nn.Module, step: int | None = None) -> tuple[Any, int]:
        """The parameters of checkpoint ``step`` (default: :meth:`newest_step`) for ``model``, and the step.

        Only the parameters are read (never the optimizer state); they are checked against
        the shapes ``model`` implies and cast to its parameter dtypes. Raises
        :class:`TheseusError` when there is no such checkpoint, it is damaged, or its
        parameters do not fit ``model``.
        """
        import jax
        import jax.numpy as jnp

        directory = self.directory.checkpoints_dir
        step = choose_intact(directory, step)
        template = abstract_params(model)
        where = f"{directory / str(step)}"
        stored = _unbox_stored(read_params(directory, step), template)
        _check_fits(stored, template, where)
        return jax.tree.map(lambda x, t: jnp.asarray(x, dtype=t.dtype), stored, template), step

    def load(
        self,
        step: int | None = None,
        *,
        expected: type | None = None,
        with_config: Sequence[type] = (),
        overrides: Sequence[str] = (),
        tokenizer: Tokenizer | None = None,
    ) -> LoadedModel:
        """The run's model with the parameters of ``step`` (default: the newest intact checkpoint).

        The model is built from ``config.yaml`` (then ``overrides``, ``key=value`` strings,
        which may also set the keys of the ``with_config`` classes); ``expected`` is as in
        :meth:`model_class`; ``tokenizer`` replaces the run's own.
        """
        cls = self.model_class(expected)
        cfg = self.resolve([cls, TokenizerConfig, *with_config], overrides)
        model = configure(cls, cfg)
        params, restored = self.params(model, step)
        tok = tokenizer if tokenizer is not None else self.tokenizer(cfg)
        return LoadedModel(model, params, restored, tok, cfg)


def abstract_params(model: nn.Module) -> Any:
    """The (unboxed) parameter tree of any flax module as ``jax.ShapeDtypeStruct``\\ s; nothing is allocated."""
    import jax
    import jax.numpy as jnp

    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 1), jnp.int32)))
    return nn.meta.unbox(variables["params"])


def _known(tree: Mapping[str, Any], sch: Schema, prefix: str = "") -> dict[str, Any]:
    """The part of ``tree`` whose keys ``sch`` declares (a run's config has other classes' keys too)."""
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


def _unbox_stored(tree: Any, template: Any) -> Any:
    """Collapse ``{"value": array}`` nodes (parameters saved still boxed) where the template has a leaf."""
    if isinstance(tree, dict) and isinstance(template, dict):
        return {k: _unbox_stored(v, template.get(k)) for k, v in tree.items()}
    if isinstance(tree, dict) and not isinstance(template, dict) and set(tree) == {"value"}:
        return tree["value"]
    return tree


def _check_fits(stored: Any, template: Any, where: str) -> None:
    """Raise :class:`TheseusError` unless ``stored`` has exactly the paths and shapes of ``template``."""
    import jax

    want = dict(jax.tree_util.tree_flatten_with_path(template)[0])
    have = dict(jax.tree_util.tree_flatten_with_path(stored)[0])
    missing = sorted(jax.tree_util.keystr(p) for p in want.keys() - have.keys())
    extra = sorted(jax.tree_util.keystr(p) for p in have.keys() - want.keys())
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise TheseusError(f"the parameters in {where} do not fit the model in config.yaml: {detail}")
    for path, leaf in want.items():
        if tuple(have[path].shape) != tuple(leaf.shape):
            raise TheseusError(
                f"the parameters in {where} do not fit the model in config.yaml: "
                f"{jax.tree_util.keystr(path)} is {tuple(have[path].shape)}, the model needs {tuple(leaf.shape)}"
            )


__all__ = ["LoadedModel", "TrainedRun", "abstract_params"]
