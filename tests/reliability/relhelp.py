"""Helpers for the reliability tests: a tiny GPT config, run files, one-line errors, mounts, checkpoints."""

import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from clihelp import TINY_SHAKESPEARE, run_cli

ECHO = str(Path(__file__).with_name("echo_job.py"))

TINY = [
    "architecture.vocab_size=320", "architecture.n_layers=2", "architecture.n_embd=32",
    "architecture.n_head=2", "architecture.block_size=32",
    "training.batch_size=8", "training.log_every=2", "training.val_every=6", "training.val_batches=2",
    "optimization.lr=3e-3", "checkpoint.every_steps=4",
]
COMPARED = ("step", "loss", "lr", "grad_norm", "val_loss", "tokens")


def tokenize(root, *overrides):
    """Tokenize three Shakespeare plays (byte tokenizer) under ``root/data/shakespeare``."""
    cfg = Path(root) / "tok.yaml"
    run_cli("configure", "data/tokenize_variable_dataset", str(cfg), *TINY_SHAKESPEARE, *overrides, check=True)
    run_cli("run", "tok", str(cfg), str(root), "--fresh", check=True)
    return root


def gpt_yaml(path, *overrides):
    """A tiny GPT config at ``path``."""
    run_cli("configure", "gpt/train/pretrain", str(path), *TINY, *overrides, check=True)
    return Path(path)


def run_dir(out, name, project="default", group="default"):
    return Path(out) / "runs" / project / group / name


def metrics(out, name):
    """The complete records of a run's metrics.jsonl (a torn last line is skipped, as readers do)."""
    path = run_dir(out, name) / "metrics.jsonl"
    out_records = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            out_records.append(json.loads(line))
        except ValueError:
            continue
    return out_records


def comparable(records):
    return [{k: r[k] for k in COMPARED if k in r} for r in records]


def status(out, name):
    return json.loads((run_dir(out, name) / "status.json").read_text())


def one_line_error(proc, fragment=""):
    """Assert ``proc`` failed as a user error: exit 2, one line on stderr (log lines aside), no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("[theseus]")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in lines[0], lines[0]
    return lines[0]


def tree(root):
    """Every path under ``root`` (to check that a refused command wrote nothing)."""
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def checkpoint_arrays(step_dir):
    """The arrays of a training checkpoint's ``state`` item, by tree path, as numpy."""
    import jax
    import orbax.checkpoint as ocp

    checkpointer = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
    meta = checkpointer.metadata(Path(step_dir) / "state").item_metadata.tree
    item = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), meta)
    args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
    restored = checkpointer.restore(Path(step_dir) / "state", args=ocp.args.PyTreeRestore(item=item, restore_args=args))
    leaves = jax.tree_util.tree_flatten_with_path(restored)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def same_arrays(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _cannot_mount(reason):
    """Skip, or in CI (which runs as root) fail: the mount tests must run there."""
    if os.environ.get("THESEUS_CI"):
        pytest.fail(f"CI must be able to mount: {reason}")
    pytest.skip(reason)


@contextmanager
def _mounted(path, *args):
    if os.geteuid() != 0:
        _cannot_mount("needs root to mount a tmpfs or a read-only bind mount")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *args, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        _cannot_mount(f"mount {' '.join(args)} failed: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def tmpfs(path, size):
    """A real tmpfs of ``size`` (e.g. "2m") mounted at ``path`` for the ``with`` block."""
    return _mounted(path, "-t", "tmpfs", "-o", f"size={size}", "tmpfs")


def read_only(source, path):
    """``source`` bind-mounted read-only at ``path`` for the ``with`` block."""
    return _mounted(path, "--bind", "-o", "ro", str(source))
