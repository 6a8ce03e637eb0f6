"""Ctrl-C through the real CLI: SIGINT sent to the whole process group, as a terminal does.

During start-up or compilation it ends the run at once with one line and exit code 130 (it
used to end in `Segmentation fault`); during training it saves at the next step boundary like
SIGTERM (exit 75); a second one stops at once without damaging anything.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from clihelp import REPO, run_cli, tokenize_tiny_shakespeare

COUNTER = str(Path(__file__).with_name("counter_job.py"))
ECHO = str(Path(__file__).parent.parent / "reliability" / "echo_job.py")
GPT = [
    "architecture.n_layers=3", "architecture.n_embd=32", "architecture.n_head=2", "architecture.block_size=32",
    "architecture.scan_layers=false", "training.batch_size=8", "training.log_every=2", "training.val_batches=1",
]


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`theseus ARGS` in its own process group (so a Ctrl-C can reach the group, children included)."""
    full = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "theseus.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=full, start_new_session=True,
    )


def ctrl_c(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGINT)


def wait_for(stream, fragment: str, timeout: float = 120.0) -> list[str]:
    """Read lines of ``stream`` until one contains ``fragment``; return them."""
    seen: list[str] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if fragment in line:
            return seen
    raise AssertionError(f"never saw {fragment!r}: {''.join(seen)}")


def run_dir(out: Path, name: str) -> Path:
    return out / "runs" / "default" / "default" / name


def state(out: Path, name: str) -> str | None:
    path = run_dir(out, name) / "status.json"
    return json.loads(path.read_text())["state"] if path.is_file() else None


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupt")
    tokenize_tiny_shakespeare(root)
    return root


@pytest.fixture(scope="module")
def gpt(out):
    cfg = out / "gpt.yaml"
    run_cli("configure", "gpt/train/pretrain", str(cfg), *GPT, "training.steps=60", "system.compilation_cache=null",
            check=True)
    return cfg


@pytest.mark.parametrize("moment", ["importing", "starting the run", "compiling the training step"])
def test_ctrl_c_during_start_up_ends_with_one_line_and_exit_130(out, gpt, moment):
    name = f"start-{moment.split()[0]}"
    proc = start("run", name, str(gpt), str(out), env={"JAX_COMPILATION_CACHE_DIR": ""})  # compile for real
    if moment == "importing":
        time.sleep(1.0)
    else:
        wait_for(proc.stderr, {"starting the run": f"starting {name}", "compiling the training step": moment}[moment])
    ctrl_c(proc)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    said = [line for line in err.splitlines() if line.strip() and not line.startswith("[theseus]")]
    assert len(said) == 1 and said[0].startswith("interrupted"), err
    assert "Traceback" not in err and "Segmentation" not in err
    assert state(out, name) == (None if moment == "importing" else "failed")
    if moment == "compiling the training step":
        assert "stopped before its first step" in said[0]
        record = json.loads((run_dir(out, name) / "status.json").read_text())
        assert record["error"] == "interrupted (Ctrl-C)" and "interrupted" in (run_dir(out, name) / "log.txt").read_text()


def test_ctrl_c_during_training_saves_at_the_next_step_and_resumes(out):
    cfg = out / "train.yaml"
    tiny = [o for o in GPT if not o.startswith(("architecture.n_layers", "architecture.scan_layers"))]
    run_cli("configure", "gpt/train/pretrain", str(cfg), *tiny, "architecture.n_layers=2", "training.steps=60",
            check=True)
    proc = start("run", "train", str(cfg), str(out))
    wait_for(proc.stderr, "step 2/60")
    ctrl_c(proc)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err
    assert "Ctrl-C: saving at the next step boundary" in err
    record = json.loads((run_dir(out, "train") / "status.json").read_text())
    assert record["state"] == "preempted" and 2 <= record["step"] < 60
    saved = int((run_dir(out, "train") / "checkpoints" / "latest").read_text())
    assert saved == record["step"]
    again = run_cli("run", "train", str(cfg), str(out), "training.steps=" + str(saved + 2), check=True)
    assert f"resuming train from checkpoint step {saved}" in again.stderr


def test_a_second_ctrl_c_stops_at_once_and_the_run_resumes_identically(tmp_path):
    cfg = tmp_path / "c.yaml"
    run_cli("configure", "test/counter", str(cfg), "counter.steps=30", "counter.sleep=0.05", "--load", COUNTER,
            check=True)
    reference = tmp_path / "ref"
    run_cli("run", "r", str(cfg), str(reference), "counter.sleep=0", "--load", COUNTER, check=True)
    out = tmp_path / "out"
    # large checkpoints, so the save the first Ctrl-C starts is still running when the second arrives
    proc = start("run", "r", str(cfg), str(out), "counter.big=24000000", "--load", COUNTER)
    wait_for(proc.stdout, "STEP 5")
    ctrl_c(proc)
    wait_for(proc.stdout, "SAVING")
    ctrl_c(proc)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("interrupted: run r stopped at once")
    assert state(out, "r") == "failed"
    run_cli("run", "r", str(cfg), str(out), "counter.big=24000000", "--load", COUNTER, check=True)
    final = json.loads((run_dir(out, "r") / "results" / "final.json").read_text())
    expected = json.loads((run_dir(reference, "r") / "results" / "final.json").read_text())
    assert np.array_equal(np.array(final["w"]), np.array(expected["w"]))
    records = [json.loads(line) for line in (run_dir(out, "r") / "metrics.jsonl").read_text().splitlines()]
    assert records == [json.loads(line) for line in (run_dir(reference, "r") / "metrics.jsonl").read_text().splitlines()]


def test_ctrl_c_after_the_run_completed_keeps_its_exit_code(tmp_path):
    cfg = tmp_path / "e.yaml"
    run_cli("configure", "test/echo", str(cfg), "--load", ECHO, check=True)
    proc = start("run", "late", str(cfg), str(tmp_path / "out"), "echo.linger=3", "--load", ECHO)
    wait_for(proc.stderr, "run late completed")
    ctrl_c(proc)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert state(tmp_path / "out", "late") == "completed"
