"""Render a tokenizer's Jinja chat template as Hugging Face tokenizers do, with jinja2 alone.

The environment matches the one templates are written for: a sandbox, ``trim_blocks`` and
``lstrip_blocks``, loop controls, a ``tojson`` filter that keeps non-ASCII text,
``raise_exception(message)``, ``strftime_now(format)``, and ``{% generation %}`` blocks
(rendered as their content). The template sees ``messages``, ``add_generation_prompt`` and
the tokenizer's special tokens (``bos_token``, ``eos_token`` …).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment


class _Generation(jinja2.ext.Extension):
    """``{% generation %}…{% endgeneration %}`` marks the assistant's text; here it renders as is."""

    tags = {"generation"}

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


def _raise(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class ChatTemplate:
    """One compiled chat template and the special tokens it may refer to."""

    def __init__(self, source: str, special_tokens: Mapping[str, str | None]) -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, jinja2.ext.loopcontrols]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self._template = env.from_string(source)
        self._tokens = {key: value for key, value in special_tokens.items() if value is not None}

    def render(self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = False) -> str:
        """The template's text for ``messages`` (a jinja2 error propagates)."""
        return self._template.render(
            messages=list(messages), add_generation_prompt=add_generation_prompt, **self._tokens
        )
