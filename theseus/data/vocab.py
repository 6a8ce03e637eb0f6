"""The vocabulary hash every tokenizer backend reports in its ``identity()``.

A leaf module (it imports nothing from theseus), so the backends and the factory in
:mod:`theseus.data.tokenizer` can all use it without importing each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def vocab_sha256(tokens: Iterable[tuple[int, bytes]]) -> str:
    """A hash of a vocabulary given as ``(id, token bytes)`` pairs, independent of their order."""
    digest = hashlib.sha256()
    for token_id, token in sorted(tokens):
        digest.update(f"{token_id}\t{token.hex()}\n".encode())
    return digest.hexdigest()
