"""Reading a remote run: its state, its log, and bringing its files back.

Each remote job has a job directory (``<work>/jobs/<project>/<group>/<name>/<id>/``)
holding the run config, the scripts, ``job.out`` (everything the processes printed),
``pid`` (plain hosts), ``exit`` (the exit code, written when the run ends) and
``cancelled`` (written by ``theseus cancel``). The run itself writes its ordinary run
directory under the remote output root. One ssh round trip reports all of it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from theseus.checkpoint import LATEST
from theseus.dispatch.shell import join_path, word
from theseus.dispatch.ssh import Remote, RemoteError, Result
from theseus.errors import TheseusError
from theseus.fsio import atomic_write_json
from theseus.rundir import CHECKPOINTS, METRICS_FILE, STATUS_FILE

TAIL_LINES = 20
PULL_MARKER = ".pulled.json"


@dataclass
class RemoteStatus:
    """What one look at a remote run found."""

    state: str
    detail: str = ""
    run_status: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    checkpoint: int | None = None
    tail: list[str] = field(default_factory=list)
    scheduler: str = ""

    @property
    def step(self) -> int | None:
        """The run's last reported step."""
        step = self.run_status.get("step")
        return step if isinstance(step, int) else None


def report_script(job_dir: str, run_dir: str | None) -> str:
    """Bash lines printing the job's and the run's files as ``theseus-<what>: <base64>``."""
    lines = [
        'emit() { if [ -f "$2" ]; then printf \'theseus-%s: %s\\n\' "$1" "$(tail -c 65536 "$2" | base64 -w0)"; fi; }',
        f"emit exit {word(join_path(job_dir, 'exit'))}",
        f"emit cancelled {word(join_path(job_dir, 'cancelled'))}",
        f"if [ -f {word(join_path(job_dir, 'job.out'))} ]; then",
        f"  printf 'theseus-tail: %s\\n' \"$(tail -n {TAIL_LINES} {word(join_path(job_dir, 'job.out'))} | base64 -w0)\"",
        "fi",
    ]
    if run_dir is not None:
        metrics = word(join_path(run_dir, METRICS_FILE))
        lines += [
            f"emit status {word(join_path(run_dir, STATUS_FILE))}",
            f"emit checkpoint {word(join_path(run_dir, CHECKPOINTS, LATEST))}",
            f"if [ -f {metrics} ]; then printf 'theseus-metrics: %s\\n' \"$(tail -n 1 {metrics} | base64 -w0)\"; fi",
        ]
    return "\n".join(lines) + "\n"


def decode(markers: dict[str, str], key: str) -> str | None:
    """A base64 marker's text, or ``None``."""
    value = markers.get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(value).decode(errors="replace")
    except (binascii.Error, ValueError):
        return None


