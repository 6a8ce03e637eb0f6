"""The CLI through real subprocesses: configure → run → inspect, and every user error."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from clihelp import REPO, run_cli

COUNTER = str(Path(__file__).with_name("counter_job.py"))


def assert_user_error(proc, *fragments):
    """Exit 2, one line on stderr, no traceback, and the fragments in it."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for frag in fragments:
        assert frag in lines[0], lines[0]


def test_help_does_not_import_jax():
    code = "import sys; from theseus.cli import theseus; sys.argv=['theseus','--help']\ntry:\n theseus()\nexcept SystemExit: pass\nprint('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_jobs_lists_loaded_job_with_description():
    proc = run_cli("jobs", "--load", COUNTER, check=True)
    assert "test/counter" in proc.stdout
    assert "Toy random walk" in proc.stdout


def test_configure_then_run_without_edits(tmp_path):
    cfg = tmp_path / "c.yaml"
    run_cli(
        "configure",
        "test/counter",
        str(cfg),
        "counter.steps=6",
        "checkpoint.every_steps=2",
        "--chip",
        "h100",
        "-n",
        "8",
        "--load",
        COUNTER,
        check=True,
    )
    data = yaml.safe_load(cfg.read_text())
    assert data["job"] == "test/counter"
    assert data["counter"]["steps"] == 6
    assert data["request"] == {"chip": "h100", "n_chips": 8}
    out = tmp_path / "out" / "nested"  # created on demand
    run_cli("run", "r", str(cfg), str(out), "--load", COUNTER, check=True)
    run_dir = out / "runs" / "default" / "default" / "r"
    for name in ("config.yaml", "job.json", "status.json", "metrics.jsonl", "log.txt"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "results").is_dir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == 6
    job = json.loads((run_dir / "job.json").read_text())
    assert job["job"] == "test/counter" and job["versions"]["python"] and job["host"]
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["counter"]["steps"] == 6 and resolved["job"] == "test/counter"

    ls = run_cli("ls", str(out), check=True)
    assert "default/default/r" in ls.stdout and "completed" in ls.stdout and "loss=" in ls.stdout
    st = run_cli("status", "r", str(out), check=True)
    assert "completed" in st.stdout and "step       6" in st.stdout
    ck = run_cli("checkpoints", "r", str(out), check=True)
    assert "latest" in ck.stdout and " 6 " in f" {ck.stdout} "
    logs = run_cli("logs", "r", str(out), check=True)
    assert "completed" in logs.stdout

    again = run_cli("run", "r", str(cfg), str(out), "--load", COUNTER)
    assert again.returncode == 0 and "already completed" in again.stderr


