"""What a run must never do silently: train on NaN, resume on other data, lose its exit code or its lock record
(issue 8, items 2, 5 and 14)."""

import json
import shutil
import signal
import time

import numpy as np
import pytest
from clihelp import run_cli, start_cli
from relhelp import (
    ECHO,
    checkpoint_arrays,
    gpt_yaml,
    metrics,
    one_line_error,
    run_dir,
    status,
    tokenize,
)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tokenize(tmp_path_factory.mktemp("guards"))


@pytest.fixture(scope="module")
def echo(out):
    cfg = out.parent / "guards-echo.yaml"
    run_cli("configure", "test/echo", str(cfg), "--load", ECHO, check=True)
    return cfg


def test_a_nonfinite_loss_stops_the_run_and_is_never_checkpointed(out):
    cfg = gpt_yaml(out.parent / "nan.yaml", "training.steps=80", "optimization.lr=1000", "optimization.warmup_steps=70",
                   "optimization.grad_clip=0", "checkpoint.every_steps=5", "checkpoint.keep_last=2",
                   "training.log_every=5")
    line = one_line_error(run_cli("run", "nan", str(cfg), str(out)), "became NaN or infinite at step")
    bad = int(line.split("at step ")[1].split(";")[0])
    st = status(out, "nan")
    assert st["state"] == "failed" and "NaN or infinite" in st["error"]
    ckpts = run_dir(out, "nan") / "checkpoints"
    steps = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
    assert steps and max(steps) < bad, (steps, bad)
    assert f"the newest checkpoint, step {max(steps)}, is finite" in line
    assert int((ckpts / "latest").read_text()) == max(steps)
    for step in steps:
        arrays = checkpoint_arrays(ckpts / str(step))
        assert all(np.isfinite(a).all() for a in arrays.values()), step
    assert all(r["step"] <= bad + 5 for r in metrics(out, "nan"))


def test_resume_refuses_data_that_changed_since_the_run_started(out):
    cfg = gpt_yaml(out.parent / "data.yaml", "training.steps=400", "checkpoint.every_steps=2")
    proc = start_cli("run", "drift", str(cfg), str(out))
    ckpts = run_dir(out, "drift") / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (ckpts / "2" / "checksums.json").exists():
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert (ckpts / "2").is_dir() and not (ckpts / "400").exists()
    recorded = json.loads((run_dir(out, "drift") / "job.json").read_text())["data"]["shakespeare"]
    assert recorded["content_sha256"]

    shutil.rmtree(out / "data" / "shakespeare")  # as a user would, to tokenize it with another split
    tokenize(out, "data.val_fraction=0.5")
    proc = run_cli("run", "drift", str(cfg), str(out))
    line = one_line_error(proc, "data shakespeare under")
    assert "is not the data run drift started on" in line and "val_fraction 0.34 -> 0.5" in line
    assert status(out, "drift")["state"] == "failed"

    shutil.rmtree(out / "data" / "shakespeare")
    tokenize(out)  # the original split again: identical bytes, so the run may continue
    resumed = start_cli("run", "drift", str(cfg), str(out), "training.steps=400")
    try:
        deadline = time.time() + 240
        while time.time() < deadline and resumed.poll() is None and not any(
            r["step"] > 2 for r in metrics(out, "drift")
        ):
            time.sleep(0.05)
        assert any(r["step"] > 2 for r in metrics(out, "drift")), resumed.stderr.read() if resumed.poll() else ""
    finally:
        resumed.kill()
        resumed.wait()


def _wait_for_lock(out, name, pid):
    lock = run_dir(out, name).parent / f".{name}.lock"
    deadline = time.time() + 60
    while time.time() < deadline:
        if lock.is_file() and str(pid) in lock.read_text():
            return
        time.sleep(0.02)
    raise AssertionError("the holder never took the lock")


def test_lock_contenders_never_erase_the_holders_record(out, echo):
    holder = start_cli("run", "held", str(echo), str(out), "echo.sleep=60", "--load", ECHO)
    try:
        _wait_for_lock(out, "held", holder.pid)
        for _ in range(3):
            one_line_error(run_cli("run", "held", str(echo), str(out), "echo.sleep=60", "--load", ECHO),
                           f"run held is in use by pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()


def test_a_signal_after_the_run_completed_does_not_change_its_exit_code(out, echo):
    proc = start_cli("run", "late", str(echo), str(out), "echo.linger=3", "--load", ECHO)
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stderr.readline()
        if "run late completed" in line or not line:
            break
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGUSR1)
    proc.wait(timeout=60)
    assert proc.returncode == 0
    assert status(out, "late")["state"] == "completed"
