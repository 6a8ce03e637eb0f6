"""Configuration: dataclass fields → one strict OmegaConf tree → hydrated objects.

A class declares a configurable field with :func:`field`, naming its key as a slash
path (``"architecture/n_layers"``). :func:`build` collects the fields of a job's classes
(following ``components()`` and dataclass-typed fields to any depth) into one
``DictConfig``; :func:`configuration` makes a config active for the current context and
:func:`configure` builds an instance of a class from it. :func:`patch` changes the active
config for the duration of a ``with`` block.

The rules are strict: a key no class declares, a value of the wrong type, and two
classes declaring one key with different defaults are all :class:`ConfigError`.
"""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import enum
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml
from omegaconf import DictConfig, OmegaConf

from theseus.errors import ConfigError

T = TypeVar("T")

FIELD_KEY = "theseus_key"
FIELD_DOC = "theseus_doc"
FIELD_BOUNDS = "theseus_bounds"
FIELD_CHANGEABLE = "theseus_changeable"
FIELD_EXAMPLE = "theseus_example"
MISSING_VALUE = "???"
RESERVED_KEYS = ("job", "request")


class _NoDefault:
    """Sentinel: the field has no default and must be set in YAML or on the command line."""

    def __repr__(self) -> str:
        return "MISSING"


NO_DEFAULT: Any = _NoDefault()


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The range a numeric config value must lie in (``None``: no limit on that side)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        """``>= 0 and < 1``."""
        parts = [
            f"{op} {_number(limit)}"
            for op, limit in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if limit is not None
        ]
        return " and ".join(parts)

    def holds(self, value: float) -> bool:
        """True when ``value`` is a finite number inside the range."""
        if not math.isfinite(value):
            return False
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def check(self, dotted: str, value: Any) -> None:
        """Raise :class:`ConfigError` when the number ``value`` lies outside the range (``None`` passes)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if not self.holds(value):
            raise ConfigError(f"config key {dotted} must be {self.describe()}, got {value!r}")


def _number(limit: float) -> str:
    return str(int(limit)) if float(limit).is_integer() else repr(limit)


def field(
    key: str,
    default: Any = NO_DEFAULT,
    *,
    default_factory: Any = NO_DEFAULT,
    doc: str = "",
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    changeable: bool = False,
    example: str = "",
    **kwargs: Any,
) -> Any:
    """Declare a dataclass (or flax module) field bound to the config key ``key``.

    ``key`` is a slash path such as ``"optimization/lr"``. ``default=None`` is a real
    default of ``None``; leaving both ``default`` and ``default_factory`` out makes the
    key mandatory (``???`` in generated YAML). ``ge``/``gt``/``le``/``lt`` bound a
    numeric value (``None`` always passes); every layer checks them with the type.

    ``changeable=True`` lets the value change under an existing run (a resume or
    ``theseus restore`` with a new value continues the run and records the change); a key
    left fixed, the default, is one a run cannot change: a new value is refused. Mark a
    key changeable only when the saved state still fits and the change means something
    mid-run (a budget, an interval, the learning rate), never when it alters the model,
    the data or the shape of the optimizer state. ``example`` shows how a value is
    written (``"[{name: shakespeare, rate: 1.0}]"``), for error messages and the key
    reference.
    """
    if default is not NO_DEFAULT and default_factory is not NO_DEFAULT:
        raise ConfigError(f"field {key!r}: give default or default_factory, not both")
    if not key or key.startswith("/") or key.endswith("/") or "." in key:
        raise ConfigError(f"field key {key!r} must be a slash path like 'section/name'")
    metadata = dict(kwargs.pop("metadata", {}) or {})
    metadata[FIELD_KEY] = key
    metadata[FIELD_DOC] = doc
    metadata[FIELD_CHANGEABLE] = changeable
    if example:
        metadata[FIELD_EXAMPLE] = example
    if any(limit is not None for limit in (ge, gt, le, lt)):
        bounds = Bounds(ge, gt, le, lt)
        if default is not NO_DEFAULT:
            bounds.check(key.replace("/", "."), default)  # a wrong default is the declaring class's bug
        metadata[FIELD_BOUNDS] = bounds
    if default_factory is not NO_DEFAULT:
        return dataclasses.field(default_factory=default_factory, metadata=metadata, **kwargs)
    if default is NO_DEFAULT:
        # keyword-only, so a mandatory field may follow fields with defaults
        kwargs.setdefault("kw_only", True)
        return dataclasses.field(metadata=metadata, **kwargs)
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: _deepcopy(value), metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def key_of(cls: type, attribute: str) -> str | None:
    """The dotted config key of ``cls``'s field ``attribute``, or ``None`` when it is not a config field."""
    if not dataclasses.is_dataclass(cls):
        return None
    for f in dataclasses.fields(cls):
        if f.name == attribute and FIELD_KEY in f.metadata:
            return str(f.metadata[FIELD_KEY]).replace("/", ".")
    return None


