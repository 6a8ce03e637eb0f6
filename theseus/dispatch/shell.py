"""Building remote shell scripts safely: validated names, quoted words, files sent as base64.

Every remote action of theseus is a bash script built here and streamed to ``bash -s``
on the remote over ssh's standard input, so nothing is parsed twice by a login shell.
Every value that comes from the user is either validated (names, environment keys,
paths) or quoted with :func:`shlex.quote`; file contents travel base64-encoded.
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Iterable, Mapping

from theseus.errors import TheseusError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_SHOWN = "<hidden>"


class Raw(str):
    """A shell fragment that is already safe (a quoted word or an expansion): inserted as is."""


def check_name(kind: str, value: str) -> str:
    """Refuse a name that could mean anything to a shell, before anything is sent anywhere."""
    if not NAME_RE.match(value):
        raise TheseusError(
            f"{kind} {value!r} may hold only letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, at most 128 characters)"
        )
    return value


def check_env_key(value: str, where: str = "") -> str:
    """Refuse an environment variable name that is not ``[A-Za-z_][A-Za-z0-9_]*``."""
    if not ENV_KEY_RE.match(value):
        suffix = f" in {where}" if where else ""
        raise TheseusError(f"environment variable name {value!r}{suffix} is not a valid name")
    return value


def check_remote_path(label: str, value: str) -> str:
    """A remote directory must be absolute or start with ``~/``, on one line."""
    if not (value.startswith("/") or value == "~" or value.startswith("~/")) or any(
        c in value for c in "\n\r\0"
    ):
        raise TheseusError(f"{label} must be an absolute path or start with ~/, got {value!r}")
    return value


def word(value: str) -> Raw:
    """One shell word for ``value``; a leading ``~/`` becomes the remote ``$HOME``."""
    if value == "~":
        return Raw('"$HOME"')
    if value.startswith("~/"):
        return Raw('"$HOME"/' + shlex.quote(value[2:]))
    return Raw(shlex.quote(value))


def command(*parts: str | Iterable[str]) -> str:
    """A command line: plain strings are quoted, :class:`Raw` fragments kept, iterables flattened."""
    words: list[str] = []
    for part in parts:
        items = [part] if isinstance(part, str) else list(part)
        for item in items:
            words.append(item if isinstance(item, Raw) else shlex.quote(item))
    return " ".join(words)


def join_path(base: str, *parts: str) -> str:
    """``base/part/...`` as a remote path string (``base`` may be ``/`` or ``~``)."""
    return "/".join([base.rstrip("/"), *parts])


def write_file(path: str, content: str | bytes, mode: str = "600") -> str:
    """Script lines that write ``content`` to the remote ``path`` atomically with ``mode``."""
    data = content.encode() if isinstance(content, str) else content
    encoded = base64.b64encode(data).decode()
    target = word(path)
    tmp = word(path + ".tmp")
    return f"printf '%s' {encoded} | base64 -d > {tmp}\nchmod {mode} {tmp}\nmv -f {tmp} {target}\n"


def exports(env: Mapping[str, str], secret: Iterable[str] = (), *, reveal: bool = True) -> str:
    """``export K=V`` lines; values of ``secret`` keys show as ``<hidden>`` unless ``reveal``."""
    hidden = set(secret)
    lines = []
    for k, v in env.items():
        check_env_key(k)
        shown = v if reveal or k not in hidden else SECRET_SHOWN
        lines.append(f"export {k}={shlex.quote(shown)}\n")
    return "".join(lines)


def script(*blocks: str) -> str:
    """A complete remote script: strict mode, private files, then ``blocks``."""
    return "set -eu\numask 077\n" + "".join(b if b.endswith("\n") else b + "\n" for b in blocks if b)


def fail(message: str, code: int = 3) -> str:
    """A shell command that reports ``message`` as the step's error line and exits ``code``."""
    return f"{{ echo {shlex.quote('theseus-error: ' + message)} >&2; exit {code}; }}"


def indent(block: str, prefix: str = "  ") -> str:
    """``block`` with every line indented (for readable scripts)."""
    return "".join(prefix + line if line.strip() else line for line in block.splitlines(keepends=True))
