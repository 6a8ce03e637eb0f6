"""The data jobs through `theseus configure` / `theseus run` subprocesses: SIGKILL resume, no-op reruns, exit 2."""

import json
import os
import signal
import time

import psutil
import pytest
import yaml
from datahelp import REGISTER, run_cli, run_tokenize, start_cli, write_corpus, write_job_yaml

from theseus.data.tokenize import TokenizeBlockwiseDatasetJob, TokenizeVariableDatasetJob

DELAY = {"THESEUS_TOKENIZE_CHUNK_DELAY": "0.1"}  # each worker sleeps this long per chunk


JOBS = {
    "data/tokenize_variable_dataset": TokenizeVariableDatasetJob,
    "data/tokenize_blockwise_dataset": TokenizeBlockwiseDatasetJob,
}


def assert_user_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in last, last


def test_configure_and_run_shakespeare(tmp_path):
    cfg = tmp_path / "tok.yaml"
    configured = run_cli(
        "configure",
        "data/tokenize_variable_dataset",
        str(cfg),
        "data.dataset=shakespeare",
        "--load",
        REGISTER,
    )
    assert configured.returncode == 0, configured.stderr
    written = yaml.safe_load(cfg.read_text())
    assert written["job"] == "data/tokenize_variable_dataset"
    assert written["data"]["dataset"] == "shakespeare" and written["tokenizer"]["backend"] == "byte"
    assert written["data"]["shakespeare"]["edition"] == "modern" and "fineweb" in written["data"]
    out = tmp_path / "OUT"
    proc = run_cli("run", "tok", str(cfg), str(out), "--load", REGISTER)
    assert proc.returncode == 0, proc.stderr
    directory = out / "data" / "shakespeare"
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["documents"] == 42 and meta["train"]["tokens"] > 4_000_000 and meta["val"]["documents"] >= 1
    assert (directory / "train.bin").stat().st_size == 2 * meta["train"]["tokens"]
    other = run_cli("run", "tok2", str(cfg), str(out), "--load", REGISTER)
    assert other.returncode == 0 and "nothing to do" in other.stderr


@pytest.mark.parametrize(
    "job, extra, signum",
    [
        ("data/tokenize_variable_dataset", ["data.workers=2"], signal.SIGKILL),
        ("data/tokenize_blockwise_dataset", ["data.workers=1", "architecture.block_size=32"], signal.SIGKILL),
        ("data/tokenize_variable_dataset", ["data.workers=2"], signal.SIGTERM),
    ],
    ids=["variable-kill", "blockwise-kill", "variable-preempt"],
)
def test_stopped_mid_run_then_resumed_matches_an_uninterrupted_run(tmp_path, job, extra, signum):
    glob, _ = write_corpus(tmp_path / "corpus", n=200)
    overrides = (
        "data.dataset=text_files",
        f"data.text_files.paths=[{glob}]",
        "data.chunk_chars=1500",
        "data.val_fraction=0.1",
        *extra,
    )
    cfg = write_job_yaml(tmp_path / "tok.yaml", job, JOBS[job], *overrides)
    reference = tmp_path / "ref"
    run_tokenize(JOBS[job], reference, *overrides, "data.workers=1")  # same bytes whatever the workers

    out = tmp_path / "out"
    directory = out / "data" / "text_files"
    proc = start_cli("run", "tok", str(cfg), str(out), "--load", REGISTER, env=DELAY)
    deadline = time.time() + 60
    done = 0
    while time.time() < deadline and done < 40 and not (directory / "meta.json").exists():
        try:
            done = json.loads((directory / "progress.json").read_text())["counters"]["documents"]
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    assert done >= 40, proc.stderr.read() if proc.poll() is not None else "no progress"
    children = psutil.Process(proc.pid).children(recursive=True)
    if signum == signal.SIGKILL:
        proc.send_signal(signum)  # the parent alone: its workers must notice and exit
    else:
        os.killpg(proc.pid, signum)  # the whole group, as a cluster scheduler does
    proc.wait(timeout=60)
    assert not (directory / "meta.json").exists()
    if signum == signal.SIGTERM:  # preempted: state committed at the stop, exit code 75
        assert proc.returncode == 75, proc.stderr.read()
        progress = json.loads((directory / "progress.json").read_text())
        assert progress["bytes"]["train.bin"] == (directory / "train.bin").stat().st_size
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, "encoding workers outlived their parent"

    resumed = run_cli("run", "tok", str(cfg), str(out), "--load", REGISTER)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    for name in sorted(p.name for p in (reference / "data" / "text_files").glob("*.bin")):
        assert (directory / name).read_bytes() == (reference / "data" / "text_files" / name).read_bytes(), (
            name
        )
    meta, ref_meta = (
        json.loads((d / "meta.json").read_text()) for d in (directory, reference / "data" / "text_files")
    )
    meta.pop("created_at"), ref_meta.pop("created_at")
    assert meta == ref_meta and meta["documents"] == 200
    assert not (directory / "progress.json").exists()


def test_user_errors_exit_2_with_one_clear_line(tmp_path):
    key = "data/tokenize_variable_dataset"
    cfg = write_job_yaml(tmp_path / "tok.yaml", key, JOBS[key])
    out = str(tmp_path / "out")
    cases = [
        (["data.dataset=shakespear"], {}, ["unknown dataset 'shakespear'", "did you mean shakespeare"]),
        (
            ["data.dataset=text_files", f"data.text_files.paths=[{tmp_path}/none.txt]"],
            {},
            ["matches no file"],
        ),
        (
            ["tokenizer.backend=tiktoken", "tokenizer.name=r50k_base"],
            {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"},
            ["not available offline", "tokenizer.path="],
        ),
    ]
    for number, (overrides, env, fragments) in enumerate(cases):
        proc = run_cli("run", f"bad{number}", str(cfg), out, *overrides, "--load", REGISTER, env=env)
        assert_user_error(proc, *fragments)
    assert not (tmp_path / "out" / "data").exists() or not any((tmp_path / "out" / "data").iterdir())
