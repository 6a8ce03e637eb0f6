"""The GPT trainer through the real CLI: train, inspect, resume exactly, preempt, bad input, two processes."""

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from clihelp import run_cli, start_cli

TINY = [
    "architecture.vocab_size=320", "architecture.n_layers=2", "architecture.n_embd=32",
    "architecture.n_head=2", "architecture.block_size=32",
    "training.batch_size=16", "training.log_every=2", "training.val_every=6", "training.val_batches=2",
    "optimization.lr=3e-3", "checkpoint.every_steps=4", "checkpoint.keep_last=2",
]
COMPARED = ("step", "loss", "lr", "grad_norm", "val_loss", "tokens")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """An output root holding tokenized Shakespeare (three plays, byte tokenizer)."""
    root = tmp_path_factory.mktemp("train")
    cfg = root / "tok.yaml"
    run_cli("configure", "data/tokenize_variable_dataset", str(cfg), "data.dataset=shakespeare",
            "data.max_documents=3", "data.val_fraction=0.34", check=True)
    run_cli("run", "tok", str(cfg), str(root), check=True)
    return root


@pytest.fixture(scope="module")
def gpt_yaml(out):
    cfg = out / "gpt.yaml"
    run_cli("configure", "gpt/train/pretrain", str(cfg), *TINY, "training.steps=24", check=True)
    return cfg


@pytest.fixture(scope="module")
def reference(out, gpt_yaml):
    """An uninterrupted run to compare against."""
    run_cli("run", "ref", str(gpt_yaml), str(out), check=True)
    return metrics(out, "ref")


def run_dir(out, name):
    return Path(out) / "runs" / "default" / "default" / name


