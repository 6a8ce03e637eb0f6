"""Running scripts on a remote machine with the system's OpenSSH client.

Using ``ssh`` itself means the user's ``~/.ssh/config`` (aliases, ``ProxyJump``, keys,
the agent, known hosts) applies unchanged. Connections are multiplexed
(``ControlMaster``) through a private socket directory, so the several round trips of
one submission pay for one login. Options given in the dispatch config come first and
so win over these defaults (ssh keeps the first value it sees for an option).

A script is streamed to ``bash -s`` on the remote's standard input: it is never
written to a file and never parsed by the login shell. A :class:`Remote` with no
target runs the same scripts on this machine (a SLURM login node you are already on).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from theseus.errors import TheseusError

CONNECT_TIMEOUT_S = 15
PERSIST_S = 60


class RemoteError(TheseusError):
    """A remote step failed; the message is one line naming the machine and the cause."""


def _socket_dir() -> Path | None:
    """A private directory for multiplexing sockets, or ``None`` when it cannot be made safe."""
    path = Path(tempfile.gettempdir()) / f"theseus-ssh-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None  # someone else's or too open: do without multiplexing
    return path


@dataclass
class Result:
    """What a remote script printed."""

    returncode: int
    stdout: str
    stderr: str

    def markers(self, prefix: str = "theseus-") -> dict[str, str]:
        """``prefix``-lines of stdout (``theseus-key: value``) as a dict (the last value wins)."""
        out: dict[str, str] = {}
        for line in self.stdout.splitlines():
            if line.startswith(prefix) and ":" in line:
                k, _, v = line[len(prefix) :].partition(":")
                out[k.strip()] = v.strip()
        return out


@dataclass
class Remote:
    """One ssh target (``None``: this machine) plus extra ssh options, and a label for messages."""

    target: str | None
    options: list[str] = field(default_factory=list)
    label: str = ""

    @property
    def where(self) -> str:
        """``host gpu1 (me@gpu1)`` for messages."""
        return f"{self.label} ({self.target})" if self.target else f"{self.label} (this machine)"

    def ssh_argv(self) -> list[str]:
        """The ``ssh`` command up to and including the target."""
        assert self.target is not None
        argv = ["ssh", *self.options, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]
        sockets = _socket_dir()
        if sockets is not None:
            # one master per alias and option set: ssh's own %C would let two aliases of one
            # user@host (say, with different keys) share a login
            alias = hashlib.sha256("\0".join([self.target, *self.options]).encode()).hexdigest()[:10]
            argv += [
                "-o",
                "ControlMaster=auto",
                "-o",
                f"ControlPath={sockets}/{alias}-%C",
                "-o",
                f"ControlPersist={PERSIST_S}",
            ]
        return [*argv, "--", self.target]

    def _argv(self, remote_command: str) -> list[str]:
        if self.target is None:
            return ["bash", "-c", remote_command]
        return [*self.ssh_argv(), remote_command]

    def run(self, script: str, *, timeout: float | None = 300, check: bool = True) -> Result:
        """Run a bash ``script`` (streamed on stdin); raise :class:`RemoteError` on failure if ``check``."""
        return self._call(self._argv("bash -s"), script.encode(), timeout, check)

    def run_with_input(
        self, script: str, data: bytes, *, timeout: float | None = 600, check: bool = True
    ) -> Result:
        """Run a short ``script`` given as an argument, with ``data`` on its standard input."""
        return self._call(self._argv(f"bash -c {shlex.quote(script)}"), data, timeout, check)

    def stream(self, script: str) -> subprocess.Popen[bytes]:
        """Start ``script`` and hand back the process, its stdout a pipe (for large downloads)."""
        proc = subprocess.Popen(
            self._argv("bash -s"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdin is not None
        proc.stdin.write(script.encode())
        proc.stdin.close()
        return proc

    def _call(self, argv: list[str], data: bytes, timeout: float | None, check: bool) -> Result:
        try:
            proc = subprocess.run(argv, input=data, capture_output=True, timeout=timeout, check=False)
        except FileNotFoundError:
            raise RemoteError(f"{self.where}: the ssh client is not installed here") from None
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{self.where}: no answer within {timeout:.0f} s") from None
        result = Result(
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            raise RemoteError(self.explain(result))
        return result

    def explain(self, result: Result) -> str:
        """One line: where it failed and why (ssh's own message, or the script's last error)."""
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        ours = [line.split(":", 1)[1].strip() for line in lines if line.startswith("theseus-error:")]
        if ours:
            logged = [line.split(":", 1)[1].strip() for line in lines if line.startswith("theseus-log:")]
            logged = [line for line in logged if line]
            errors = [line for line in logged if "error" in line.lower()]
            detail = (errors or logged)[-1:]
            return f"{self.where}: {ours[-1]}" + (f": {detail[0]}" if detail else "")
        if result.returncode == 255 and self.target is not None:
            cause = next((line for line in reversed(lines) if not line.startswith("Warning:")), "")
            return f"{self.where}: ssh failed: {cause or 'connection closed'}"
        cause = lines[-1] if lines else f"exit code {result.returncode}"
        return f"{self.where}: {cause}"
