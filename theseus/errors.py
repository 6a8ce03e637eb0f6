"""Error types shared across theseus.

A :class:`TheseusError` is a mistake the user can fix (a bad key, a missing file, a
locked run). The CLI prints its message as one line on stderr and exits with code 2.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class TheseusError(Exception):
    """A user-fixable error: the CLI prints the message alone and exits 2."""


class ConfigError(TheseusError):
    """An invalid configuration: unknown key, wrong type, conflicting defaults, bad YAML."""


class RunLockedError(TheseusError):
    """Another live process holds the run directory's lock."""


class Preempted(Exception):
    """Raised inside a job after it saved its state in response to SIGTERM/SIGUSR1."""
