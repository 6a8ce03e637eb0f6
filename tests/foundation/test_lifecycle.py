"""Resume after SIGKILL, kill during a save, preemption by signal, --fresh, restore, stale locks."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from clihelp import run_cli, start_cli

COUNTER = str(Path(__file__).with_name("counter_job.py"))


def configure(tmp_path, *overrides):
    cfg = tmp_path / "c.yaml"
    run_cli("configure", "test/counter", str(cfg), *overrides, "--load", COUNTER, check=True)
    return cfg


def run_dir(out, name="r"):
    return Path(out) / "runs" / "default" / "default" / name


def final(out, name="r"):
    return json.loads((run_dir(out, name) / "results" / "final.json").read_text())


def metrics(out, name="r"):
    return [json.loads(line) for line in (run_dir(out, name) / "metrics.jsonl").read_text().splitlines()]


def wait_for_line(proc, prefix, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line
    raise AssertionError(
        f"never saw {prefix!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
    )


def test_sigkill_mid_run_resumes_to_the_identical_state(tmp_path):
    cfg = configure(tmp_path, "counter.steps=30", "checkpoint.every_steps=4", "counter.sleep=0.05")
    reference = tmp_path / "ref"
    run_cli("run", "r", str(cfg), str(reference), "counter.sleep=0.0", "--load", COUNTER, check=True)

    out = tmp_path / "out"
    proc = start_cli("run", "r", str(cfg), str(out), "--load", COUNTER)
    wait_for_line(proc, "STEP 14")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = json.loads((run_dir(out) / "status.json").read_text())
    assert status["state"] == "running"  # died without a word
    assert run_cli("ls", str(out)).stdout.count("stale") == 1

    again = run_cli("run", "r", str(cfg), str(out), "--load", COUNTER, check=True)
    first_resumed = int(again.stdout.split()[1])
    assert 5 <= first_resumed <= 15  # resumed from a checkpoint, not from scratch
    assert "resuming r from checkpoint step" in again.stderr
    assert np.array_equal(np.array(final(out)["w"]), np.array(final(reference)["w"]))
    assert metrics(out) == metrics(reference)  # replayed steps are not duplicated
    assert json.loads((run_dir(out) / "status.json").read_text())["attempt"] == 2


def test_sigkill_during_a_save_keeps_the_previous_checkpoint(tmp_path):
    big = 48 * 1024 * 1024  # 192 MB of float32: the write takes long enough to interrupt
    cfg = configure(
        tmp_path,
        "counter.steps=10",
        "checkpoint.every_steps=2",
        f"counter.big={big}",
        "checkpoint.keep_last=5",
    )
    out = tmp_path / "out"
    proc = start_cli("run", "r", str(cfg), str(out), "--load", COUNTER)
    ckpts = run_dir(out) / "checkpoints"
    wait_for_line(proc, "SAVING 4")
    deadline = time.time() + 60
    while time.time() < deadline:
        names = os.listdir(ckpts) if ckpts.is_dir() else []
        if any(n.startswith("4.") and "tmp" in n for n in names):
            break
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    names = sorted(os.listdir(ckpts))
    assert "4" not in names, names  # the interrupted save never looks complete
    assert (ckpts / "latest").read_text().strip() == "2"
    listed = run_cli("checkpoints", "r", str(out), check=True).stdout
    assert " 2 " in f" {listed} " and " 4 " not in listed

    run_cli("run", "r", str(cfg), str(out), "counter.big=0", "--load", COUNTER)  # refused: config changed
    again = run_cli("run", "r", str(cfg), str(out), "--load", COUNTER, check=True)
    assert again.stdout.split()[1] == "3"  # resumed right after the intact checkpoint 2


def test_sigterm_saves_and_marks_preempted_then_resumes(tmp_path):
    cfg = configure(tmp_path, "counter.steps=40", "counter.sleep=0.05")  # no interval checkpoints
    reference = tmp_path / "ref"
    run_cli("run", "r", str(cfg), str(reference), "counter.sleep=0.0", "--load", COUNTER, check=True)
    out = tmp_path / "out"
    proc = start_cli("run", "r", str(cfg), str(out), "--load", COUNTER)
    wait_for_line(proc, "STEP 5")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 75
    status = json.loads((run_dir(out) / "status.json").read_text())
    assert status["state"] == "preempted"
    saved = int((run_dir(out) / "checkpoints" / "latest").read_text())
    assert saved >= 5
    again = run_cli("run", "r", str(cfg), str(out), "--load", COUNTER, check=True)
    assert int(again.stdout.split()[1]) == saved + 1
    assert final(out) == final(reference)


def test_fresh_archives_instead_of_deleting(tmp_path):
    cfg = configure(tmp_path, "counter.steps=3")
    out = tmp_path / "out"
    run_cli("run", "r", str(cfg), str(out), "--load", COUNTER, check=True)
    proc = run_cli("run", "r", str(cfg), str(out), "--fresh", "counter.seed=1", "--load", COUNTER, check=True)
    assert "moved the previous run" in proc.stderr
    archived = list((run_dir(out).parent / ".archive").iterdir())
    assert len(archived) == 1 and (archived[0] / "results" / "final.json").is_file()
    assert "default/default/r " in run_cli("ls", str(out)).stdout + " "


def test_restore_rolls_back_and_sets_newer_checkpoints_aside(tmp_path):
    cfg = configure(tmp_path, "counter.steps=8", "checkpoint.every_steps=2", "checkpoint.keep_last=10")
    out = tmp_path / "out"
    run_cli("run", "r", str(cfg), str(out), "--load", COUNTER, check=True)
    before = final(out)
    proc = run_cli("restore", "r", "4", str(out), "--load", COUNTER, check=True)
    assert proc.stdout.split()[:2] == ["STEP", "5"]
    assert final(out) == before  # deterministic continuation
    aside = [p for p in (run_dir(out) / "checkpoints").iterdir() if p.name.startswith(".superseded")]
    assert len(aside) == 1 and sorted(os.listdir(aside[0])) == ["6", "8"]


def test_stale_lock_from_dead_process_is_taken_over(tmp_path):
    cfg = configure(tmp_path, "counter.steps=3")
    out = tmp_path / "out"
    lock = run_dir(out).parent / ".r.lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    lock.write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename}))
    holder.kill()
    holder.wait()
    proc = run_cli("run", "r", str(cfg), str(out), "--load", COUNTER, check=True)
    assert f"took over the lock of dead process {holder.pid}" in proc.stderr


def test_heartbeat_and_pid_recorded_while_running(tmp_path):
    cfg = configure(tmp_path, "counter.steps=200", "counter.sleep=0.05")
    out = tmp_path / "out"
    proc = start_cli("run", "r", str(cfg), str(out), "--load", COUNTER)
    try:
        wait_for_line(proc, "STEP 30")
        status = json.loads((run_dir(out) / "status.json").read_text())
        assert status["state"] == "running" and status["pid"] == proc.pid
        assert time.time() - status["heartbeat"] < 30
        assert status["step"] >= 1
        st = run_cli("status", "r", str(out), check=True).stdout
        assert "running" in st
    finally:
        proc.kill()
        proc.wait()