@dataclass
class JobReport:
    """The decoded report of one job directory (and its run directory)."""

    exit_code: int | None
    cancelled: bool
    tail: list[str]
    run_status: dict[str, Any]
    metrics: dict[str, Any] | None
    checkpoint: int | None

    @classmethod
    def parse(cls, result: Result) -> JobReport:
        """Decode a :func:`report_script` output."""
        m = result.markers()
        exit_text = (decode(m, "exit") or "").strip()
        status = _json(decode(m, "status"))
        metrics = _json(decode(m, "metrics"))
        checkpoint = (decode(m, "checkpoint") or "").strip()
        return cls(
            exit_code=int(exit_text) if exit_text.lstrip("-").isdigit() else None,
            cancelled="cancelled" in m,
            tail=(decode(m, "tail") or "").splitlines(),
            run_status=status if isinstance(status, dict) else {},
            metrics=metrics if isinstance(metrics, dict) else None,
            checkpoint=int(checkpoint) if checkpoint.isdigit() else None,
        )

    def as_status(self, state: str, scheduler: str) -> RemoteStatus:
        """A :class:`RemoteStatus` carrying this report's run files."""
        return RemoteStatus(
            state=state,
            run_status=self.run_status,
            metrics=self.metrics,
            checkpoint=self.checkpoint,
            tail=self.tail,
            scheduler=scheduler,
        )

    def failure_line(self) -> str:
        """The most telling line of the job's output tail (an ``error:`` line if there is one)."""
        lines = [line.strip() for line in self.tail if line.strip()]
        for line in reversed(lines):
            if line.startswith("error:") or "Error" in line.split(":")[0]:
                return line
        return lines[-1] if lines else "no output"

    def ended_state(self) -> tuple[str, str]:
        """``(state, detail)`` from the recorded exit code, for a job that is no longer alive."""
        if self.cancelled:
            return "cancelled", "cancelled with theseus cancel"
        if self.exit_code is None:
            return "lost", "the job ended without recording an exit code (killed, or its machine went down)"
        if self.exit_code == 0:
            return "completed", ""
        if self.exit_code == 75:
            return "preempted", "saved a checkpoint and stopped (exit 75); submit again to resume"
        return "failed", f"exit {self.exit_code}: {self.failure_line()}"


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def log_chunk(remote: Remote, job_dir: str, offset: int | None, lines: int) -> tuple[str, int]:
    """New output of a job: the last ``lines`` lines when ``offset`` is None, else bytes from ``offset``.

    Returns the text and the offset to continue from.
    """
    out = word(join_path(job_dir, "job.out"))
    if offset is None:
        script = (
            f'if [ -f {out} ]; then size=$(stat -c %s {out}); echo "theseus-size: $size"; '
            f'head -c "$size" {out} | tail -n {int(lines)}; fi\n'
        )
    else:
        script = (
            f'if [ -f {out} ]; then size=$(stat -c %s {out}); echo "theseus-size: $size"; '
            f'head -c "$size" {out} | tail -c +{int(offset) + 1}; fi\n'
        )
    result = remote.run(script, timeout=60)
    size_line, _, body = result.stdout.partition("\n")
    if not size_line.startswith("theseus-size:"):
        return "", offset or 0
    return body, int(size_line.split(":", 1)[1])


def pull_run(remote: Remote, run_dir: str, dest: Path, *, checkpoints: bool, origin: dict[str, Any]) -> Path:
    """Copy the remote run directory to ``dest`` (checkpoints only if asked), replacing an earlier pull."""
    if dest.exists() and not (dest / PULL_MARKER).is_file():
        raise TheseusError(f"{dest} exists and is not a pulled copy: pull into another output root")
    exclude = [] if checkpoints else [f"--exclude=./{CHECKPOINTS}"]
    quoted = " ".join(exclude)
    script = (
        f"if [ ! -d {word(run_dir)} ]; then echo 'theseus-error: the run directory does not exist yet' >&2; exit 3; fi\n"
        f"tar -C {word(run_dir)} -c {quoted} --exclude=./.pulled.json .\n"
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=f".{dest.name}.pull-", dir=dest.parent))
    proc = remote.stream(script)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if not (member.isfile() or member.isdir()):
                    continue
                target = (incoming / member.name).resolve()
                if incoming.resolve() not in target.parents and target != incoming.resolve():
                    raise TheseusError(
                        f"{remote.where}: refusing a file outside the run directory: {member.name}"
                    )
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                with open(target, "wb") as fh:
                    shutil.copyfileobj(source, fh)
                os.chmod(target, 0o644)
    except tarfile.ReadError:
        pass  # an empty stream: the remote failed; its error is on stderr
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        proc.kill()
        raise
    err = proc.stderr.read().decode(errors="replace")
    rc = proc.wait()
    if rc != 0:
        shutil.rmtree(incoming, ignore_errors=True)
        raise RemoteError(remote.explain(Result(rc, "", err)))
    atomic_write_json(incoming / PULL_MARKER, origin)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(incoming, 0o777 & ~mask)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(incoming, dest)
    return dest
