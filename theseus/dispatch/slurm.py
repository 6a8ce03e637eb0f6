"""SLURM clusters: an sbatch script whose ``srun`` starts one ``theseus run`` per task.

The script asks for the nodes, tasks per node, GRES (from the cluster's chip → GRES
mapping), time limit, partition, account and qos, writes everything to the job
directory's ``job.out``, and is ``--requeue``-able with ``--signal=USR1@<signal_before>``:
before the time limit every task gets SIGUSR1, saves a checkpoint and exits 75, and the
script then requeues the job; the requeued job runs the same command, which resumes
from the checkpoint. A preemption by the scheduler (SIGTERM) ends the same way.
The tasks join through ``jax.distributed``, which reads SLURM's variables.

sbatch runs on the cluster's login host over ssh (or here when ``login`` is null) with
the job's environment exported in the streamed submission script, so secrets reach the
job through SLURM's environment propagation and never through a file.
"""

from __future__ import annotations

import re
from typing import Any

from theseus.dispatch.config import ClusterConfig
from theseus.dispatch.plan import Plan
from theseus.dispatch.records import Submission
from theseus.dispatch.runfiles import JobReport, RemoteStatus, report_script
from theseus.dispatch.shell import Raw, command, fail, join_path, script, word
from theseus.dispatch.ssh import Remote
from theseus.errors import TheseusError

DIRECTIVE_VALUE = re.compile(r"^[A-Za-z0-9_.,:=@+%/-]+$")
QUEUED = {
    "PENDING",
    "CONFIGURING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESV_DEL_HOLD",
    "SUSPENDED",
    "RESIZING",
}
# pending reasons that mean the request exceeds what the partition, account or QOS allows
NEVER_STARTS = (
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "BadConstraints",
    "InvalidAccount",
    "InvalidQOS",
    "QOSMaxGRESPerJob",
    "QOSMaxCpuPerJobLimit",
    "QOSMaxNodePerJobLimit",
    "QOSMaxWallDurationPerJobLimit",
)
RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "STOPPED"}


def cluster_remote(name: str, cluster: ClusterConfig) -> Remote:
    """The login host (or this machine)."""
    return Remote(cluster.login, list(cluster.ssh_options), f"cluster {name}")


def _record_remote(record: Submission) -> Remote:
    s = record.slurm
    return Remote(s.get("login"), list(s.get("ssh_options", [])), f"cluster {record.target}")


def _checked(label: str, value: str) -> str:
    if not DIRECTIVE_VALUE.match(value):
        raise TheseusError(f"{label} {value!r} holds characters an sbatch option cannot take")
    return value


def gres(plan: Plan) -> str | None:
    """``--gres`` for one node, from the cluster's chip mapping (``None`` for a CPU run)."""
    assert plan.cluster is not None
    if plan.request.cpu:
        return None
    chip = plan.request.chip
    assert chip is not None
    if chip not in plan.cluster.gres:
        known = ", ".join(sorted(plan.cluster.gres)) or "none"
        raise TheseusError(f"cluster {plan.target} has no GRES mapping for chip {chip} (gres: {known})")
    return f"{_checked('gres', plan.cluster.gres[chip])}:{plan.request.n_chips // plan.nodes}"


def directives(plan: Plan) -> list[str]:
    """The ``#SBATCH`` options."""
    cluster = plan.cluster
    assert cluster is not None
    opts = [
        f"--job-name=theseus-{plan.name}",
        f"--nodes={plan.nodes}",
        f"--ntasks-per-node={plan.tasks_per_node}",
    ]
    g = gres(plan)
    if g:
        opts.append(f"--gres={g}")
    if plan.time:
        opts.append(f"--time={_checked('--time', plan.time)}")
    if plan.partition:
        opts.append(f"--partition={_checked('--partition', plan.partition)}")
    if cluster.account:
        opts.append(f"--account={_checked('account', cluster.account)}")
    if cluster.qos:
        opts.append(f"--qos={_checked('qos', cluster.qos)}")
    opts += ["--requeue", f"--signal=USR1@{int(cluster.signal_before)}", "--open-mode=append"]
    for extra in cluster.sbatch:
        if not extra.startswith("-") or any(c in extra for c in "\n\r"):
            raise TheseusError(
                f"sbatch option {extra!r} of cluster {plan.target} must be one option like --mem=64G"
            )
        opts.append(extra)
    return opts