def _deepcopy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)


# --------------------------------------------------------------------------- schema


@dataclasses.dataclass
class FieldSpec:
    """One config key as declared by one or more classes."""

    key: str  # dotted: "architecture.n_layers"
    type: Any
    default: Any  # NO_DEFAULT when mandatory
    owners: list[str]
    doc: str = ""
    bounds: Bounds | None = None
    changeable: bool = False
    example: str = ""

    @property
    def required(self) -> bool:
        """True when no class gives the key a default."""
        return self.default is NO_DEFAULT

    @property
    def type_name(self) -> str:
        """The value type as a user reads it: ``int | None``, ``list[DataSource]``."""
        return _type_name(self.type)


@dataclasses.dataclass
class Schema:
    """All config keys of a set of classes, by dotted key."""

    fields: dict[str, FieldSpec]

    def keys(self) -> list[str]:
        """Sorted dotted keys."""
        return sorted(self.fields)

    def sections(self) -> set[str]:
        """Every dotted prefix that is a section (not a leaf)."""
        out: set[str] = set()
        for key in self.fields:
            parts = key.split(".")
            for i in range(1, len(parts)):
                out.add(".".join(parts[:i]))
        return out

    def suggest(self, key: str) -> str:
        """A ' (did you mean X?)' hint for an unknown key, or ''.

        A key whose last part is a known key's last part in another section (``training.lr``)
        is taken for that key (``optimization.lr``); otherwise the closest spelling is.
        """
        leaf = key.split(".")[-1]
        same_leaf = [k for k in self.fields if k.split(".")[-1] == leaf]
        close = difflib.get_close_matches(key, same_leaf, n=1, cutoff=0)
        if not close:
            candidates = list(self.fields) + sorted(self.sections())
            close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
        return f" (did you mean {close[0]}?)" if close else ""

    def field_of(self, key: str) -> FieldSpec | None:
        """The field of ``key``: itself, or the dict-valued field it lies under; ``None`` if unknown."""
        spec = self.fields.get(key)
        return spec if spec is not None else _owning_leaf(self, key)

    def changeable(self, key: str) -> bool:
        """True when ``key`` may change under an existing run (see :func:`field`); unknown keys are fixed."""
        spec = self.field_of(key)
        return spec is not None and spec.changeable


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # unresolved forward references: fall back to raw annotations
        return {f.name: f.type for f in dataclasses.fields(cls)}


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return NO_DEFAULT


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _components(cls: type) -> list[type]:
    comp = getattr(cls, "components", None)
    if comp is None or not callable(comp):
        return []
    try:
        result = comp()
    except TypeError:  # an instance method: cannot traverse without an instance
        return []
    return [c for c in (result or []) if isinstance(c, type)]


