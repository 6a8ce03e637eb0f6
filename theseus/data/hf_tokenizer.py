"""The ``huggingface`` backend: a ``tokenizer.json`` (``tokenizers`` library), chat via its template.

``tokenizer.path`` names a ``tokenizer.json`` or a directory holding one; the directory's
``tokenizer_config.json`` (``eos_token``, ``chat_template``) and ``chat_template.jinja``
are read when present. ``tokenizer.name`` names a hub repository, fetched only when asked
(and served from the local hub cache when offline). Chat templates are rendered with
``jinja2`` in the environment ``transformers`` gives them (:mod:`theseus.data.chat_template`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer as RustTokenizer

from theseus.data.chat import TemplateChatEncoder
from theseus.data.chat_template import ChatTemplate
from theseus.data.vocab import vocab_sha256
from theseus.errors import TheseusError

TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
]
EOT_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>")
SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class HuggingFaceTokenizer:
    """A ``tokenizers`` tokenizer plus the settings from its ``tokenizer_config.json``."""

    def __init__(
        self,
        file: Path,
        *,
        settings: Mapping[str, Any] | None = None,
        chat_template: str | None = None,
        name: str | None = None,
    ) -> None:
        try:
            self._tok = RustTokenizer.from_file(str(file))
        except Exception as exc:
            raise TheseusError(f"{file} is not a Hugging Face tokenizer.json: {exc}") from None
        self._tok.no_truncation()
        self._tok.no_padding()
        self._tok.encode_special_tokens = True  # special-token text in input stays text
        self.file = file.resolve()
        self.settings = dict(settings or {})
        self.chat_template = chat_template
        self.name = name or file.parent.name
        self._eot = self._find_eot()
        self._chat: TemplateChatEncoder | None = None

    @classmethod
    def load(cls, *, name: str | None, path: str | None) -> HuggingFaceTokenizer:
        """From a local file or directory (``path``) or a hub repository (``name``)."""
        if path:
            where = Path(path)
            if where.is_dir():
                where = where / "tokenizer.json"
            if not where.is_file():
                raise TheseusError(f"tokenizer.path {path}: no tokenizer.json there")
            return cls.from_file(where, name=name)
        if not name:
            raise TheseusError(
                "tokenizer.backend=huggingface needs tokenizer.path (a tokenizer.json or directory) "
                "or tokenizer.name (a hub id)"
            )
        return cls.from_file(_fetch(name) / "tokenizer.json", name=name)

    @classmethod
    def from_file(cls, file: Path, name: str | None = None) -> HuggingFaceTokenizer:
        """A ``tokenizer.json`` with the settings and chat template found beside it."""
        folder = file.parent
        settings: dict[str, Any] = {}
        config_file = folder / "tokenizer_config.json"
        if config_file.is_file():
            try:
                settings = json.loads(config_file.read_text())
            except ValueError as exc:
                raise TheseusError(f"{config_file} is not valid JSON: {exc}") from None
        template_file = folder / "chat_template.jinja"
        template = template_file.read_text() if template_file.is_file() else _template_from(settings)
        return cls(file, settings=settings, chat_template=template, name=name)

    def _find_eot(self) -> int:
        eos = self.settings.get("eos_token")
        if isinstance(eos, Mapping):
            eos = eos.get("content")
        for candidate in ([eos] if isinstance(eos, str) else []) + list(EOT_CANDIDATES):
            token_id = self._tok.token_to_id(candidate)
            if token_id is not None:
                return int(token_id)
        raise TheseusError(
            f"tokenizer {self.file} has no end-of-text token; set eos_token in its tokenizer_config.json"
        )

    @property
    def eot_id(self) -> int:
        """The end-of-text id (``eos_token`` of the config, else a usual name)."""
        return self._eot

    @property
    def vocab_size(self) -> int:
        """All ids, added tokens included."""
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` without the post-processor's extra tokens; specials stay text."""
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """The library's parallel batch encoding."""
        encodings = self._tok.encode_batch_fast(list(texts), add_special_tokens=False)
        return [list(e.ids) for e in encodings]

    def encode_arrays(self, texts: Sequence[str]) -> list[np.ndarray]:
        """:meth:`encode_batch` as uint32 arrays (the jobs' fast path)."""
        encodings = self._tok.encode_batch_fast(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.uint32) for e in encodings]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, special tokens included."""
        return str(self._tok.decode(list(ids), skip_special_tokens=False))

    def encode_chat(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False
    ) -> tuple[list[int], list[int]]:
        """Ids and assistant mask through the tokenizer's own chat template."""
        if self._chat is None:
            self._chat = self._chat_encoder()
        return self._chat.encode(messages, add_generation_prompt)

    def _chat_encoder(self) -> TemplateChatEncoder:
        if not self.chat_template:
            raise TheseusError(
                f"tokenizer {self.name} has no chat template; add chat_template to "
                f"{self.file.parent / 'tokenizer_config.json'} or a chat_template.jinja beside it"
            )
        specials = {key: _content(self.settings.get(key)) for key in SPECIAL_KEYS}
        template = ChatTemplate(self.chat_template, self.name, specials)

        def encode_text(text: str) -> tuple[list[int], list[tuple[int, int]]]:
            encoding = self._tok.encode(text, add_special_tokens=False)
            return list(encoding.ids), list(encoding.offsets)

        control = {
            token.content: token_id
            for token_id, token in self._tok.get_added_tokens_decoder().items()
            if token.special
        }
        return TemplateChatEncoder(template.render, encode_text, control, self.name)

    def identity(self) -> dict[str, Any]:
        """Backend, name, path, vocabulary size, eot id, vocabulary hash and file hash."""
        vocab = self._tok.get_vocab(with_added_tokens=True)
        return {
            "backend": "huggingface",
            "name": self.name,
            "path": str(self.file),
            "vocab_size": self.vocab_size,
            "eot_id": self.eot_id,
            "vocab_sha256": vocab_sha256((i, token.encode()) for token, i in vocab.items()),
            "file_sha256": hashlib.sha256(self.file.read_bytes()).hexdigest(),
        }


def _content(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _template_from(settings: Mapping[str, Any]) -> str | None:
    template = settings.get("chat_template")
    if isinstance(template, list):  # named templates: use the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, Mapping)}
        template = named.get("default")
    return template if isinstance(template, str) else None


def _fetch(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=TOKENIZER_FILES))
    except Exception as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        how = "it is not in the local hub cache" if offline else f"{type(exc).__name__}"
        raise TheseusError(
            f"tokenizer {repo_id!r} is not available ({how}); supply a local copy with "
            "tokenizer.path=/path/to/tokenizer_dir (a folder with tokenizer.json)"
        ) from None
