"""Plain SSH hosts: the run starts as a detached process group on each host.

On each host the job directory gets ``launch.sh`` (0700), which runs ``theseus run``
and records its exit code; it is started with ``setsid`` (its own session and process
group, all three streams redirected) so ssh returns at once, and its pid (= the group
id) is recorded. With several hosts, one process starts on each and the first host is
the ``jax.distributed`` coordinator (``THESEUS_COORDINATOR_ADDRESS`` and friends).
``--time`` becomes a SIGUSR1 at the limit: the run saves a checkpoint and exits 75.

Cancelling writes ``cancelled`` into the job directory and sends SIGTERM to the process
group (the run saves and stops); a group still alive after the wait gets SIGKILL.
"""

from __future__ import annotations

import subprocess
from typing import Any

from theseus.dispatch.config import HostConfig
from theseus.dispatch.environment import python_in
from theseus.dispatch.plan import Plan
from theseus.dispatch.records import Submission
from theseus.dispatch.runfiles import JobReport, RemoteStatus, report_script
from theseus.dispatch.shell import command, fail, join_path, script, word
from theseus.dispatch.ssh import Remote, RemoteError

KILL_GRACE_S = 60
PORT_PLACEHOLDER = "<free port, chosen at submit>"


def host_remote(name: str, host: HostConfig) -> Remote:
    """The ssh connection to a configured host."""
    return Remote(host.ssh, list(host.ssh_options), f"host {name}")


def _process_remote(proc: dict[str, Any]) -> Remote:
    return Remote(proc["ssh"], list(proc.get("ssh_options", [])), f"host {proc['host']}")


