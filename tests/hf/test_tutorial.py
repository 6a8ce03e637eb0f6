"""The tutorial "Extend a Model and Trainer", done as written on a copy of the package, through the CLI.

Its code is written verbatim where it says (``theseus/model/models/my_model.py``,
``theseus/experiments/my_model.py``), the two registry edits are made, and every command
runs in a subprocess whose ``PYTHONPATH`` is the copy. A second copy with a broken
experiment module shows that the built-in jobs stay available.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from clihelp import REPO, run_cli

# Step 1, verbatim
MY_MODEL = '''from typing import Any, Optional

from theseus.base.axis import Axis
from theseus.config import field
from theseus.model.axes import Axes
from theseus.model.huggingface import HFCompat, LogicalAxes


class MyHFModel(HFCompat):
    id: str = field("architecture/huggingface/model")

    @property
    def sharding(self) -> list[tuple[str, Optional[Any]]]:
        return [
            (Axes.VOCAB.value, None),
            (Axes.BLOCK_SIZE.value, None),
            (Axes.N_EMBD.value, None),
            (Axes.N_EMBD_FF.value, Axis.SHARD),
            (Axes.N_EMBD_OUT.value, Axis.SHARD),
            (Axes.N_ATTN.value, Axis.SHARD),
        ]

    @classmethod
    def axes(cls, x: str) -> Optional[LogicalAxes]:
        # map parameter name patterns to logical axes
        return None
'''

# Step 3, verbatim
MY_EXPERIMENT = '''import optax

from theseus.training.huggingface import HFTrainer, HFTrainerConfig
from theseus.evaluation.huggingface import HFEvaluator
from theseus.model.models import MyHFModel


class EvaluateMyModel(HFEvaluator[MyHFModel]):
    MODEL = MyHFModel


class PretrainMyModel(HFTrainer[MyHFModel]):
    MODEL = MyHFModel
    CONFIG = HFTrainerConfig

    @classmethod
    def schedule(cls) -> optax._src.base.Schedule:
        return "wsd"
'''

# Step 4, verbatim (plus the import that brings the class in)
REGISTRATION = '''
from theseus.experiments.my_model import PretrainMyModel  # noqa: E402

JOBS["my_model/train/pretrain"] = PretrainMyModel
'''

BUILTINS = ("gpt/train/pretrain", "gpt/evaluate", "hf/train/finetune", "hf/evaluate")


def package_copy(root: Path, experiment: str) -> dict[str, str]:
    """The package copied under ``root`` with the tutorial applied; the env that imports it."""
    package = root / "theseus"
    shutil.copytree(REPO / "theseus", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "model" / "models" / "my_model.py").write_text(MY_MODEL)
    with open(package / "model" / "models" / "__init__.py", "a") as fh:  # Step 2
        fh.write('\nfrom theseus.model.models.my_model import MyHFModel  # noqa: E402\n\n__all__ += ["MyHFModel"]\n')
    (package / "experiments" / "my_model.py").write_text(experiment)
    with open(package / "experiments" / "__init__.py", "a") as fh:
        fh.write(REGISTRATION)
    return {"PYTHONPATH": str(root)}


def job_rows(listing: str) -> dict[str, str]:
    rows = [line.split(None, 1) for line in listing.splitlines() if line.strip()]
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


def test_the_tutorial_runs_as_written(tmp_path, checkpoint):
    env = package_copy(tmp_path / "copy", MY_EXPERIMENT)
    work, out, model = tmp_path / "work", tmp_path / "theseus-out", checkpoint("llama")
    work.mkdir()

    rows = job_rows(run_cli("jobs", env=env, cwd=work, check=True).stdout)
    assert "my_model/train/pretrain" in rows and "unavailable" not in rows["my_model/train/pretrain"]
    assert all(key in rows and "unavailable" not in rows[key] for key in BUILTINS)

    run_cli("configure", "my_model/train/pretrain", "my_model.yaml", env=env, cwd=work, check=True)
    assert "architecture:\n  block_size" in (work / "my_model.yaml").read_text()
    run_cli("configure", "data/tokenize_variable_dataset", "tok.yaml", "data.max_documents=3", "data.val_fraction=0.34",
            "tokenizer.backend=huggingface", f"tokenizer.path={model}", env=env, cwd=work, check=True)
    run_cli("run", "tok", "tok.yaml", str(out), env=env, cwd=work, check=True)
    proc = run_cli("run", "my-model-dev", "my_model.yaml", str(out), f"architecture.huggingface.model={model}",
                   "architecture.block_size=32", "training.batch_size=8", "training.shard=2", "training.steps=4",
                   "training.log_every=1", "training.val_batches=1", env=env, cwd=work, check=True)
    assert "training MyHFModel" in proc.stderr and "'shard': 2" in proc.stderr
    run = out / "runs" / "default" / "default" / "my-model-dev"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4] and records[-1]["loss"] < records[0]["loss"]
    assert json.loads((run / "status.json").read_text())["state"] == "completed"


@pytest.mark.parametrize("broken", ["from theseus.training.huggingface import HFTrainr\n", "def oops(:\n"],
                         ids=["bad-import", "syntax-error"])
def test_a_broken_experiment_module_never_hides_the_builtin_jobs(tmp_path, broken):
    env = package_copy(tmp_path / "copy", broken)
    rows = job_rows(run_cli("jobs", env=env, cwd=tmp_path, check=True).stdout)
    assert all(key in rows and "unavailable" not in rows[key] for key in BUILTINS), rows
    assert "unavailable" in rows["<theseus.experiments>"]
    assert "my_model" in rows["<theseus.experiments>"] or "HFTrainr" in rows["<theseus.experiments>"]
    run_cli("configure", "gpt/train/pretrain", str(tmp_path / "gpt.yaml"), env=env, check=True)
