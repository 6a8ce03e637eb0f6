"""`theseus submit` to a plain SSH host (a real sshd on 127.0.0.1, user ci_ssh), through the CLI."""

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from clihelp import run_cli
from dispatchhelp import (
    COUNTER,
    Sandbox,
    comparable,
    read_metrics,
    remote,
    remote_home,
    require_infra,
    user_error_line,
)

pytestmark = pytest.mark.infra

@pytest.fixture(scope="module")
def box(tmp_path_factory):
    require_infra()
    sandbox = Sandbox(tmp_path_factory.mktemp("ssh"))
    yield sandbox
    sandbox.cleanup()


@pytest.fixture(scope="module")
def local(box):
    """Tokenized data and a tiny GPT config, here and on the remote; plus a local reference run."""
    out, gpt = box.gpt_with_data()
    run_cli("run", "ref", str(gpt), str(out), check=True)
    return out, gpt


@pytest.fixture(scope="module")
def counter_yaml(box):
    cfg = box.tmp / "counter.yaml"
    run_cli("configure", "test/counter", str(cfg), "counter.steps=2000", "counter.sleep=0.05",
            "checkpoint.every_steps=50", "--load", COUNTER, check=True)
    return cfg


def test_submitted_gpt_run_completes_and_ls_status_logs_pull_show_it(box, local):
    out, gpt = local
    started = time.time()
    done = box.cli("submit", "gpt-ssh", str(gpt), "--host", "ci", "--wait")
    assert done.returncode == 0, done.stderr
    assert "run gpt-ssh completed" in done.stdout
    listing = box.cli("ls", check=True).stdout
    assert "default/default/gpt-ssh" in listing and "completed" in listing and "ssh ci" in listing
    rows = box.status("gpt-ssh")
    assert rows["state"] == "completed" and rows["step"] == "8" and rows["job"] == "gpt/train/pretrain"
    assert rows["checkpoint"] == "8" and "loss=" in rows["metrics"]
    assert "run gpt-ssh completed" in box.cli("logs", "gpt-ssh", check=True).stdout
    followed = box.cli("logs", "gpt-ssh", "-f", "-n", "5", check=True, timeout=60)  # ends with the run
    assert "run gpt-ssh completed" in followed.stdout
    assert "already ended: completed" in box.cli("cancel", "gpt-ssh", check=True).stdout
    pulled = box.tmp / "pulled"
    box.cli("pull", "gpt-ssh", str(pulled), check=True)
    run = pulled / "runs/default/default/gpt-ssh"
    for name in ("config.yaml", "job.json", "status.json", "metrics.jsonl", "log.txt"):
        assert (run / name).is_file(), name
    assert not (run / "checkpoints").exists()  # only with --checkpoints
    assert comparable(read_metrics(run)) == comparable(read_metrics(out / "runs/default/default/ref"))
    # the local status command reads the pulled copy like any run
    assert "completed" in run_cli("status", "gpt-ssh", str(pulled), check=True).stdout
    box.cli("pull", "gpt-ssh", str(pulled), "--checkpoints", check=True)
    assert (run / "checkpoints" / "8").is_dir()
    print(f"submit -> completed in {time.time() - started:.1f} s")


def test_two_hosts_start_one_process_each_with_the_first_as_coordinator(box, local):
    out, gpt = local
    done = box.cli("submit", "gpt-2hosts", str(gpt), "--host", "ci-quarter", "--host", "ci-twin", "--wait")
    assert done.returncode == 0, done.stderr
    record = box.record("gpt-2hosts")
    assert [p["host"] for p in record["processes"]] == ["ci-quarter", "ci-twin"]
    assert len({p["job_dir"] for p in record["processes"]}) == 2
    log = box.cli("logs", "gpt-2hosts", check=True).stdout
    assert "joining a 2-process run (coordinator 127.0.0.1:" in log
    run = box.tmp / "pulled"
    box.cli("pull", "gpt-2hosts", str(run), check=True)
    two = comparable(read_metrics(run / "runs/default/default/gpt-2hosts"))
    one = comparable(read_metrics(out / "runs/default/default/ref"))
    assert [r["step"] for r in two] == [r["step"] for r in one]
    for a, b in zip(two, one, strict=True):
        for key in ("loss", "grad_norm", "val_loss"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-5), (key, a, b)


def _owned_files_containing(text: str) -> list[str]:
    """Files the remote user owns (home, /tmp, /var/tmp) that contain ``text``."""
    find = subprocess.run(
        ["find", str(remote_home()), "/tmp", "/var/tmp", "-xdev", "-user", "ci_ssh", "-type", "f", "-print0"],
        capture_output=True,
    )
    grep = subprocess.run(["xargs", "-0", "-r", "grep", "-lF", "--", text], input=find.stdout, capture_output=True)
    return grep.stdout.decode().split()


