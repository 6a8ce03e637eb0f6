"""`theseus submit` to a real one-node SLURM cluster (sbatch on the login host over ssh), through the CLI."""

import subprocess

import pytest
from clihelp import run_cli
from dispatchhelp import COUNTER, Sandbox, comparable, read_metrics, require_infra, user_error_line

pytestmark = pytest.mark.infra

@pytest.fixture(scope="module")
def box(tmp_path_factory):
    require_infra()
    sandbox = Sandbox(tmp_path_factory.mktemp("slurm"))
    yield sandbox
    sandbox.cleanup()


@pytest.fixture(scope="module")
def counter_yaml(box):
    cfg = box.tmp / "counter.yaml"
    run_cli("configure", "test/counter", str(cfg), "counter.sleep=0.1", "checkpoint.every_steps=5",
            "--load", COUNTER, check=True)
    return cfg


def _job_id(box, name):
    return box.record(name)["slurm"]["job_id"]


def test_two_tasks_join_through_jax_distributed_and_match_one_process(box):
    out, gpt = box.gpt_with_data()
    done = box.cli("submit", "gpt-2tasks", str(gpt), "--cluster", "slurm", "--nodes", "1", "--tasks-per-node", "2",
                   "--env", "XLA_FLAGS=--xla_force_host_platform_device_count=4", "--wait")
    assert done.returncode == 0, done.stderr
    run_cli("run", "ref", str(gpt), str(out), check=True)  # one process, 8 devices
    log = box.cli("logs", "gpt-2tasks", "-n", "200", check=True).stdout
    assert log.count("joining a SLURM-process run") == 2, log
    rows = box.status("gpt-2tasks")
    assert rows["state"] == "completed" and "COMPLETED" in rows["scheduler"]
    pulled = box.tmp / "pulled"
    box.cli("pull", "gpt-2tasks", str(pulled), check=True)
    two = comparable(read_metrics(pulled / "runs/default/default/gpt-2tasks"))
    one = comparable(read_metrics(out / "runs/default/default/ref"))
    assert [r["step"] for r in two] == [2, 4, 6, 8]
    for a, b in zip(two, one, strict=True):
        for key in ("loss", "grad_norm", "val_loss"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-5), (key, a, b)


def test_preemption_signal_checkpoints_exits_75_requeues_and_resumes_identically(box, counter_yaml):
    local = box.tmp / "local-counter"
    run_cli("run", "whole", str(counter_yaml), str(local), "counter.steps=40", "--load", COUNTER, check=True)
    box.cli("submit", "pre", str(counter_yaml), "counter.steps=40", "--cluster", "slurm", "--load", COUNTER,
            check=True)
    box.wait_until("pre", lambda r: r["state"] == "running" and r["step"].isdigit() and int(r["step"]) >= 6)
    job = _job_id(box, "pre")
    # what SLURM does before a time limit (--signal=USR1@...) or on a preemption notice
    subprocess.run(["scancel", "--signal=USR1", job], check=True)
    box.wait_until("pre", lambda r: r["state"] == "queued" and "requeued" in r["detail"])
    # a requeued job is held ~2 minutes by SLURM before it may start again: release it now
    subprocess.run(["scontrol", "update", f"jobid={job}", "starttime=now"], check=True)
    rows = box.wait_until("pre", lambda r: r["state"] in ("completed", "failed"))
    assert rows["state"] == "completed" and rows["attempt"] == "2", rows
    log = box.cli("logs", "pre", "-n", "200", check=True).stdout
    assert "SIGUSR1 received" in log and "(exit 75): requeueing job" in log and "resuming pre from checkpoint" in log
    pulled = box.tmp / "pulled"
    box.cli("pull", "pre", str(pulled), check=True)
    assert comparable(read_metrics(pulled / "runs/default/default/pre"), ("step", "loss")) == comparable(
        read_metrics(local / "runs/default/default/whole"), ("step", "loss")
    )


def test_cancel_ends_a_running_slurm_job(box, counter_yaml):
    box.cli("submit", "long", str(counter_yaml), "counter.steps=5000", "--cluster", "slurm", "--load", COUNTER,
            check=True)
    box.wait_until("long", lambda r: r["state"] == "running")
    assert "cancelled" in box.cli("cancel", "long", check=True).stdout
    rows = box.status("long")
    assert rows["state"] == "cancelled"
    state = subprocess.run(["squeue", "-h", "-t", "all", "-j", _job_id(box, "long"), "-o", "%T"],
                           capture_output=True, text=True).stdout.strip()
    assert state == "CANCELLED"


def test_a_partition_or_gres_slurm_refuses_ends_in_one_line(box, counter_yaml):
    line = user_error_line(box.cli("submit", "np", str(counter_yaml), "--cluster", "slurm", "--partition", "nosuch",
                                   "--load", COUNTER))
    assert "cluster slurm (ci-ssh)" in line and "Invalid partition name specified" in line, line
    line = user_error_line(box.cli("submit", "ng", str(counter_yaml), "--cluster", "slurm", "--chip", "h100", "-n", "3",
                                   "--load", COUNTER))
    assert "cluster slurm (ci-ssh)" in line, line
    assert "node configuration is not available" in line or "can never start it" in line, line
    queue = subprocess.run(["squeue", "-h", "-u", "ci_ssh", "-t", "PD", "-o", "%j"], capture_output=True, text=True)
    assert "theseus-ng" not in queue.stdout, "a job that can never start was left pending"
    for name in ("np", "ng"):
        assert not (box.home / f"submissions/default/default/{name}.json").exists()