def coordinator_host(name: str, host: HostConfig) -> str:
    """The address the other hosts reach ``host`` at: ``address``, else its name as ssh resolves it."""
    if host.address:
        return host.address
    try:
        out = subprocess.run(
            ["ssh", "-G", *host.ssh_options, host.ssh],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key == "hostname" and value.strip():
            return value.strip()
    return host.ssh.rsplit("@", 1)[-1]


def launch_script(plan: Plan, index: int, coordinator: str | None) -> str:
    """``launch.sh`` for the process on host ``index``."""
    name, host = plan.hosts[index]
    job = plan.job_dir(host, index)
    lines = [
        "#!/bin/bash",
        f"# theseus submission {plan.sid}: run {plan.name} (job {plan.job_key}), process {index} of {len(plan.hosts)} on host {name}",
        plan.preamble(host).rstrip("\n"),
    ]
    if coordinator is not None:
        lines += [
            f"export THESEUS_COORDINATOR_ADDRESS={word(coordinator)}",
            f"export THESEUS_NUM_PROCESSES={len(plan.hosts)}",
            f"export THESEUS_PROCESS_ID={index}",
        ]
    visible = _visible_devices(plan, host)
    if visible and "CUDA_VISIBLE_DEVICES" not in plan.env:
        lines.append(f"export CUDA_VISIBLE_DEVICES={visible}")
    run = plan.run_command(host, job, "--fresh" if plan.fresh else None)
    if plan.time_s:
        run = (
            command(
                "timeout", "--foreground", "--signal=USR1", f"--kill-after={KILL_GRACE_S}", str(plan.time_s)
            )
            + " "
            + run
        )
    lines += [f"cd {word(job)}", run, "rc=$?", plan.record_exit(job).rstrip("\n"), 'exit "$rc"']
    return "\n".join(lines) + "\n"


def _visible_devices(plan: Plan, host: HostConfig) -> str:
    """``0,1,...`` for a GPU request smaller than the host (the host's other chips stay free)."""
    chip = plan.request.chip
    if plan.request.cpu or chip is None or chip.startswith("tpu"):
        return ""
    per_host = plan.request.n_chips // max(1, len(plan.hosts))
    if per_host >= host.chips.get(chip, 0):
        return ""
    return ",".join(str(i) for i in range(per_host))


def start_script(plan: Plan, index: int, coordinator: str | None, *, reveal: bool) -> str:
    """The script streamed to host ``index``: job files, the environment, the detached start."""
    _, host = plan.hosts[index]
    job = plan.job_dir(host, index)
    launch = join_path(job, "launch.sh")
    return script(
        plan.job_files(job, {"launch.sh": launch_script(plan, index, coordinator)}),
        plan.exports(reveal=reveal),
        f"setsid {word(launch)} < /dev/null >> {word(join_path(job, 'job.out'))} 2>&1 &\n"
        "pid=$!\n"
        f"printf '%s\\n' \"$pid\" > {word(join_path(job, 'pid'))}\n"
        'echo "theseus-pid: $pid"\n',
    )


def free_port(remote: Remote, plan: Plan, host: HostConfig) -> int:
    """A free TCP port on the coordinator host (asked of the run's own interpreter)."""
    py = word(python_in(host.work, plan.env_recipe(host)))
    code = "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])"
    result = remote.run(script(f"printf 'theseus-port: '\n{py} -c {word(code)}\n"), timeout=60)
    port = result.markers().get("port", "")
    if not port.isdigit():
        raise RemoteError(f"{remote.where}: could not find a free port for the coordinator")
    return int(port)


class PlainBackend:
    """Runs on plain SSH hosts."""

    name = "ssh"

    def remotes(self, plan: Plan) -> list[tuple[Remote, HostConfig]]:
        """Every machine to prepare (code and environment)."""
        return [(host_remote(n, h), h) for n, h in plan.hosts]

    def coordinator(self, plan: Plan, port: int | None) -> str | None:
        """``host:port`` of process 0 for a multi-host run, else ``None``."""
        if len(plan.hosts) < 2:
            return None
        name, host = plan.hosts[0]
        return f"{coordinator_host(name, host)}:{port if port is not None else PORT_PLACEHOLDER}"

    def scripts(self, plan: Plan) -> list[tuple[str, str]]:
        """What ``--dry-run`` shows: each host's start script and launch script."""
        coordinator = self.coordinator(plan, None)
        out = []
        for i, (name, host) in enumerate(plan.hosts):
            out.append(
                (
                    f"start script, host {name} (streamed to bash over ssh)",
                    start_script(plan, i, coordinator, reveal=False),
                )
            )
            out.append(
                (
                    f"{join_path(plan.job_dir(host, i), 'launch.sh')} on host {name}",
                    launch_script(plan, i, coordinator),
                )
            )
        return out

    def launch(self, plan: Plan) -> dict[str, Any]:
        """Start one process per host; returns the record's ``processes``."""
        remotes = self.remotes(plan)
        port = free_port(remotes[0][0], plan, remotes[0][1]) if len(remotes) > 1 else None
        coordinator = self.coordinator(plan, port)
        processes: list[dict[str, Any]] = []
        for i, ((name, host), (remote, _)) in enumerate(zip(plan.hosts, remotes, strict=True)):
            try:
                result = remote.run(start_script(plan, i, coordinator, reveal=True), timeout=120)
            except RemoteError:
                for started in processes:
                    _signal(started, kill=True)
                raise
            pid = result.markers().get("pid", "")
            if not pid.isdigit():
                raise RemoteError(f"{remote.where}: the run did not start (no pid reported)")
            processes.append(
                {
                    "host": name,
                    "ssh": host.ssh,
                    "ssh_options": list(host.ssh_options),
                    "job_dir": plan.job_dir(host, i),
                    "pid": int(pid),
                }
            )
        return {"processes": processes}

    def look(self, record: Submission) -> RemoteStatus:
        """The run's state from every host's job directory and process group."""
        reports: list[tuple[dict[str, Any], JobReport, bool]] = []
        for i, proc in enumerate(record.processes):
            pid = int(proc["pid"])
            # liveness first: a process seen gone has written its exit code before the files are read
            body = f'if kill -0 -- -{pid} 2>/dev/null; then echo "theseus-alive: yes"; fi\n'
            body += report_script(proc["job_dir"], record.run_dir if i == 0 else None)
            result = _process_remote(proc).run(script(body), timeout=60)
            reports.append((proc, JobReport.parse(result), result.markers().get("alive") == "yes"))
        first = reports[0][1]
        alive = [p["host"] for p, _, up in reports if up]
        status = first.as_status(
            "running",
            ", ".join(f"{p['host']}: pid {p['pid']} {'alive' if up else 'ended'}" for p, _, up in reports),
        )
        if alive:
            status.detail = "cancelling" if first.cancelled else ""
            return status
        for proc, report, _ in reports:
            state, detail = report.ended_state()
            if state != "completed":
                status.state, status.tail = state, report.tail
                status.detail = f"host {proc['host']}: {detail}" if len(reports) > 1 else detail
                return status
        status.state = "completed"
        return status

    def cancel(self, record: Submission, wait_s: float) -> None:
        """Ask every process group to stop (SIGTERM), waiting ``wait_s`` before SIGKILL."""
        for proc in record.processes:
            _signal(proc, kill=False, wait_s=wait_s)

    def log_source(self, record: Submission) -> tuple[Remote, str]:
        """Where the job output lives (the first host's)."""
        proc = record.processes[0]
        return _process_remote(proc), proc["job_dir"]

    def run_source(self, record: Submission) -> Remote:
        """The machine holding the run directory (the first host)."""
        return _process_remote(record.processes[0])


def _signal(proc: dict[str, Any], *, kill: bool, wait_s: float = 0) -> None:
    pid = int(proc["pid"])
    job = proc["job_dir"]
    ticks = max(1, int(wait_s * 2))
    body = (
        f": > {word(join_path(job, 'cancelled'))}\n"
        f"kill -{'KILL' if kill else 'TERM'} -- -{pid} 2>/dev/null || true\n"
        f"for _ in $(seq {ticks}); do kill -0 -- -{pid} 2>/dev/null || break; sleep 0.5; done\n"
        f"if kill -0 -- -{pid} 2>/dev/null; then kill -KILL -- -{pid} 2>/dev/null || true; fi\n"
    )
    if not job:
        body = fail("no job directory recorded")
    _process_remote(proc).run(script(body), timeout=wait_s + 60)
