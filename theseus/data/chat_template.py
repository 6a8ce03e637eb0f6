"""Render a Hugging Face chat template (Jinja) the way ``transformers`` does, without it.

Chat templates in ``tokenizer_config.json`` are Jinja written against the environment that
``transformers``' ``apply_chat_template`` sets up; this module recreates what templates rely
on, with ``jinja2`` alone:

- a sandbox that also forbids changing lists and dicts (templates are untrusted code);
- ``trim_blocks`` and ``lstrip_blocks`` (a block tag eats its own line's whitespace);
- the ``loopcontrols`` extension (``{% break %}``, ``{% continue %}``);
- ``{% generation %}...{% endgeneration %}``, rendered as its body (theseus finds the
  assistant's tokens itself, see :class:`~theseus.data.chat.TemplateChatEncoder`);
- a ``tojson`` filter that does not escape HTML and takes ``indent``, ``separators``,
  ``sort_keys`` and ``ensure_ascii``;
- ``raise_exception(message)`` and ``strftime_now(format)``;
- the variables ``messages``, ``add_generation_prompt``, ``tools`` and ``documents``
  (both ``None``) and the tokenizer's special tokens (``bos_token``, ``eos_token`` ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from theseus.errors import TheseusError


class _GenerationBlock(jinja2.ext.Extension):
    """``{% generation %}body{% endgeneration %}`` renders ``body``."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    @staticmethod
    def _body(caller: Any) -> str:
        return str(caller())


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


def _environment() -> jinja2.Environment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


class ChatTemplate:
    """A compiled chat template; ``source`` names the tokenizer in error messages."""

    def __init__(self, template: str, source: str, special_tokens: Mapping[str, Any] | None = None) -> None:
        self.source = source
        self.special_tokens = {k: v for k, v in (special_tokens or {}).items() if v is not None}
        try:
            self._template = _environment().from_string(template)
        except jinja2.TemplateError as exc:
            raise TheseusError(f"chat template of {source} does not parse: {exc}") from None

    def render(self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = False) -> str:
        """The template's text for ``messages``."""
        try:
            return self._template.render(
                **self.special_tokens,
                messages=[dict(m) for m in messages],
                tools=None,
                documents=None,
                add_generation_prompt=add_generation_prompt,
            )
        except Exception as exc:
            raise TheseusError(f"chat template of {self.source} failed: {type(exc).__name__}: {exc}") from None
