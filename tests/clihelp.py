"""Helpers that run the theseus CLI in real subprocesses."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `theseus ARGS...` in a subprocess and return the completed process."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "theseus.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"theseus {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def start_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start `theseus ARGS...` in the background (stdout/stderr piped)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "theseus.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


TINY_SHAKESPEARE = ("data.dataset=shakespeare", "data.max_documents=3", "data.val_fraction=0.34")


def tokenize_tiny_shakespeare(root: Path, name: str = "tok") -> None:
    """Tokenize three Shakespeare plays (byte tokenizer, about a third held out) into ROOT/data/shakespeare."""
    cfg = Path(root) / f"{name}.yaml"
    run_cli("configure", "data/tokenize_variable_dataset", str(cfg), *TINY_SHAKESPEARE, check=True)
    run_cli("run", name, str(cfg), str(root), check=True)