def schema(*classes: type) -> Schema:
    """Collect the config fields of ``classes`` into a :class:`Schema`.

    Follows ``components()`` and dataclass-typed fields to any depth. Raises
    :class:`ConfigError` when two classes give one key different defaults or types.
    """
    fields: dict[str, FieldSpec] = {}
    seen: set[type] = set()

    def visit(cls: type) -> None:
        if cls in seen:
            return
        seen.add(cls)
        if dataclasses.is_dataclass(cls):
            hints = _type_hints(cls)
            for f in dataclasses.fields(cls):
                key = f.metadata.get(FIELD_KEY)
                tp = hints.get(f.name, f.type)
                if key is not None:
                    _add(cls, f, key, tp)
                elif _is_dataclass_type(tp):
                    visit(tp)
        for sub in _components(cls):
            visit(sub)

    def _add(cls: type, f: dataclasses.Field[Any], key: str, tp: Any) -> None:
        dotted = key.replace("/", ".")
        default = _default_of(f)
        owner = _qualname(cls)
        spec = fields.get(dotted)
        bounds = f.metadata.get(FIELD_BOUNDS)
        changeable = bool(f.metadata.get(FIELD_CHANGEABLE, False))
        example = str(f.metadata.get(FIELD_EXAMPLE, ""))
        if spec is None:
            fields[dotted] = FieldSpec(
                dotted, tp, default, [owner], f.metadata.get(FIELD_DOC, ""), bounds, changeable, example
            )
            return
        if bounds is not None and spec.bounds is not None and bounds != spec.bounds:
            raise ConfigError(
                f"config key {dotted} has conflicting bounds: {spec.owners[0]} says "
                f"{spec.bounds.describe()}, {owner} says {bounds.describe()}"
            )
        spec.bounds = spec.bounds or bounds
        if not _same_default(spec.default, default):
            raise ConfigError(
                f"config key {dotted} has conflicting defaults: {spec.owners[0]} says "
                f"{_show(spec.default)}, {owner} says {_show(default)}; give both one default"
            )
        if _type_name(spec.type) != _type_name(tp):
            raise ConfigError(
                f"config key {dotted} has conflicting types: {spec.owners[0]} says "
                f"{_type_name(spec.type)}, {owner} says {_type_name(tp)}"
            )
        if owner not in spec.owners:
            spec.owners.append(owner)
        spec.doc = spec.doc or f.metadata.get(FIELD_DOC, "")
        spec.changeable = spec.changeable and changeable  # changeable only when every declaring class agrees
        spec.example = spec.example or example

    for cls in classes:
        visit(cls)
    leaves = set(fields)
    for key in leaves:
        parts = key.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix in leaves:
                raise ConfigError(f"config key {prefix} is both a value and a section (see {key})")
    return Schema(fields)


def _same_default(a: Any, b: Any) -> bool:
    if a is NO_DEFAULT or b is NO_DEFAULT:
        return a is b
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    try:
        return bool(_plain(a) == _plain(b))
    except Exception:
        return False


def _show(value: Any) -> str:
    return "no default" if value is NO_DEFAULT else repr(value)


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    # "list[theseus.training.trainer.DataSource]" reads as "list[DataSource]"
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", str(tp))


def _plain(value: Any) -> Any:
    """Turn a default into a YAML-friendly value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def to_plain(value: Any) -> Any:
    """A default as plain YAML data: dataclasses as mappings, enums as their values, paths as strings."""
    return _plain(value)


def nest_tree(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``{"a.b": 1}`` into ``{"a": {"b": 1}}``."""
    out: dict[str, Any] = {}
    for key in sorted(flat):
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = flat[key]
    return out