def test_secret_reaches_the_process_environment_only_and_cancel_stops_the_run(box, counter_yaml):
    marker = f"/tmp/theseus-ci-pwned-{uuid.uuid4().hex[:8]}"
    secret = f"s3cret-{uuid.uuid4().hex} $(touch {marker}) `touch {marker}`; 'single' \"double\" \\"
    box.cli("submit", "count", str(counter_yaml), "--host", "ci", "--env", f"THESEUS_CI_SECRET={secret}",
            "--load", COUNTER, check=True)
    box.wait_until("count", lambda r: r["state"] == "running" and r["step"] not in ("-", "None"))
    pid = box.record("count")["processes"][0]["pid"]
    children = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
    environs = [Path(f"/proc/{child}/environ").read_bytes().split(b"\0") for child in children]
    assert any(f"THESEUS_CI_SECRET={secret}".encode() in env for env in environs), "secret not in the run's environment"
    assert not Path(marker).exists(), "a metacharacter in a value was executed"
    assert _owned_files_containing(secret.split()[0]) == []
    assert secret.split()[0] not in "".join(p.read_text() for p in box.home.rglob("*.json"))
    job_dir = box.remote_path(box.record("count")["processes"][0]["job_dir"])
    modes = {p.name: p.stat().st_mode & 0o777 for p in job_dir.iterdir()}
    assert modes["launch.sh"] == 0o700 and modes["config.yaml"] == 0o600, modes

    cancelled = box.cli("cancel", "count", check=True)
    assert "cancelled" in cancelled.stdout
    rows = box.status("count")
    assert rows["state"] == "cancelled"
    assert subprocess.run(["pgrep", "-g", str(pid)], capture_output=True).returncode == 1, "processes left"
    assert "SIGTERM received: saving" in box.cli("logs", "count", check=True).stdout


def test_a_job_that_dies_ends_in_one_line_with_the_remote_cause(box, local):
    _, gpt = local
    proc = box.cli("submit", "doomed", str(gpt), "--host", "ci", "training.data=[{name: nothing}]", "--wait")
    line = user_error_line(proc)
    assert "ci" in line and "failed" in line and "no tokenized dataset 'nothing'" in line, line
    rows = box.status("doomed")
    assert rows["state"] == "failed" and "no tokenized dataset" in rows["detail"]


def test_unreachable_host_and_rejected_key_end_in_one_line(box, counter_yaml):
    line = user_error_line(box.cli("submit", "r1", str(counter_yaml), "--host", "closed", "--load", COUNTER))
    assert "host closed (ci-ssh-closed)" in line and "Connection refused" in line, line
    line = user_error_line(box.cli("submit", "r2", str(counter_yaml), "--host", "stranger", "--load", COUNTER))
    assert "host stranger (ci-ssh-stranger)" in line and "Permission denied (publickey)" in line, line
    assert not (box.home / "submissions/default/default/r1.json").exists()


def test_an_environment_that_fails_to_install_names_pips_reason(box, counter_yaml):
    line = user_error_line(box.cli("submit", "r3", str(counter_yaml), "--host", "broken-env", "--load", COUNTER))
    assert "host broken-env" in line and "environment failed to install" in line, line
    assert "No matching distribution found" in line, line  # pip's own reason


def test_shell_metacharacters_in_a_name_are_refused_before_anything_is_sent(box, counter_yaml):
    marker = f"/tmp/theseus-ci-name-{uuid.uuid4().hex[:8]}"
    for name in (f"x;touch {marker}", f"x$(touch {marker})", "x y", "../x", ".x"):
        line = user_error_line(box.cli("submit", name, str(counter_yaml), "--host", "ci", "--load", COUNTER))
        assert "may hold only letters" in line, line
    assert not Path(marker).exists()
    sent = remote(f"ls {box.out}/runs/default/default {box.remote_root} 2>/dev/null || true").stdout.split()
    assert not [entry for entry in sent if entry.startswith(("x", "."))], sent


def test_dry_run_prints_the_scripts_and_writes_nothing_remote(box, counter_yaml):
    proc = box.cli("submit", "dry", str(counter_yaml), "--host", "dry", "--env", "TOKEN=hunter2", "--load", COUNTER,
                   "--dry-run", check=True)
    assert "launch.sh" in proc.stdout and "setsid" in proc.stdout and "theseus.cli run dry" in proc.stdout
    assert "TOKEN='<hidden>'" in proc.stdout and "hunter2" not in proc.stdout
    assert remote(f"test -e {box.remote_root}/dry-work || test -e {box.remote_root}/dry-out", check=False).returncode == 1
    assert not (box.home / "submissions/default/default/dry.json").exists()
    rec = json.dumps([p.read_text() for p in box.home.rglob("*.json")])
    assert "hunter2" not in rec
