"""Experiment tracking through the CLI: W&B (offline files on disk) and TensorBoard event files.

One tiny GPT run trains with both trackers on, is continued from an earlier checkpoint
(`theseus restore`, a resume of the same run) and then started over with `--fresh`. The
W&B files are read back record by record (W&B's own log format: 32 KiB blocks of
length-prefixed chunks, each record a protobuf); the TensorBoard files with TensorBoard's
own reader.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from clihelp import REPO, run_cli, tokenize_tiny_shakespeare

pytest.importorskip("wandb")
pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

from wandb.proto import wandb_internal_pb2  # noqa: E402

TINY = [
    "architecture.vocab_size=320", "architecture.n_layers=1", "architecture.n_embd=32", "architecture.n_head=2",
    "architecture.block_size=32", "training.batch_size=8", "training.steps=4", "training.log_every=2",
    "training.val_every=0", "training.val_batches=1", "checkpoint.every_steps=2",
    "logging.wandb=true", "logging.tensorboard=true",
]
W_AND_B_BLOCK = 32 * 1024
CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, kind (1 full, 2 first, 3 middle, 4 last)


def wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of a ``run-<id>.wandb`` file."""
    raw = path.read_bytes()
    assert raw[:4] == b":W&B", path
    pos, pending = 7, b""
    while pos + CHUNK_HEADER.size <= len(raw):
        if W_AND_B_BLOCK - pos % W_AND_B_BLOCK < CHUNK_HEADER.size:  # block trailer padding
            pos += W_AND_B_BLOCK - pos % W_AND_B_BLOCK
            continue
        _, length, kind = CHUNK_HEADER.unpack_from(raw, pos)
        data = raw[pos + CHUNK_HEADER.size : pos + CHUNK_HEADER.size + length]
        pos += CHUNK_HEADER.size + length
        pending = data if kind in (1, 2) else pending + data
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def wandb_runs(run_dir: Path) -> list[dict[str, Any]]:
    """Each offline W&B run under the run directory: id, name, config and logged history, oldest first."""
    out = []
    for folder in sorted((run_dir / "wandb").glob("offline-run-*")):
        (log_file,) = folder.glob("run-*.wandb")
        found: dict[str, Any] = {"history": {}}
        for record in wandb_records(log_file):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                found["id"], found["name"] = record.run.run_id, record.run.display_name
                found["config"] = {i.key: json.loads(i.value_json) for i in record.run.config.update}
            elif kind == "history":
                row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                found["history"][int(row["_step"])] = row
        out.append(found)
    return out


def tensorboard_scalars(run_dir: Path, tag: str) -> dict[int, float]:
    """Step -> value of a scalar tag, as TensorBoard shows it."""
    acc = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    events = acc.Scalars(tag)
    steps = [e.step for e in events]
    assert len(steps) == len(set(steps)), f"TensorBoard shows a step twice: {steps}"
    return {e.step: e.value for e in events}


def metrics(run_dir: Path) -> dict[int, dict[str, Any]]:
    """Step -> metrics.jsonl record."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in records}


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output root with three tokenized plays and the tracked run's config."""
    root = tmp_path_factory.mktemp("tracking")
    tokenize_tiny_shakespeare(root)
    run_cli("configure", "gpt/train/pretrain", str(root / "gpt.yaml"), *TINY, check=True)
    return root


def test_wandb_and_tensorboard_follow_the_run_through_resume_and_fresh(out: Path, tmp_path: Path) -> None:
    env = {f"WANDB_{k}_DIR": str(tmp_path / k.lower()) for k in ("CACHE", "CONFIG", "DATA", "ARTIFACT")}
    run_dir = out / "runs" / "default" / "default" / "gpt"

    run_cli("run", "gpt", str(out / "gpt.yaml"), str(out), env=env, check=True)
    run_id = json.loads((run_dir / "job.json").read_text())["run_id"]
    (first,) = wandb_runs(run_dir)
    assert first["id"] == run_id and first["name"] == "gpt"
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert {k: v for k, v in first["config"].items() if k != "_wandb"} == resolved
    assert first["config"]["architecture"]["n_embd"] == 32 and first["config"]["job"] == "gpt/train/pretrain"
    logged = metrics(run_dir)
    assert sorted(first["history"]) == sorted(logged) == [2, 4]
    for step, row in first["history"].items():
        for key in ("loss", "lr", "grad_norm", "val_loss"):
            assert row.get(key) == pytest.approx(logged[step].get(key)), (step, key)
    assert tensorboard_scalars(run_dir, "loss") == pytest.approx({s: r["loss"] for s, r in logged.items()})

    # continuing the run from step 2 resumes the same W&B run and replaces TensorBoard's step 4
    run_cli("restore", "gpt", "2", str(out), env=env, check=True)
    assert json.loads((run_dir / "job.json").read_text())["run_id"] == run_id
    first_again, resumed = wandb_runs(run_dir)
    assert first_again == first and resumed["id"] == run_id and sorted(resumed["history"]) == [4]
    relogged = metrics(run_dir)
    assert sorted(relogged) == [2, 4]
    assert tensorboard_scalars(run_dir, "loss") == pytest.approx({s: r["loss"] for s, r in relogged.items()})
    assert set(tensorboard_scalars(run_dir, "grad_norm")) == {2, 4}

    # --fresh starts a new run: a new id, a new W&B run, fresh event files
    run_cli("run", "gpt", str(out / "gpt.yaml"), str(out), "--fresh", env=env, check=True)
    fresh_id = json.loads((run_dir / "job.json").read_text())["run_id"]
    assert fresh_id != run_id and len(fresh_id) == 8
    (fresh,) = wandb_runs(run_dir)
    assert fresh["id"] == fresh_id and sorted(fresh["history"]) == [2, 4]
    assert set(tensorboard_scalars(run_dir, "loss")) == {2, 4}


def test_a_tracker_without_its_library_is_one_line_and_exit_2(out: Path, tmp_path: Path) -> None:
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "tensorboardX.py").write_text("raise ImportError('hidden for this test')\n")
    proc = run_cli("run", "notb", str(out / "gpt.yaml"), str(out), "logging.wandb=false",
                   env={"PYTHONPATH": f"{hide}:{REPO}"})
    assert proc.returncode == 2, proc.stderr
    assert "logging.tensorboard=true needs tensorboardX: pip install 'theseus[tensorboard]'" in proc.stderr
    assert "Traceback" not in proc.stderr