def flatten_tree(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Turn ``{"a": {"b": 1}}`` into ``{"a.b": 1}`` (the ``request`` section stays whole)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v and not key.startswith("request"):
            out.update(flatten_tree(v, key + "."))
        else:  # a leaf, an empty section, or the request section
            out[key] = v
    return out


def to_tree(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A config as a plain nested ``dict`` (every string exactly as the user wrote it)."""
    if isinstance(cfg, DictConfig):
        tree = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(tree, dict)
        return {str(k): v for k, v in tree.items()}
    return dict(cfg)


def to_config(tree: Mapping[str, Any]) -> DictConfig:
    """A struct ``DictConfig`` of a plain tree, with every string literal.

    OmegaConf would read ``${...}`` in a string as an interpolation (copying environment
    variables into the config, or failing on a lone ``${``); theseus values are literal,
    so each ``${`` is escaped on the way in and comes back unchanged on the way out.
    """
    cfg = OmegaConf.create(_escape(dict(tree)))
    OmegaConf.set_struct(cfg, True)
    return cfg


def _escape(value: Any) -> Any:
    if isinstance(value, str):
        return _escape_text(value) if "${" in value else value
    if isinstance(value, Mapping):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape(v) for v in value]
    return value


def _escape_text(text: str) -> str:
    # OmegaConf reads n backslashes before "${" as n//2 backslashes, and an odd one escapes
    # the "${": so 2n + 1 backslashes give back exactly n backslashes and a literal "${"
    out: list[str] = []
    i = 0
    while True:
        j = text.find("${", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        k = j
        while k > i and text[k - 1] == "\\":
            k -= 1
        out.append(text[i:k] + "\\" * (2 * (j - k) + 1) + "${")
        i = j + 2


def build(*classes: type) -> DictConfig:
    """Return the default config tree of ``classes`` (mandatory keys are ``???``)."""
    sch = schema(*classes)
    flat = {
        k: (MISSING_VALUE if s.default is NO_DEFAULT else _plain(s.default)) for k, s in sch.fields.items()
    }
    return to_config(nest_tree(flat))


# --------------------------------------------------------------------------- type checks


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


class _TypeMismatch(Exception):
    pass


def check_value(tp: Any, value: Any) -> Any:
    """Return ``value`` coerced to ``tp`` (int→float, str→Path, dict→dataclass dict...).

    Raises :class:`_TypeMismatch` when the value does not fit.
    """
    if tp is Any or tp is object:
        return value
    if isinstance(tp, str):  # unresolved annotation: cannot check
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is type(None):
        if value is None:
            return None
        raise _TypeMismatch
    if origin is Union or origin is types.UnionType:
        for arg in args:
            try:
                return check_value(arg, value)
            except _TypeMismatch:
                continue
        raise _TypeMismatch
    if origin is typing.Literal:
        if value in args:
            return value
        raise _TypeMismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _TypeMismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _TypeMismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise _TypeMismatch from None
        raise _TypeMismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _TypeMismatch
    if tp is Path:
        if isinstance(value, (str, Path)):
            return str(value)
        raise _TypeMismatch
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        if isinstance(value, tp):
            return value.value
        if value in values:
            return value
        raise _TypeMismatch
    if origin in (list, tuple, Sequence, set, frozenset) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _TypeMismatch
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise _TypeMismatch
            return [check_value(a, v) for a, v in zip(args, value, strict=True)]
        inner = args[0] if args else Any
        return [check_value(inner, v) for v in value]
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise _TypeMismatch
        inner = args[1] if len(args) == 2 else Any
        return {k: check_value(inner, v) for k, v in value.items()}
    if _is_dataclass_type(tp):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = _plain(value)
        if not isinstance(value, Mapping):
            raise _TypeMismatch
        hints = _type_hints(tp)
        known = {f.name: f for f in dataclasses.fields(tp)}
        out = {}
        for k, v in value.items():
            if k not in known:
                raise _TypeMismatch
            out[k] = check_value(hints.get(k, Any), v)
        if any(_default_of(f) is NO_DEFAULT and f.init and f.name not in out for f in known.values()):
            raise _TypeMismatch  # a required field is missing
        return out
    return value


def _check(spec: FieldSpec, value: Any) -> Any:
    if value == MISSING_VALUE:
        return value
    try:
        checked = check_value(spec.type, value)
    except _TypeMismatch:
        written = f"; write it as {spec.example}" if spec.example else ""
        raise ConfigError(
            f"config key {spec.key} expects {_type_name(spec.type)}, got {_describe(value)}{written}"
        ) from None
    if spec.bounds is not None:
        spec.bounds.check(spec.key, checked)
    return checked


# --------------------------------------------------------------------------- merging


def _reject_unknown(sch: Schema, key: str, where: str) -> None:
    raise ConfigError(f"unknown config key {key}{where}{sch.suggest(key)}")


def merge(sch: Schema, base: Mapping[str, Any], update: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Return ``base`` with ``update`` laid over it, every key and value checked.

    Both are nested dicts (``job`` and ``request`` at the top level pass through).
    ``where`` is appended to error messages (e.g. `` in run.yaml``).
    """
    flat = flatten_tree({k: v for k, v in base.items()})
    sections = sch.sections()
    for top, value in update.items():
        if top in RESERVED_KEYS:
            flat[top] = value
            continue
        if not isinstance(value, Mapping) or top in sch.fields:
            _set_checked(sch, flat, str(top), value, where, sections)
            continue
        if str(top) not in sections:
            first = next(iter(flatten_tree(value, f"{top}.")), str(top))
            _reject_unknown(sch, first, where)
        for key, v in flatten_tree(value, f"{top}.").items():
            _set_checked(sch, flat, key, v, where, sections)
    return nest_tree(flat)


def _set_checked(
    sch: Schema, flat: dict[str, Any], key: str, value: Any, where: str, sections: set[str]
) -> None:
    spec = sch.fields.get(key)
    if spec is None:
        # an empty mapping under a section key is a dict value of a parent
        parent = _owning_leaf(sch, key)
        if parent is None:
            _reject_unknown(sch, key, where)
        assert parent is not None
        sub = key[len(parent.key) + 1 :]
        current = nest_tree(
            {k[len(parent.key) + 1 :]: v for k, v in flat.items() if k.startswith(parent.key + ".")}
        )
        current = flat.get(parent.key, current) if parent.key in flat else current
        if not isinstance(current, dict):
            current = {}
        node = current
        parts = sub.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        flat[parent.key] = _check(parent, current)
        return
    if key in sections:
        _reject_unknown(sch, key, where)
    flat[key] = _check(spec, value)


def _owning_leaf(sch: Schema, key: str) -> FieldSpec | None:
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        spec = sch.fields.get(".".join(parts[:i]))
        if spec is not None:
            return spec
    return None


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``a.b=value`` into the dotted key and the YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip().replace("/", ".")
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    if raw == "":
        return key, ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({_yaml_reason(exc)})") from None
    return key, value


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def apply_overrides(sch: Schema, tree: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings to a nested dict, strictly."""
    flat_update: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        flat_update[key] = value
    out = dict(tree)
    for key, value in flat_update.items():
        out = merge(sch, out, nest_tree({key: value}), " on the command line")
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, turning every failure into one clear :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {_yaml_reason(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of config sections, not {type(data).__name__}")
    return data


def missing_keys(tree: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose value is still ``???``."""
    return sorted(str(k) for k, v in flatten_tree(tree).items() if v == MISSING_VALUE)


def resolve(
    classes: Sequence[type],
    *layers: tuple[Mapping[str, Any], str],
    overrides: Sequence[str] = (),
) -> DictConfig:
    """Defaults of ``classes`` < each ``(tree, where)`` layer < ``overrides``, all checked."""
    sch = schema(*classes)
    tree = to_tree(build(*classes))
    for layer, where in layers:
        tree = merge(sch, tree, layer, where)
    tree = apply_overrides(sch, tree, overrides)
    return to_config(tree)


def to_yaml(cfg: DictConfig | Mapping[str, Any]) -> str:
    """Render a config as YAML with sections in a stable order (``job`` first)."""
    tree = to_tree(cfg)
    ordered: dict[str, Any] = {}
    for key in RESERVED_KEYS:
        if key in tree:
            ordered[key] = tree[key]
    for key in sorted(k for k in tree if k not in RESERVED_KEYS):
        ordered[key] = tree[key]
    return yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False)


# --------------------------------------------------------------------------- activation

_ACTIVE: contextvars.ContextVar[DictConfig | None] = contextvars.ContextVar("theseus_config", default=None)


@contextmanager
def configuration(cfg: DictConfig) -> Iterator[DictConfig]:
    """Make ``cfg`` the active config inside the ``with`` block."""
    token = _ACTIVE.set(cfg)
    try:
        yield cfg
    finally:
        _ACTIVE.reset(token)


def current_config() -> DictConfig:
    """The active config; raises :class:`ConfigError` outside :func:`configuration`."""
    cfg = _ACTIVE.get()
    if cfg is None:
        raise ConfigError("no active configuration: wrap the call in `with configuration(cfg):`")
    return cfg


@contextmanager
def patch() -> Iterator[DictConfig]:
    """Yield a mutable copy of the active config, active until the block ends.

    Changes made inside the block are seen by :func:`configure` calls inside it and
    are gone afterwards. Outside any configuration it starts from an empty config.
    """
    cur = _ACTIVE.get()
    copy = to_config(to_tree(cur) if cur is not None else {})
    OmegaConf.set_struct(copy, False)
    token = _ACTIVE.set(copy)
    try:
        yield copy
    finally:
        _ACTIVE.reset(token)


def configure(cls: type[T], cfg: DictConfig | None = None, **overrides: Any) -> T:
    """Build an instance of ``cls`` from the active config (or ``cfg``).

    Keyed fields take their value from the config (falling back to the class
    default when the key is absent); unkeyed dataclass-typed fields are configured
    recursively; ``overrides`` are passed through as constructor arguments.
    """
    cfg = cfg if cfg is not None else current_config()
    return _hydrate(cls, cfg, overrides)


def _lookup(cfg: DictConfig, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return NO_DEFAULT
        if OmegaConf.is_missing(node, part):
            return MISSING_VALUE
        node = node[part]
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _hydrate(cls: type[T], cfg: DictConfig, overrides: Mapping[str, Any]) -> T:
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(f"cannot configure {cls!r}: it is not a dataclass or module")
    hints = _type_hints(cls)
    kwargs: dict[str, Any] = {}
    skipped = _module_fields(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skipped:
            continue
        if f.name in overrides:
            kwargs[f.name] = overrides[f.name]
            continue
        tp = hints.get(f.name, f.type)
        key = f.metadata.get(FIELD_KEY)
        if key is not None:
            dotted = key.replace("/", ".")
            value = _lookup(cfg, dotted)
            if value is NO_DEFAULT:
                continue  # absent from this config: keep the class default
            if value == MISSING_VALUE:
                raise ConfigError(f"config key {dotted} has no value; set it with {dotted}=...")
            kwargs[f.name] = _convert(tp, value, dotted)
            bounds = f.metadata.get(FIELD_BOUNDS)
            if bounds is not None:
                bounds.check(dotted, kwargs[f.name])
        elif _is_dataclass_type(tp):
            kwargs[f.name] = _hydrate(tp, cfg, {})
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and f.name not in kwargs
        and f.name not in skipped
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        keys = [
            next(
                (g.metadata.get(FIELD_KEY, g.name) for g in dataclasses.fields(cls) if g.name == m),
                m,
            ).replace("/", ".")
            for m in missing
        ]
        raise ConfigError(f"{cls.__name__} needs config key(s) {', '.join(keys)}")
    return cls(**kwargs)


def _module_fields(cls: type) -> tuple[str, ...]:
    """The fields flax adds to every linen Module (set by flax, never by config)."""
    import sys

    linen = sys.modules.get("flax.linen")
    if linen is not None and isinstance(cls, type) and issubclass(cls, linen.Module):
        return ("parent", "name")
    return ()


def _convert(tp: Any, value: Any, dotted: str) -> Any:
    """Turn a checked plain value into the annotated Python type."""
    try:
        value = check_value(tp, value)
    except _TypeMismatch:
        raise ConfigError(f"config key {dotted} expects {_type_name(tp)}, got {_describe(value)}") from None
    return _to_python(tp, value)


def _to_python(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        return None
    if origin is Union or origin is types.UnionType:
        for arg in args:
            if arg is type(None):
                continue
            try:
                check_value(arg, value)
            except _TypeMismatch:
                continue
            return _to_python(arg, value)
        return value
    if tp is Path:
        return Path(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if _is_dataclass_type(tp) and isinstance(value, Mapping):
        hints = _type_hints(tp)
        return tp(**{k: _to_python(hints.get(k, Any), v) for k, v in value.items()})
    if origin is tuple or tp is tuple:
        if args and not (len(args) == 2 and args[1] is Ellipsis):
            return tuple(_to_python(a, v) for a, v in zip(args, value, strict=True))
        inner = args[0] if args else Any
        return tuple(_to_python(inner, v) for v in value)
    if origin in (list, Sequence) or tp is list:
        inner = args[0] if args else Any
        return [_to_python(inner, v) for v in value]
    if origin in (dict, Mapping) or tp is dict:
        inner = args[1] if len(args) == 2 else Any
        return {k: _to_python(inner, v) for k, v in value.items()}
    return value