def test_previous_carries_values_over(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("job: test/counter\ncounter:\n  steps: 11\n  gone: 1\nrequest:\n  chip: a100\n")
    new = tmp_path / "new.yaml"
    proc = run_cli("configure", "test/counter", str(new), "-p", str(old), "--load", COUNTER, check=True)
    data = yaml.safe_load(new.read_text())
    assert data["counter"]["steps"] == 11 and data["request"]["chip"] == "a100"
    assert "counter.gone" in proc.stdout


def test_override_precedence_on_run(tmp_path):
    cfg = tmp_path / "c.yaml"
    run_cli("configure", "test/counter", str(cfg), "counter.steps=4", "--load", COUNTER, check=True)
    run_cli("run", "r", str(cfg), str(tmp_path / "o"), "counter.steps=3", "--load", COUNTER, check=True)
    status = json.loads((tmp_path / "o/runs/default/default/r/status.json").read_text())
    assert status["step"] == 3


def test_project_and_group_place_the_run(tmp_path):
    cfg = tmp_path / "c.yaml"
    run_cli("configure", "test/counter", str(cfg), "counter.steps=2", "--load", COUNTER, check=True)
    run_cli(
        "run", "r", str(cfg), str(tmp_path / "o"), "-p", "proj", "-g", "grp", "--load", COUNTER, check=True
    )
    assert (tmp_path / "o/runs/proj/grp/r/status.json").is_file()


# ---------------------------------------------------------------- user errors


def test_unknown_job_key(tmp_path):
    proc = run_cli("configure", "test/countr", str(tmp_path / "x.yaml"), "--load", COUNTER)
    assert_user_error(proc, "unknown job 'test/countr'", "did you mean test/counter")
    assert not (tmp_path / "x.yaml").exists()


def test_unknown_key_on_the_command_line(tmp_path):
    proc = run_cli(
        "configure", "test/counter", str(tmp_path / "x.yaml"), "counter.stepz=3", "--load", COUNTER
    )
    assert_user_error(proc, "counter.stepz", "did you mean counter.steps")
    assert not (tmp_path / "x.yaml").exists()


def test_mistyped_value(tmp_path):
    cfg = tmp_path / "c.yaml"
    run_cli("configure", "test/counter", str(cfg), "--load", COUNTER, check=True)
    out = tmp_path / "out"
    proc = run_cli("run", "r", str(cfg), str(out), "counter.steps=many", "--load", COUNTER)
    assert_user_error(proc, "counter.steps", "int", "'many'")
    assert not out.exists()  # nothing half-written


def test_malformed_yaml(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("job: test/counter\ncounter:\n  steps: [1,\n")
    proc = run_cli("run", "r", str(cfg), str(tmp_path / "out"), "--load", COUNTER)
    assert_user_error(proc, "not valid YAML", "line")
    assert not (tmp_path / "out").exists()


def test_yaml_for_another_job(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("job: test/counter\ncounter:\n  steps: 2\n")
    proc = run_cli("run", "r", str(cfg), str(tmp_path / "out"), "-j", "other/job", "--load", COUNTER)
    assert_user_error(proc, "written for job test/counter", "not other/job")
    foreign = tmp_path / "f.yaml"
    foreign.write_text("job: test/counter\narchitecture:\n  n_layers: 2\n")
    proc = run_cli("run", "r", str(foreign), str(tmp_path / "out"), "--load", COUNTER)
    assert_user_error(proc, "unknown config key architecture.n_layers", "written for job test/counter")


def test_yaml_without_job_and_missing_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("counter:\n  steps: 2\n")
    assert_user_error(run_cli("run", "r", str(cfg), str(tmp_path / "o"), "--load", COUNTER), "names no job")
    assert_user_error(run_cli("run", "r", str(tmp_path / "nope.yaml"), str(tmp_path / "o")), "does not exist")


def test_missing_checkpoint_and_missing_run(tmp_path):
    cfg = tmp_path / "c.yaml"
    run_cli("configure", "test/counter", str(cfg), "counter.steps=2", "--load", COUNTER, check=True)
    out = tmp_path / "o"
    run_cli("run", "r", str(cfg), str(out), "--load", COUNTER, check=True)
    assert_user_error(
        run_cli("restore", "r", "99", str(out), "--load", COUNTER), "no checkpoint at step 99", "have: 2"
    )
    assert_user_error(run_cli("restore", "zz", "1", str(out)), "no run zz")
    assert_user_error(run_cli("checkpoints", "zz", str(out)), "no run zz")
    assert_user_error(run_cli("status", "zz", str(out)), "no run zz")


def test_changed_config_for_an_existing_run_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    run_cli("configure", "test/counter", str(cfg), "counter.steps=2", "--load", COUNTER, check=True)
    out = tmp_path / "o"
    run_cli("run", "r", str(cfg), str(out), "--load", COUNTER, check=True)
    proc = run_cli("run", "r", str(cfg), str(out), "counter.seed=5", "--load", COUNTER)
    assert_user_error(proc, "different config", "counter.seed", "--fresh")


def test_locked_run_directory(tmp_path):
    cfg = tmp_path / "c.yaml"
    run_cli(
        "configure",
        "test/counter",
        str(cfg),
        "counter.steps=400",
        "counter.sleep=0.05",
        "--load",
        COUNTER,
        check=True,
    )
    out = tmp_path / "o"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    first = subprocess.Popen(
        [sys.executable, "-m", "theseus.cli", "run", "r", str(cfg), str(out), "--load", COUNTER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert first.stdout is not None
        assert first.stdout.readline().startswith("STEP")
        proc = run_cli("run", "r", str(cfg), str(out), "--load", COUNTER)
        assert_user_error(proc, "run r is in use by pid", str(first.pid))
    finally:
        first.kill()
        first.wait()


def test_bad_run_name(tmp_path):
    cfg = tmp_path / "c.yaml"
    run_cli("configure", "test/counter", str(cfg), "--load", COUNTER, check=True)
    assert_user_error(run_cli("run", "../x", str(cfg), str(tmp_path / "o"), "--load", COUNTER), "plain name")


def test_verbose_shows_traceback(tmp_path):
    proc = run_cli("-v", "configure", "no/such", str(tmp_path / "x.yaml"))
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_load_of_a_broken_file(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_real_module_xyz\n")
    assert_user_error(run_cli("jobs", "--load", str(bad)), "--load", "not_a_real_module_xyz")


def test_elapsed_cli_is_fast():
    t0 = time.perf_counter()
    run_cli("--help", check=True)
    assert time.perf_counter() - t0 < 5
