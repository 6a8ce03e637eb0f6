"""Chat formatting shared by the tokenizer backends.

A conversation is a list of messages ``{"role": ..., "content": ...}``. Encoding one
gives the token ids and a loss mask that is 1 on the tokens the assistant produces: the
assistant's content and the token that ends its turn.

- :func:`encode_chatml` writes ChatML (``<|im_start|>role\\n...<|im_end|>\\n``) for the
  byte and tiktoken backends.
- :class:`TemplateChatEncoder` uses a tokenizer's own chat template (rendered by
  :mod:`theseus.data.chat_template` as ``transformers`` would). Only the control tokens
  the template itself writes become special tokens; text inside a message that merely
  looks like one stays text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from theseus.errors import TheseusError

Message = dict[str, str]
Chat = list[Message]

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"

ASSISTANT = "assistant"


def check_messages(messages: Any) -> Chat:
    """Return ``messages`` as a list of ``{"role", "content"}`` dicts, or raise :class:`TheseusError`."""
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        raise TheseusError(f"a chat must be a list of messages, not {type(messages).__name__}")
    if not messages:
        raise TheseusError("a chat must hold at least one message")
    out: Chat = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TheseusError(f"chat message {i} must be a mapping with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role:
            raise TheseusError(f"chat message {i} has no 'role' string")
        if not isinstance(content, str):
            raise TheseusError(f"chat message {i} ({role}) has no 'content' string")
        out.append({"role": role, "content": content})
    return out


def encode_chatml(
    messages: Sequence[Mapping[str, str]],
    encode: Callable[[str], list[int]],
    im_start: int,
    im_end: int,
    add_generation_prompt: bool = False,
) -> tuple[list[int], list[int]]:
    """ChatML ids and assistant mask; ``encode`` must treat special-token text as plain text."""
    ids: list[int] = []
    mask: list[int] = []

    def put(tokens: list[int], value: int) -> None:
        ids.extend(tokens)
        mask.extend([value] * len(tokens))

    for message in check_messages(messages):
        learn = int(message["role"] == ASSISTANT)
        put([im_start, *encode(message["role"] + "\n")], 0)
        put(encode(message["content"]), learn)
        put([im_end], learn)
        put(encode("\n"), 0)
    if add_generation_prompt:
        put([im_start, *encode(ASSISTANT + "\n")], 0)
    return ids, mask


# --------------------------------------------------------------------------- templates

_SENTINEL = "\ue000{}\ue001"
_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    message: int


@dataclass(frozen=True)
class _Rendered:
    text: str
    contents: list[_Span]  # where each message's content sits in ``text``


class TemplateChatEncoder:
    """Encode chats with a tokenizer's own template, protecting message text.

    ``render(messages, add_generation_prompt)`` returns the template's text;
    ``encode_text(text)`` returns ``(ids, offsets)`` treating special-token text as text;
    ``control_tokens`` maps each control token string (the tokenizer's special tokens)
    to its id. The template is rendered twice: once with every message's content
    replaced by a placeholder, to learn which text the template writes, and once for
    real. Control tokens found in the template's own text become their ids; everything
    else is encoded as plain text.
    """

    def __init__(
        self,
        render: Callable[[Chat, bool], str],
        encode_text: Callable[[str], tuple[list[int], list[tuple[int, int]]]],
        control_tokens: Mapping[str, int],
        source: str,
    ) -> None:
        self._render = render
        self._encode_text = encode_text
        self._control = dict(control_tokens)
        self._source = source
        names = sorted(self._control, key=len, reverse=True)
        self._control_re = re.compile("|".join(re.escape(n) for n in names)) if names else None

    def encode(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False
    ) -> tuple[list[int], list[int]]:
        """Token ids and the assistant loss mask of ``messages``."""
        chat = check_messages(messages)
        rendered = self._locate(chat, add_generation_prompt)
        pieces = self._pieces(rendered)
        learn = self._assistant_ranges(chat, rendered, pieces)
        ids: list[int] = []
        mask: list[int] = []
        for start, end, token_id in pieces:
            if token_id is not None:
                ids.append(token_id)
                mask.append(int(_overlaps(start, end, learn)))
                continue
            text_ids, offsets = self._encode_text(rendered.text[start:end])
            ids.extend(text_ids)
            mask.extend(int(_overlaps(start + a, start + b, learn)) for a, b in offsets)
        return ids, mask

    def _locate(self, chat: Chat, add_generation_prompt: bool) -> _Rendered:
        placeholders = [{**m, "content": _SENTINEL.format(i)} for i, m in enumerate(chat)]
        skeleton = self._render(placeholders, add_generation_prompt)
        real = self._render(chat, add_generation_prompt)
        for transform in (lambda s: s, str.strip):
            rendered = _fill(skeleton, [transform(m["content"]) for m in chat])
            if rendered.text == real:
                return rendered
        raise TheseusError(
            f"the chat template of {self._source} changes message text beyond trimming it, so "
            "theseus cannot tell message text from template text; use a template that inserts "
            "message content as is"
        )

    def _pieces(self, rendered: _Rendered) -> list[tuple[int, int, int | None]]:
        """Split the text into control tokens of the template and plain-text runs."""
        controls: list[tuple[int, int, int | None]] = []
        if self._control_re is not None:
            template_parts = _complement(rendered.contents, len(rendered.text))
            for lo, hi in template_parts:
                for found in self._control_re.finditer(rendered.text, lo, hi):
                    controls.append((found.start(), found.end(), self._control[found.group()]))
        pieces: list[tuple[int, int, int | None]] = []
        cursor = 0
        for start, end, token_id in controls:
            if start > cursor:
                pieces.append((cursor, start, None))
            pieces.append((start, end, token_id))
            cursor = end
        if cursor < len(rendered.text):
            pieces.append((cursor, len(rendered.text), None))
        return pieces

    @staticmethod
    def _assistant_ranges(
        chat: Chat, rendered: _Rendered, pieces: list[tuple[int, int, int | None]]
    ) -> list[tuple[int, int]]:
        """Character ranges to learn: assistant content up to the control token ending the turn."""
        ranges: list[tuple[int, int]] = []
        starts = sorted(span.start for span in rendered.contents)
        for span in rendered.contents:
            if chat[span.message]["role"] != ASSISTANT:
                continue
            end = span.end
            following = [s for s in starts if s > span.start]
            limit = following[0] if following else len(rendered.text) + 1
            for start, stop, token_id in pieces:
                if token_id is not None and start >= span.end and stop <= limit:
                    end = stop
                    break
            ranges.append((span.start, end))
        return ranges


def _fill(skeleton: str, contents: list[str]) -> _Rendered:
    parts: list[str] = []
    spans: list[_Span] = []
    cursor = 0
    length = 0
    for found in _SENTINEL_RE.finditer(skeleton):
        index = int(found.group(1))
        if index >= len(contents):
            continue
        before = skeleton[cursor : found.start()]
        parts.append(before)
        length += len(before)
        parts.append(contents[index])
        spans.append(_Span(length, length + len(contents[index]), index))
        length += len(contents[index])
        cursor = found.end()
    parts.append(skeleton[cursor:])
    return _Rendered("".join(parts), spans)


def _complement(spans: list[_Span], length: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    cursor = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start > cursor:
            out.append((cursor, span.start))
        cursor = max(cursor, span.end)
    if cursor < length:
        out.append((cursor, length))
    return out


def _overlaps(start: int, end: int, ranges: list[tuple[int, int]]) -> bool:
    if start == end:  # a zero-width token (rare): count it where it sits
        return any(lo <= start < hi for lo, hi in ranges)
    return any(start < hi and end > lo for lo, hi in ranges)
