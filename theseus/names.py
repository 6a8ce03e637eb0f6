"""The one rule for names that become directories under OUT: run names, projects, groups, datasets.

A name is a single path component: no ``/``, not ``.`` or ``..``, no leading ``.`` (those
are theseus's own files: locks, ``.archive``), no control characters or line breaks (they
would forge lines in logs and listings), and at most :data:`MAX_LENGTH` characters, so the
lock file beside a run still fits the file system's limit on one component.
"""

from __future__ import annotations

from theseus.errors import TheseusError

MAX_LENGTH = 128


def check_name(value: object, what: str = "run name") -> str:
    """Return ``value`` when it is a safe single directory name, else raise :class:`TheseusError`."""
    if not isinstance(value, str) or not value:
        raise TheseusError(f"{what} must be a non-empty string, got {value!r}")
    shown = repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if len(value) > MAX_LENGTH:
        raise TheseusError(f"{what} {shown} is {len(value)} characters long; the limit is {MAX_LENGTH}")
    if not value.isprintable():
        raise TheseusError(f"{what} {shown} holds a control character or line break; use plain characters")
    if "/" in value or "\\" in value or value.startswith("."):
        raise TheseusError(f"{what} {shown} must be a plain name (no '/' or '\\', not starting with '.')")
    if value != value.strip():
        raise TheseusError(f"{what} {shown} starts or ends with a space")
    return value