def metrics(out, name):
    lines = (run_dir(out, name) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def comparable(records):
    return [{k: r[k] for k in COMPARED if k in r} for r in records]


def test_training_learns_and_leaves_an_inspectable_run(out, reference):
    assert [r["step"] for r in reference] == list(range(2, 25, 2))
    first, last = reference[0], reference[-1]
    assert last["loss"] < first["loss"] - 0.5
    with_val = [r for r in reference if "val_loss" in r]
    assert [r["step"] for r in with_val] == [6, 12, 18, 24]
    assert with_val[-1]["val_loss"] < with_val[0]["val_loss"]
    for key in ("tokens_per_s", "mfu", "step_time", "data_wait", "lr", "grad_norm"):
        assert key in last and last[key] >= 0
    assert last["mfu_peak_source"] in ("measured", "table", "configured")
    assert "compile_time" in first
    assert last["tokens"] == 24 * 16 * 32  # exactly the steps the config implies
    status = json.loads((run_dir(out, "ref") / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == 24
    job = json.loads((run_dir(out, "ref") / "job.json").read_text())
    assert job["tokenizer"]["backend"] == "byte"  # the run knows its tokenizer without the data beside it
    listing = run_cli("checkpoints", "ref", str(out), check=True).stdout
    assert "24" in listing and "20" in listing and "latest" in listing
    ls = run_cli("ls", str(out), check=True).stdout
    assert "gpt/train/pretrain" in ls and "val_loss=" in ls


def test_sigkill_then_rerun_gives_bit_identical_metrics(out, gpt_yaml, reference):
    proc = start_cli("run", "killed", str(gpt_yaml), str(out))
    ckpts = run_dir(out, "killed") / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline:
        if (ckpts / "12").is_dir() or proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir(out, "killed") / "checkpoints" / "24").exists(), "finished before it could be killed"
    again = run_cli("run", "killed", str(gpt_yaml), str(out), check=True)
    assert "resuming killed from checkpoint step" in again.stderr
    assert comparable(metrics(out, "killed")) == comparable(reference)


def test_sigterm_preempts_then_resumes_identically(out, gpt_yaml, reference):
    proc = start_cli("run", "pre", str(gpt_yaml), str(out))
    path = run_dir(out, "pre") / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (path.is_file() and path.read_text().count("\n") >= 2):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode == 75, proc.stderr.read()
    status = json.loads((run_dir(out, "pre") / "status.json").read_text())
    assert status["state"] == "preempted" and status["step"] < 24
    run_cli("run", "pre", str(gpt_yaml), str(out), check=True)
    assert comparable(metrics(out, "pre")) == comparable(reference)


def test_restore_continues_from_an_earlier_checkpoint(out, gpt_yaml, reference):
    run_cli("run", "rest", str(gpt_yaml), str(out), check=True)
    run_cli("restore", "rest", "20", str(out), check=True)
    assert comparable(metrics(out, "rest")) == comparable(reference)


def _user_error(proc, fragment):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("[theseus]")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in lines[0], lines[0]


def test_bad_input_is_one_line(out, gpt_yaml):
    _user_error(run_cli("run", "b1", str(gpt_yaml), str(out), "architecture.vocab_size=200"), "vocab")
    _user_error(run_cli("run", "b2", str(gpt_yaml), str(out), "training.batch_size=12"),
                "not divisible by the 8 data-parallel devices")
    _user_error(run_cli("run", "b3", str(gpt_yaml), str(out), "training.per_device_batch_size=4"),
                "per_device_batch_size=4 is larger than the batch allows")
    _user_error(run_cli("run", "b4", str(gpt_yaml), str(out), "training.data=[{name: nothing}]"),
                "no tokenized dataset 'nothing'")


def test_two_processes_match_one(out, gpt_yaml):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    common = ["training.steps=8", f"system.coordinator_address=127.0.0.1:{port}", "system.num_processes=2"]
    procs = [
        start_cli("run", "mp", str(gpt_yaml), str(out), *common, f"system.process_id={i}", env=env)
        for i in range(2)
    ]
    for proc in procs:
        proc.wait(timeout=300)
        assert proc.returncode == 0, proc.stderr.read()
    run_cli("run", "sp", str(gpt_yaml), str(out), "training.steps=8", check=True)
    two = comparable(metrics(out, "mp"))
    one = comparable(metrics(out, "sp"))
    assert [r["step"] for r in two] == [2, 4, 6, 8]
    for a, b in zip(two, one, strict=True):
        for key in ("loss", "grad_norm", "val_loss"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-5), (key, a, b)
    assert os.path.isdir(run_dir(out, "mp") / "checkpoints" / "8")


def test_standalone_evaluation_of_a_checkpoint(out, reference):
    cfg = out / "ev.yaml"
    run_cli("configure", "gpt/evaluate", str(cfg), "evaluate.run=ref",
            "eval.evaluations=[shakespeare_ppl, arithmetic]", "eval.max_examples=4",
            "eval.arithmetic.n_examples=4", check=True)
    run_cli("run", "ref-eval", str(cfg), str(out), check=True)
    results = run_dir(out, "ref-eval") / "results"
    ppl = json.loads((results / "shakespeare_ppl.json").read_text())
    assert ppl["metrics"]["perplexity"] > 1.0
    assert (results / "arithmetic.json").is_file()
    _user_error(run_cli("run", "ev-missing", str(cfg), str(out), "evaluate.run=nope"), "nope is not a run directory")
    _user_error(run_cli("run", "ev-bad", str(cfg), str(out), "eval.evaluations=[shakespere_ppl]"),
                "did you mean shakespeare_ppl")
    _user_error(run_cli("run", "ev-family", str(cfg), str(out), "evaluate.run=tok"),
                "trained no model")


PATTERN_1 = '''
import optax

from theseus.training.trainer import BaseTrainer, BaseTrainerConfig
from theseus.evaluation import Evaluator
from theseus.model.models import GPT


class EvaluateMyRun(Evaluator[GPT]):
    MODEL = GPT


class PretrainMyRun(BaseTrainer[BaseTrainerConfig, GPT]):
    MODEL = GPT
    CONFIG = BaseTrainerConfig

    @classmethod
    def schedule(cls) -> optax._src.base.Schedule:
        return "wsd"

    def evaluator(self) -> Evaluator[GPT]:
        return EvaluateMyRun.from_trainer(self)
'''


def test_spec_pattern_1_skeleton_as_a_user_module(out, tmp_path):
    module = tmp_path / "my_run.py"
    module.write_text(PATTERN_1 + '\nfrom theseus.registry import JOBS\nJOBS["my_run/train/pretrain"] = PretrainMyRun\n')
    jobs = run_cli("jobs", "--load", str(module), check=True).stdout
    assert "my_run/train/pretrain" in jobs
    cfg = tmp_path / "my.yaml"
    run_cli("configure", "my_run/train/pretrain", str(cfg), *TINY, "training.steps=6",
            "eval.evaluations=[shakespeare_ppl]", "eval.max_examples=2", "--load", str(module), check=True)
    assert "decay_pct" in cfg.read_text()  # the wsd schedule's own keys are in the config
    run_cli("run", "pattern1", str(cfg), str(out), "--load", str(module), check=True)
    records = metrics(out, "pattern1")
    scored = [r for r in records if "eval/shakespeare_ppl/perplexity" in r]
    assert [r["step"] for r in scored] == [6]
    assert (run_dir(out, "pattern1") / "results" / "shakespeare_ppl.json").is_file()
