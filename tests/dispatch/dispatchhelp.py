"""Helpers for the dispatch tests: the local sshd/SLURM infrastructure and a per-module sandbox.

The infrastructure is `scripts/ci-infra.sh up`: sshd on 127.0.0.1:2222 with the user
`ci_ssh` (the "remote host") and a one-node SLURM cluster with two fake GPUs. Without it
these tests skip with the reason, except under `THESEUS_CI=1`, where they fail.
"""

import json
import os
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from clihelp import run_cli, tokenize_tiny_shakespeare

INFRA = Path(os.environ.get("INFRA_DIR", "/tmp/ci-infra"))
SSH_CONFIG = INFRA / "ssh" / "ssh_config"
REMOTE_USER = "ci_ssh"
# envs and code are shared by every test (an environment is built once per machine)
WORK = "~/theseus-ci-work"
COUNTER = str(Path(__file__).resolve().parent.parent / "foundation" / "counter_job.py")
TINY_GPT = [
    "architecture.vocab_size=320", "architecture.n_layers=2", "architecture.n_embd=32",
    "architecture.n_head=2", "architecture.block_size=32", "training.batch_size=16",
    "training.log_every=2", "training.val_every=4", "training.val_batches=2",
    "optimization.lr=3e-3", "checkpoint.every_steps=4", "training.steps=8",
]
_checked: list[str] = []


def require_infra() -> None:
    """Skip (or, under THESEUS_CI=1, fail) unless sshd and SLURM answer."""
    if _checked:
        problem = _checked[0]
    else:
        problem = _probe()
        _checked.append(problem)
    if problem:
        message = f"needs the sshd/SLURM test infrastructure (bash scripts/ci-infra.sh up): {problem}"
        if os.environ.get("THESEUS_CI") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _probe() -> str:
    if not SSH_CONFIG.is_file():
        return f"{SSH_CONFIG} is missing"
    try:
        ssh = subprocess.run(["ssh", "-F", str(SSH_CONFIG), "ci-ssh", "sinfo -h -o %a"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"ssh failed: {exc}"
    if ssh.returncode != 0 or "up" not in ssh.stdout:
        return f"ssh ci-ssh sinfo: {ssh.stderr.strip() or ssh.stdout.strip()}"
    return ""


def remote(command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a shell command as the remote user (for checks the product does not make itself)."""
    proc = subprocess.run(
        ["ssh", "-F", str(SSH_CONFIG), "ci-ssh", command], capture_output=True, text=True, timeout=120
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"remote {command!r}: {proc.stderr}")
    return proc


def remote_home() -> Path:
    """The remote user's home on this machine (the remote is 127.0.0.1)."""
    return Path(os.path.expanduser(f"~{REMOTE_USER}"))


class Sandbox:
    """A dispatch config and a local record store for one test module, with a private remote output root."""

    def __init__(self, tmp: Path, cluster_env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.tag = uuid.uuid4().hex[:8]
        self.remote_root = f"~/ci-tests/{self.tag}"
        self.out = f"{self.remote_root}/out"
        self.home = tmp / "theseus-home"
        self.config = tmp / "dispatch.yaml"
        ssh_options = ["-F", str(SSH_CONFIG)]
        host_env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
        base = {"ssh_options": ssh_options, "work": WORK, "out": self.out, "env": host_env}
        cfg = {
            "hosts": {
                "ci": {**base, "ssh": "ci-ssh", "address": "127.0.0.1"},
                "ci-twin": {**base, "ssh": "ci-ssh", "env": {**host_env, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}},
                "ci-quarter": {**base, "ssh": "ci-ssh", "address": "127.0.0.1", "env": {**host_env, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}},
                "closed": {**base, "ssh": "ci-ssh-closed"},
                "stranger": {**base, "ssh": "ci-ssh-stranger"},
                "broken-env": {
                    **base,
                    "ssh": "ci-ssh",
                    "environment": {"packages": ["theseus-ci-missing-package==0.0.0"], "pip_args": ["--no-index"]},
                },
                "dry": {**base, "ssh": "ci-ssh", "work": f"{self.remote_root}/dry-work", "out": f"{self.remote_root}/dry-out"},
            },
            "clusters": {
                "slurm": {
                    "login": "ci-ssh",
                    "ssh_options": ssh_options,
                    "work": WORK,
                    "out": self.out,
                    "gres": {"h100": "gpu"},
                    "env": {"JAX_PLATFORMS": "cpu", **(cluster_env or {})},
                }
            },
        }
        self.config.write_text(yaml.safe_dump(cfg))

    @property
    def env(self) -> dict[str, str]:
        """The environment a CLI call of this sandbox runs with."""
        return {"THESEUS_HOME": str(self.home), "THESEUS_DISPATCH_CONFIG": str(self.config)}

    def cli(self, *args: str, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """`theseus ARGS` with this sandbox's dispatch config and records."""
        return run_cli(*args, env=self.env, check=check, timeout=timeout)

    def record(self, name: str) -> dict:
        """The local submission record of run ``name``."""
        return json.loads((self.home / "submissions" / "default" / "default" / f"{name}.json").read_text())

    def remote_path(self, path: str) -> Path:
        """A remote path of this sandbox as a local path (the remote is this machine)."""
        return remote_home() / path.removeprefix("~/")

    def push_data(self, local_out: Path) -> None:
        """Copy tokenized data to the remote output root, as a user would have it there."""
        tar = subprocess.run(["tar", "-C", str(local_out), "-c", "data"], capture_output=True, check=True).stdout
        proc = subprocess.run(
            ["ssh", "-F", str(SSH_CONFIG), "ci-ssh", f"mkdir -p {self.out} && tar -x -C {self.out}"],
            input=tar,
            capture_output=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr

    def gpt_with_data(self) -> tuple[Path, Path]:
        """Tokenized Shakespeare (three plays) here and in the remote output root, and a tiny GPT config."""
        out = self.tmp / "local"
        out.mkdir(parents=True, exist_ok=True)
        tokenize_tiny_shakespeare(out)
        self.push_data(out)
        gpt = self.tmp / "gpt.yaml"
        run_cli("configure", "gpt/train/pretrain", str(gpt), *TINY_GPT, check=True)
        return out, gpt

    def status(self, name: str) -> dict[str, str]:
        """`theseus status NAME` as a dict of its rows."""
        out = self.cli("status", name, check=True).stdout
        return {line[:11].strip(): line[11:].strip() for line in out.splitlines() if line.strip()}

    def wait_until(self, name: str, predicate, timeout: float = 240, poll: float = 1.0) -> dict[str, str]:
        """Poll `theseus status NAME` until ``predicate(rows)`` holds."""
        deadline = time.time() + timeout
        rows: dict[str, str] = {}
        while time.time() < deadline:
            rows = self.status(name)
            if predicate(rows):
                return rows
            time.sleep(poll)
        raise AssertionError(f"run {name} never got there: {rows}")

    def cleanup(self) -> None:
        """Remove this sandbox's remote files."""
        remote(f"rm -rf {shlex.quote(self.remote_root.replace('~/', ''))}", check=False)


def user_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a failed CLI call (exit 2, no traceback)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("[theseus]")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def comparable(records: list[dict], keys=("step", "loss", "lr", "grad_norm", "val_loss", "tokens")) -> list[dict]:
    """The deterministic part of metrics records."""
    return [{k: r[k] for k in keys if k in r} for r in records]


def read_metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl of a run directory."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
