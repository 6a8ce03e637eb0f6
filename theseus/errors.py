"""Error types shared across theseus.

A :class:`TheseusError` is a mistake the user can fix (a bad key, a missing file, a
locked run). The CLI prints its message as one line on stderr and exits with code 2.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os


class TheseusError(Exception):
    """A user-fixable error: the CLI prints the message alone and exits 2."""


class ConfigError(TheseusError):
    """An invalid configuration: unknown key, wrong type, conflicting defaults, bad YAML."""


class RunLockedError(TheseusError):
    """Another live process holds the run directory's lock."""


class TrainingDiverged(TheseusError):
    """The loss, a gradient or a parameter became NaN or infinite; nothing after it was saved."""


class Preempted(Exception):
    """Raised inside a job after it saved its state in response to SIGTERM/SIGUSR1."""


class StorageError(TheseusError):
    """The disk refused a write or a read the user can fix: full, read-only, no permission."""


class CheckpointDamaged(TheseusError):
    """A checkpoint whose files do not match the checksums written when it was saved."""


#: OS errors a user causes and can fix (a full disk, a read-only mount, a path through a file)
USER_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "ENOTDIR", "EISDIR", "EEXIST", "ENAMETOOLONG")
    if hasattr(errno, name)
)


def is_user_os_error(exc: BaseException) -> bool:
    """True for an :class:`OSError` that says the storage refused (see :data:`USER_ERRNOS`)."""
    return isinstance(exc, OSError) and exc.errno in USER_ERRNOS


def describe_os_error(exc: OSError, path: object = None) -> str:
    """One line naming the path and the cause: ``cannot write /x/y: No space left on device (ENOSPC)``."""
    where = exc.filename if exc.filename is not None else path
    cause = exc.strerror or str(exc)
    code = errno.errorcode.get(exc.errno or 0)
    hint = _HINTS.get(code or "", "")
    return f"{where if where is not None else 'a file'}: {cause}" + (f" ({code})" if code else "") + hint


def storage_error_from_message(exc: BaseException, path: object) -> StorageError | None:
    """A :class:`StorageError` for a library error whose message carries an OS cause (orbax, tensorstore)."""
    text = str(exc)
    for code in ("ENOSPC", "EDQUOT", "EROFS", "EACCES"):
        number = getattr(errno, code, None)
        if number is None:
            continue
        if os.strerror(number) in text:
            return StorageError(f"{path}: {os.strerror(number)} ({code}){_HINTS.get(code, '')}")
    return None


_HINTS = {
    "ENOSPC": "; free some space and run the same command again",
    "EDQUOT": "; free some space and run the same command again",
    "EROFS": "; choose a writable directory",
    "EACCES": "; check the permissions or choose another directory",
    "ENOTDIR": "; a part of the path is a file, not a directory",
}
