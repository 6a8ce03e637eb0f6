"""Process settings that make XLA faster on the host, applied before JAX starts.

One setting cannot be changed from inside a running process: glibc reads its allocator
tunables when the process starts. XLA:CPU allocates each step's temporary buffers (about
500 MB at the benchmark shape) with ``malloc`` from its worker threads; glibc serves
sizes like that with a fresh ``mmap`` and unmaps it again at ``free``, so every step
faults all its temporaries back in, 4 KiB at a time: about 145,000 page faults and a
fifth of the step's CPU time in the kernel. ``glibc.malloc.hugetlb=1`` makes glibc ask
for transparent huge pages on those regions, so a fault brings in 2 MiB instead.

:func:`tuned_environment` adds :data:`GLIBC_TUNABLES` to an environment, keeping every
tunable the user set. The ``theseus`` command applies it to itself before any command
that computes (:func:`reexec_tuned`: it re-executes the same command line once, same
process id). ``THESEUS_TUNING=0`` turns it off. It is a no-op without glibc, and without
transparent huge pages in ``madvise`` or ``always`` mode.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, Sequence

#: glibc tunables theseus sets unless the user set them (``name=value``, colon separated)
GLIBC_TUNABLES: dict[str, str] = {"glibc.malloc.hugetlb": "1"}
#: the commands that run XLA computations in this process
COMPUTING_COMMANDS = frozenset({"run", "restore", "generate"})
OPT_OUT = "THESEUS_TUNING"


def _has_glibc() -> bool:
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def merge_tunables(current: str, ours: Mapping[str, str]) -> str:
    """``current`` (a ``GLIBC_TUNABLES`` value) with each of ``ours`` the user has not set appended."""
    items = [item for item in current.split(":") if item]
    names = {item.split("=", 1)[0] for item in items}
    items += [f"{name}={value}" for name, value in ours.items() if name not in names]
    return ":".join(items)


def tuned_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` with theseus's allocator tunables added (nothing the user set changes)."""
    env = dict(environ)
    if env.get(OPT_OUT) == "0" or not _has_glibc():
        return env
    tunables = merge_tunables(env.get("GLIBC_TUNABLES", ""), GLIBC_TUNABLES)
    if tunables:
        env["GLIBC_TUNABLES"] = tunables
    return env


def command_of(argv: Sequence[str]) -> str | None:
    """The sub-command of a ``theseus`` command line (the first argument that is not an option)."""
    return next((arg for arg in argv[1:] if not arg.startswith("-")), None)


def reexec_tuned(argv: Sequence[str] | None = None) -> None:
    """Re-execute this process with :func:`tuned_environment` when a computing command lacks it.

    Returns (doing nothing) when the environment is already tuned, tuning is off, or the
    command does not compute. Otherwise it does not return: ``os.execve`` replaces the
    process image, keeping its id, so signals and ``status.json`` see one process.
    """
    argv = list(sys.argv if argv is None else argv)
    if command_of(argv) not in COMPUTING_COMMANDS:
        return
    env = tuned_environment(os.environ)
    if env == dict(os.environ):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