def batch_script(plan: Plan) -> str:
    """The sbatch script."""
    cluster = plan.cluster
    assert cluster is not None
    job = plan.job_dir(cluster)
    cancelled = word(join_path(job, "cancelled"))
    fresh = '${fresh[@]+"${fresh[@]}"}'
    lines = [
        "#!/bin/bash",
        *(f"#SBATCH {opt}" for opt in directives(plan)),
        f"# theseus submission {plan.sid}: run {plan.name} (job {plan.job_key})",
        plan.preamble(cluster).rstrip("\n"),
        'attempt="${SLURM_RESTART_COUNT:-0}"',
        'echo "theseus: job $SLURM_JOB_ID, attempt $attempt, on $SLURM_JOB_NODELIST"',
        "fresh=()",
    ]
    if plan.fresh:
        lines.append('if [ "$attempt" = 0 ]; then fresh=(--fresh); fi  # a requeued attempt resumes')
    lines += [
        "srun --kill-on-bad-exit=0 " + plan.run_command(cluster, job, fresh),
        "rc=$?",
        plan.record_exit(job).rstrip("\n"),
        f'if [ "$rc" = 75 ] && [ ! -f {cancelled} ]; then',
        '  echo "theseus: the run saved a checkpoint and stopped (exit 75): requeueing job $SLURM_JOB_ID"',
        '  scontrol requeue "$SLURM_JOB_ID"',
        "fi",
        'exit "$rc"',
    ]
    return "\n".join(lines) + "\n"


def submit_script(plan: Plan, *, reveal: bool) -> str:
    """The script streamed to the login host: job files, the environment, sbatch."""
    cluster = plan.cluster
    assert cluster is not None
    job = plan.job_dir(cluster)
    sbatch = command(
        "sbatch",
        "--parsable",
        "--export=ALL",
        Raw(f"--chdir={word(job)}"),
        Raw(f"--output={word(join_path(job, 'job.out'))}"),
        word(join_path(job, "job.sh")),
    )
    err = word(join_path(job, "sbatch.err"))
    never = "|".join(NEVER_STARTS)
    return script(
        plan.job_files(job, {"job.sh": batch_script(plan)}),
        plan.exports(reveal=reveal),
        f"if ! id=$({sbatch} 2> {err}); then\n"
        f"  sed 's/^/theseus-log: /' {err} >&2\n"
        f"  rm -rf {word(job)}\n"
        f"  {fail('sbatch refused the job')}\n"
        "fi\n"
        "id=${id%%;*}\n"
        "# a request the partition can never satisfy is accepted and pends forever: refuse it now\n"
        'reason=$(squeue -h -j "$id" -o %r 2>/dev/null || true)\n'
        'case "$reason" in\n'
        f"  {never})\n"
        '    scancel "$id"\n'
        f"    rm -rf {word(job)}\n"
        '    echo "theseus-log: SLURM would never start it: pending with reason $reason" >&2\n'
        f"    {fail('sbatch accepted the job but SLURM can never start it')}\n"
        "    ;;\n"
        "esac\n"
        'echo "theseus-jobid: $id"\n',
    )


