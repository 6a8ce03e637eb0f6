"""Continue and change runs through the CLI: a longer budget, a lower lr on restore, refused fixed keys,
changed data accepted on request, and the defaults that follow the data (vocabulary, memory)."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from clihelp import TINY_SHAKESPEARE, run_cli

TINY = [  # no architecture.vocab_size: it follows the data
    "architecture.n_layers=2", "architecture.n_embd=32", "architecture.n_head=2", "architecture.block_size=32",
    "training.batch_size=8", "training.log_every=2", "training.val_every=4", "training.val_batches=1",
    "optimization.lr=3e-3", "checkpoint.every_steps=4", "checkpoint.keep_last=10",
]


def tokenize(root, *overrides):
    """Three Shakespeare plays, byte tokenizer, under ``root/data/shakespeare``."""
    Path(root).mkdir(parents=True, exist_ok=True)
    cfg = Path(root) / "tok.yaml"
    run_cli("configure", "data/tokenize_variable_dataset", str(cfg), *TINY_SHAKESPEARE, *overrides, check=True)
    run_cli("run", "tok", str(cfg), str(root), "--fresh", check=True)
    return Path(root)


def run_dir(out, name):
    return Path(out) / "runs" / "default" / "default" / name


def metrics(out, name):
    return [json.loads(line) for line in (run_dir(out, name) / "metrics.jsonl").read_text().splitlines()]


def status(out, name):
    return json.loads((run_dir(out, name) / "status.json").read_text())


def history(out, name):
    path = run_dir(out, name) / "config_history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def resolved(out, name):
    return yaml.safe_load((run_dir(out, name) / "config.yaml").read_text())


def one_line_error(proc, fragment):
    """Exit 2 and one line on stderr besides the log, containing ``fragment``; returns the line."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("[theseus]")]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tokenize(tmp_path_factory.mktemp("changes"))


@pytest.fixture(scope="module")
def gpt(out):
    cfg = out.parent / "changes.yaml"
    run_cli("configure", "gpt/train/pretrain", str(cfg), *TINY, "training.steps=8", check=True)
    return cfg


def test_vocab_size_follows_the_data_and_is_recorded(out, gpt):
    assert yaml.safe_load(gpt.read_text())["architecture"]["vocab_size"] is None
    run_cli("run", "base", str(gpt), str(out), check=True)
    assert resolved(out, "base")["architecture"]["vocab_size"] == 320  # 259 byte ids, rounded up to 64s
    log = (run_dir(out, "base") / "log.txt").read_text()
    assert "architecture.vocab_size follows the data: 259 ids, rounded up to 320" in log
    start = history(out, "base")
    assert [r["event"] for r in start] == ["start"] and start[0]["config"]["architecture"]["vocab_size"] == 320
    again = run_cli("run", "base", str(gpt), str(out), check=True)  # the null in the YAML matches the 320 recorded
    assert "already completed" in again.stderr


def test_a_completed_run_continues_to_a_longer_budget_on_a_rebuilt_schedule(out, gpt):
    before = metrics(out, "base")
    run_cli("run", "long", str(gpt), str(out), "training.steps=16", check=True)  # never shorter: the reference
    proc = run_cli("run", "base", str(gpt), str(out), "training.steps=16", check=True)
    assert "config changed from step 8 on: training.steps (8 -> 16)" in proc.stderr
    after = metrics(out, "base")
    assert [r["step"] for r in after] == list(range(2, 17, 2))
    assert after[: len(before)] == before  # the first 8 steps are kept as they were
    reference = {r["step"]: r["lr"] for r in metrics(out, "long")}
    for record in after[len(before):]:  # the schedule is the 16-step one from step 9 on
        assert record["lr"] == pytest.approx(reference[record["step"]], rel=1e-6), record["step"]
    st = status(out, "base")
    assert st["state"] == "completed" and st["step"] == 16 and st["attempt"] == 2
    assert resolved(out, "base")["training"]["steps"] == 16
    change = history(out, "base")[-1]
    assert change["event"] == "change" and change["step"] == 8
    assert change["changes"] == {"training.steps": [8, 16]} and "training.steps=16" in change["argv"]


