"""The key reference: every config key of a job with its type, default, bounds, doc and class.

``theseus keys JOB`` prints it as a table; the documentation site's *Configuration keys*
page is :func:`markdown` of the built-in jobs, generated when the site is built. The class
of a key says what a run does with a new value for it: *changeable* keys (budgets, the
learning rate and its schedule, intervals, logging, evaluation, retention) continue the
run under the new value; *fixed* ones (architecture, data, tokenizer, batch geometry,
seed, ...) are refused (see :func:`theseus.config.field`).
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from theseus.config import NO_DEFAULT, FieldSpec, schema, to_plain


@dataclass(frozen=True)
class KeyInfo:
    """One key as the reference shows it."""

    key: str
    type: str
    default: str
    bounds: str
    changeable: bool
    doc: str
    example: str

    @property
    def klass(self) -> str:
        """``changeable`` or ``fixed``: what a run does with a new value."""
        return "changeable" if self.changeable else "fixed"


def job_keys(job_cls: type[Any], prefix: str = "") -> list[KeyInfo]:
    """Every config key of ``job_cls`` (those starting with ``prefix`` when given), sorted."""
    fields = schema(*job_cls.config()).fields
    return [_info(fields[key]) for key in sorted(fields) if key.startswith(prefix)]


def _info(spec: FieldSpec) -> KeyInfo:
    return KeyInfo(
        key=spec.key,
        type=_type(spec.type, spec.type_name),
        default="required" if spec.default is NO_DEFAULT else show_value(spec.default),
        bounds=spec.bounds.describe() if spec.bounds is not None else "",
        changeable=spec.changeable,
        doc=spec.doc,
        example=spec.example,
    )


def _type(tp: Any, name: str) -> str:
    """``gelu | swiglu`` for a Literal (with ``| None`` kept), else the type's name."""
    args = typing.get_args(tp)
    literal = [a for a in args if typing.get_origin(a) is typing.Literal]
    if typing.get_origin(tp) is typing.Literal:
        return " | ".join(map(str, args))
    if literal and len(args) == 2 and type(None) in args:
        return " | ".join(map(str, typing.get_args(literal[0]))) + " | None"
    return name


def show_value(value: Any) -> str:
    """A default as it is written in YAML: ``null``, ``true``, ``[{name: shakespeare, rate: 1.0}]``."""
    text = yaml.safe_dump(to_plain(value), default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def table_rows(keys: Iterable[KeyInfo]) -> list[tuple[str, str, str, str, str]]:
    """``(key, type, default, class, doc with bounds)`` rows for a table."""
    rows = []
    for k in keys:
        notes = [k.doc] if k.doc else []
        if k.bounds:
            notes.append(f"({k.bounds})")
        if k.example:
            notes.append(f"e.g. {k.example}")
        rows.append((k.key, k.type, k.default, k.klass, " ".join(notes)))
    return rows


def markdown(jobs: Iterable[tuple[str, type[Any]]]) -> str:
    """The reference page: one table per job, its keys sorted."""
    out = [
        "# Configuration keys",
        "",
        "Every key of the built-in jobs, generated from their `field()` declarations when this site "
        "is built (`theseus keys JOB` prints the same for any job, yours included). "
        "*changeable* keys may take a new value under an existing run: `theseus run` with the new "
        "value continues the run (a completed one too), `theseus restore NAME STEP OUT key=value` "
        "continues it from an earlier checkpoint, and `config_history.jsonl` records the change and "
        "its step. A new value for a *fixed* key is refused. See "
        "[Configuration](../user-guide/configuration.md).",
        "",
    ]
    for key, cls in jobs:
        out += [f"## `{key}`", ""]
        describe = getattr(cls, "describe", None)
        if callable(describe) and describe():
            out += [_cell(describe()), ""]
        out += ["| key | type | default | class | description |", "|---|---|---|---|---|"]
        for name, tp, default, klass, doc in table_rows(job_keys(cls)):
            code = default.replace("|", "\\|")
            out.append(f"| `{name}` | {_cell(tp)} | `{code}` | {klass} | {_cell(doc)} |")
        out.append("")
    return "\n".join(out)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no column breaks, HTML tags or emphasis."""
    for raw, escaped in (("|", "\\|"), ("\n", " "), ("<", "&lt;"), (">", "&gt;"), ("*", "\\*")):
        text = text.replace(raw, escaped)
    return text