class SlurmBackend:
    """Runs on SLURM clusters."""

    name = "slurm"

    def remotes(self, plan: Plan) -> list[tuple[Remote, ClusterConfig]]:
        """The login host, to prepare (the work directory is shared with the nodes)."""
        assert plan.cluster is not None
        return [(cluster_remote(plan.target, plan.cluster), plan.cluster)]

    def scripts(self, plan: Plan) -> list[tuple[str, str]]:
        """What ``--dry-run`` shows: the submission script and the sbatch script."""
        assert plan.cluster is not None
        return [
            (
                f"submission script, cluster {plan.target} (streamed to bash on the login host)",
                submit_script(plan, reveal=False),
            ),
            (join_path(plan.job_dir(plan.cluster), "job.sh"), batch_script(plan)),
        ]

    def launch(self, plan: Plan) -> dict[str, Any]:
        """sbatch the job; returns the record's ``slurm``."""
        assert plan.cluster is not None
        remote = cluster_remote(plan.target, plan.cluster)
        # sbatch waits up to ~10 s for an unreachable controller, then fails with its reason
        result = remote.run(submit_script(plan, reveal=True), timeout=120)
        job_id = result.markers().get("jobid", "")
        if not job_id.isdigit():
            raise TheseusError(f"{remote.where}: sbatch printed no job id")
        return {
            "slurm": {
                "login": plan.cluster.login,
                "ssh_options": list(plan.cluster.ssh_options),
                "job_dir": plan.job_dir(plan.cluster),
                "job_id": job_id,
            }
        }

    def look(self, record: Submission) -> RemoteStatus:
        """The job's state from squeue (or the job directory once SLURM forgot it)."""
        job_id = record.slurm["job_id"]
        # the queue first: a job seen finished has written its exit code before the files are read
        body = (
            f"if q=$(squeue -h -t all -j {int(job_id)} -o '%T|%r' 2>/dev/null) && [ -n \"$q\" ]; then\n"
            '  echo "theseus-queue: $q"\n'
            f'elif a=$(sacct -n -X -P -j {int(job_id)} -o State 2>/dev/null) && [ -n "$a" ]; then\n'
            '  echo "theseus-queue: $(printf %s "$a" | head -n 1)|"\n'
            "fi\n"
        )
        body += report_script(record.slurm["job_dir"], record.run_dir)
        result = _record_remote(record).run(script(body), timeout=60)
        report = JobReport.parse(result)
        queue = result.markers().get("queue", "")
        state_name, _, reason = queue.partition("|")
        state_name = state_name.split()[0] if state_name else ""
        status = report.as_status(
            "unknown",
            f"job {job_id}: {state_name or 'no longer in the queue'}"
            + (f" ({reason})" if reason and reason != "None" else ""),
        )
        if state_name in QUEUED:
            status.state, status.detail = "queued", reason if reason and reason != "None" else ""
            if report.exit_code == 75:
                status.detail = "requeued after saving a checkpoint"
        elif state_name in RUNNING:
            status.state = "running"
            status.detail = "cancelling" if report.cancelled else ""
        elif state_name == "CANCELLED" or report.cancelled:
            status.state, status.detail = "cancelled", "cancelled"
        elif state_name == "COMPLETED" and report.exit_code is None:
            status.state = "completed"  # SLURM's word, while a shared filesystem catches up
        elif state_name == "COMPLETED" or not state_name:
            status.state, status.detail = report.ended_state()
            if not state_name and report.exit_code is None:
                status.state, status.detail = (
                    "unknown",
                    "SLURM no longer knows the job and it recorded no exit code",
                )
        elif state_name == "TIMEOUT":
            status.state, status.detail = (
                "failed",
                "reached its time limit without saving (no SIGUSR1 handled)",
            )
        elif state_name == "PREEMPTED":
            status.state, status.detail = "preempted", "preempted by the scheduler"
        else:
            status.state = "failed"
            status.detail = f"SLURM state {state_name}" + (
                f": {report.failure_line()}" if report.tail else ""
            )
        return status

    def cancel(self, record: Submission, wait_s: float) -> None:
        """scancel the job and wait up to ``wait_s`` for it to leave the running states."""
        job_id = int(record.slurm["job_id"])
        ticks = max(1, int(wait_s * 2))
        body = (
            f": > {word(join_path(record.slurm['job_dir'], 'cancelled'))}\n"
            f"scancel {job_id}\n"
            f"for _ in $(seq {ticks}); do\n"
            f"  s=$(squeue -h -t all -j {job_id} -o %T 2>/dev/null) || break\n"
            '  case "$s" in ""|CANCELLED|COMPLETED|FAILED|TIMEOUT|PREEMPTED|NODE_FAIL|OUT_OF_MEMORY) break;; esac\n'
            "  sleep 0.5\n"
            "done\n"
        )
        _record_remote(record).run(script(body), timeout=wait_s + 60)

    def log_source(self, record: Submission) -> tuple[Remote, str]:
        """Where the job output lives (the shared job directory, read on the login host)."""
        return _record_remote(record), record.slurm["job_dir"]

    def run_source(self, record: Submission) -> Remote:
        """The machine to read the run directory from (the login host)."""
        return _record_remote(record)
