"""Registries of jobs, datasets, evaluations, optimizers and schedules.

Built-in entries are registered by plain assignment in their packages (the built-in jobs
lazily in ``theseus/recipes/__init__.py``). User code adds entries in
``theseus/experiments/__init__.py`` (``JOBS["my_model/train/pretrain"] = PretrainMyModel``),
from a module or file given with ``--load``, or from an installed package's
``theseus.plugins`` entry point. Each built-in module is imported on its own, so one that
fails (a user's experiment module, say) never hides the entries of another. An optional module that fails to import is
recorded with its reason (:meth:`Registry.optional`) instead of breaking the registry.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from theseus.errors import TheseusError

V = TypeVar("V")

PLUGIN_GROUP = "theseus.plugins"


class Registry(Generic[V]):
    """A named mapping from string keys to classes or factories.

    Unknown keys raise :class:`TheseusError` with the closest known key. Keys whose
    module failed to import are listed in :attr:`broken` with the reason.
    """

    def __init__(self, kind: str, builtins: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, V] = {}
        self._lazy: dict[str, str] = {}
        self.broken: dict[str, str] = {}
        self._builtins = builtins
        self._loaded = False

    # ---- loading
    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtins:
            try:
                importlib.import_module(module)
            except Exception as exc:  # an optional dependency missing must not break the rest
                self.broken[f"<{module}>"] = _reason(exc)
        load_plugins()

    # ---- mapping API
    def __setitem__(self, key: str, value: V) -> None:
        self._ensure_loaded()  # built-ins first, so an entry set here replaces theirs
        self._entries[key] = value
        self._lazy.pop(key, None)
        self.broken.pop(key, None)

    def lazy(self, key: str, target: str) -> None:
        """Register ``key`` as ``"module:attribute"``, imported only when first looked up.

        Keeps start-up cheap: listing keys or running one job does not import every
        other job's dependencies.
        """
        if key not in self._entries:
            self._lazy[key] = target

    def _resolve(self, key: str) -> None:
        target = self._lazy.pop(key, None)
        if target is None:
            return
        module, _, attr = target.partition(":")
        try:
            self._entries[key] = getattr(importlib.import_module(module), attr)
        except Exception as exc:  # an optional dependency missing: report, don't crash
            self.broken[key] = _reason(exc)

    def __getitem__(self, key: str) -> V:
        self._ensure_loaded()
        self._resolve(key)
        if key in self._entries:
            return self._entries[key]
        if key in self.broken:
            raise TheseusError(f"{self.kind} {key!r} is unavailable: {self.broken[key]}")
        close = difflib.get_close_matches(key, self.keys(), n=1, cutoff=0.5)
        hint = (
            f" (did you mean {close[0]}?)"
            if close
            else f"; see `theseus {self.kind}s`"
            if self.kind == "job"
            else ""
        )
        raise TheseusError(f"unknown {self.kind} {key!r}{hint}")

    def get(self, key: str, default: V | None = None) -> V | None:
        """The entry for ``key`` or ``default``."""
        self._ensure_loaded()
        self._resolve(key)
        return self._entries.get(key, default)

    def __contains__(self, key: object) -> bool:
        self._ensure_loaded()
        if isinstance(key, str):
            self._resolve(key)
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def keys(self) -> list[str]:
        """Sorted registered keys (lazy entries are not imported)."""
        self._ensure_loaded()
        return sorted(set(self._entries) | set(self._lazy))

    def items(self) -> list[tuple[str, V]]:
        """Sorted (key, entry) pairs; imports lazy entries (failures land in :attr:`broken`)."""
        for key in self.keys():
            self._resolve(key)
        return [(k, self._entries[k]) for k in sorted(self._entries)]

    @contextmanager
    def optional(self, *keys: str) -> Iterator[None]:
        """Register ``keys`` inside the block; if the block fails to import, mark them broken."""
        try:
            yield
        except Exception as exc:
            for key in keys:
                self.broken[key] = _reason(exc)


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        text += f" (install the package that provides {exc.name!r})"
    return text


JOBS: Registry[Any] = Registry("job", ("theseus.recipes", "theseus.experiments"))
"""Job classes by key (``family/kind/variant``): what ``theseus jobs`` lists and ``theseus run`` runs."""
DATASETS: Registry[Any] = Registry("dataset", ("theseus.data.datasets.registry",))
"""Dataset classes by key, chosen with ``data.dataset`` by the tokenization jobs."""
EVALUATIONS: Registry[Any] = Registry("evaluation", ("theseus.evaluation.datasets",))
"""Evaluation classes by key, chosen with ``eval.evaluations``."""
OPTIMIZERS: Registry[Any] = Registry("optimizer", ("theseus.training.optimizers",))
"""``(build, config)`` pairs by name, chosen by a trainer's ``optimizer()``."""
SCHEDULES: Registry[Any] = Registry("schedule", ("theseus.training.schedules",))
"""``(build, config)`` pairs by name, chosen by a trainer's ``schedule()``."""

_plugins_loaded = False
PLUGIN_ERRORS: dict[str, str] = {}


def load_plugins() -> None:
    """Import every ``theseus.plugins`` entry point once; failures are recorded, not raised."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, type):
                obj()
        except Exception as exc:
            PLUGIN_ERRORS[ep.name] = _reason(exc)


def load_module(spec: str) -> None:
    """Import a user module by dotted name or ``.py`` path so it can register entries.

    The current directory is put on ``sys.path`` first. Raises :class:`TheseusError`
    with the module's own error when it cannot be imported.
    """
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        if spec.endswith(".py") or "/" in spec:
            path = Path(spec).resolve()
            if not path.is_file():
                raise TheseusError(f"--load {spec}: no such file")
            name = f"theseus_user_{path.stem}_{abs(hash(str(path))) % 10**8}"
            if name in sys.modules:
                return
            if str(path.parent) not in sys.path:
                sys.path.insert(0, str(path.parent))
            mod_spec = importlib.util.spec_from_file_location(name, path)
            assert mod_spec is not None and mod_spec.loader is not None
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module
            try:
                mod_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        else:
            importlib.import_module(spec)
    except TheseusError:
        raise
    except SystemExit as exc:
        # importing a module must not end the command (with code 0, as if it had run)
        raise TheseusError(f"--load {spec} called sys.exit({exc.code!r}) while being imported") from None
    except Exception as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1:] or None
        where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
        raise TheseusError(f"--load {spec} failed: {type(exc).__name__}: {exc}{where}") from exc