def test_a_fixed_key_change_is_refused_naming_it(out, gpt):
    path = run_dir(out, "base")
    kept = [(path / name).read_bytes() for name in ("config.yaml", "config_history.jsonl", "status.json")]
    line = one_line_error(
        run_cli("run", "base", str(gpt), str(out), "training.steps=16", "architecture.n_layers=3",
                "training.seed=1", "optimization.lr=1e-3"),
        "already exists with a different config: architecture.n_layers (2 -> 3), training.seed (0 -> 1) "
        "cannot change under a run",
    )
    assert "optimization.lr" not in line  # changeable keys are not the problem
    assert [(path / name).read_bytes() for name in ("config.yaml", "config_history.jsonl", "status.json")] == kept


def test_restore_continues_from_an_earlier_checkpoint_with_a_lower_lr(out, gpt):
    ckpts = run_dir(out, "base") / "checkpoints"
    one_line_error(run_cli("restore", "base", "8", str(out), "architecture.n_embd=64"),
                   "architecture.n_embd (32 -> 64) cannot change under run base")
    assert sorted(p.name for p in ckpts.iterdir() if p.name.isdigit()) == ["12", "16", "4", "8"]  # nothing moved

    before = {r["step"]: r["lr"] for r in metrics(out, "base")}
    run_cli("restore", "base", "8", str(out), "optimization.lr=1e-3", check=True)
    after = {r["step"]: r["lr"] for r in metrics(out, "base")}
    assert sorted(after) == list(range(2, 17, 2))
    for step in range(10, 17, 2):  # the same schedule, scaled by the new peak
        assert after[step] == pytest.approx(before[step] / 3, rel=1e-5)
    assert after[8] == before[8]
    restore = history(out, "base")[-1]
    assert restore["event"] == "restore" and restore["step"] == 8
    assert restore["changes"] == {"optimization.lr": [0.003, 0.001]}
    assert resolved(out, "base")["optimization"]["lr"] == 0.001
    aside = [p for p in ckpts.iterdir() if p.name.startswith(".superseded")]
    assert len(aside) == 1 and sorted(p.name for p in aside[0].iterdir()) == ["12", "16"]


def test_changed_data_is_refused_then_continued_with_accept_data_change(tmp_path):
    root = tokenize(tmp_path / "drift")
    cfg = tmp_path / "drift.yaml"
    run_cli("configure", "gpt/train/pretrain", str(cfg), *TINY, "training.steps=4", check=True)
    run_cli("run", "d", str(cfg), str(root), check=True)
    shutil.rmtree(root / "data" / "shakespeare")
    tokenize(root, "data.val_fraction=0.5")

    line = one_line_error(run_cli("run", "d", str(cfg), str(root), "training.steps=6"), "is not the data run d started on")
    assert "--accept-data-change" in line
    proc = run_cli("run", "d", str(cfg), str(root), "training.steps=6", "--accept-data-change", check=True)
    assert "continuing run d on changed data (--accept-data-change)" in proc.stderr
    assert [r["step"] for r in metrics(root, "d")] == [2, 4, 6]
    events = history(root, "d")
    assert [(e["event"], e["step"]) for e in events] == [("start", 0), ("change", 4), ("data", 4)]
    assert "val_fraction 0.34 -> 0.5" in events[-1]["data"]["shakespeare"]
    recorded = json.loads((run_dir(root, "d") / "job.json").read_text())["data"]["shakespeare"]
    assert recorded["settings"]["val_fraction"] == 0.5  # the new data is what later resumes are checked against
    run_cli("run", "d", str(cfg), str(root), "training.steps=6", check=True)


def test_a_step_that_cannot_fit_in_memory_is_one_line_with_the_estimate(out, gpt):
    before = sorted(out.rglob("*"))
    line = one_line_error(
        run_cli("run", "huge", str(gpt), str(out), "architecture.block_size=100000", "training.val_batches=0"),
        "a training step needs at least",
    )
    assert "GiB per device (activations of 1 sequence x 100000 tokens" in line and "a device has" in line
    assert sorted(out.rglob("*")) == before
