"""Fault injection through the real CLI: SIGKILL at random moments, damaged checkpoints (issue 8, items 4, 6, 11).

After every kill the run's checkpoints and metrics must be a faithful prefix of an uninterrupted
run's, and once it finishes they must equal it. Each way of damaging the newest checkpoint
must make the resume fall back to the previous one, say so, and still end identical.
"""

import json
import os
import random
import shutil
import time

import pytest
from clihelp import run_cli, start_cli
from relhelp import (
    checkpoint_arrays,
    comparable,
    gpt_yaml,
    metrics,
    one_line_error,
    run_dir,
    same_arrays,
    status,
    tokenize,
)

from theseus import checkpoint

pytestmark = pytest.mark.faults

STEPS = 24
EVERY = 4
KILLS = 20


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tokenize(tmp_path_factory.mktemp("faults"))


@pytest.fixture(scope="module")
def reference(out):
    """One uninterrupted run that keeps every checkpoint: what each faulted run must equal."""
    cfg = gpt_yaml(out.parent / "reference.yaml", f"training.steps={STEPS}", "checkpoint.keep_last=100")
    run_cli("run", "reference", str(cfg), str(out), check=True)
    ckpts = run_dir(out, "reference") / "checkpoints"
    return {
        "yaml": cfg,
        "metrics": comparable(metrics(out, "reference")),
        "arrays": {step: checkpoint_arrays(ckpts / str(step)) for step in range(EVERY, STEPS + 1, EVERY)},
    }


def _phase(out, name, seen_metrics):
    """Where the run is right now (checked just before the kill)."""
    ckpts = run_dir(out, name) / "checkpoints"
    names = os.listdir(ckpts) if ckpts.is_dir() else []
    if not seen_metrics:
        return "at start-up"
    if not checkpoint.complete_steps(ckpts):
        return "before the first checkpoint"
    if any("orbax-checkpoint-tmp" in n for n in names) or any(
        n.isdigit() and not (ckpts / n / "checksums.json").exists() for n in names
    ):
        return "during a save"
    return "while training"


def _kill_when(proc, out, name, trigger):
    """SIGKILL ``proc`` when ``trigger`` fires; returns the phase it was killed in (None: it finished)."""
    kind, value = trigger
    ckpts = run_dir(out, name) / "checkpoints"
    first = max((r["step"] for r in metrics(out, name)), default=0)
    launched, started = time.time(), None
    while proc.poll() is None:
        steps = [r["step"] for r in metrics(out, name)]
        new = [s for s in steps if s > first] if len(steps) > 0 else []
        if kind == "step":
            fire = any(s >= first + value for s in new)
        elif kind == "save":
            names = os.listdir(ckpts) if ckpts.is_dir() else []
            fire = any("orbax-checkpoint-tmp" in n for n in names) or any(
                n.isdigit() and not (ckpts / n / "checksums.json").exists() for n in names
            )
        elif kind == "delay":  # a random moment once training runs
            if new and started is None:
                started = time.time()
            fire = started is not None and time.time() - started >= value
        else:  # a random moment from the launch, start-up included
            fire = time.time() - launched >= value
        if fire:
            phase = _phase(out, name, bool(new))
            proc.kill()
            proc.wait()
            return phase
        time.sleep(0.001)
    return None


def _check_faithful(out, name, reference, finished):
    """Checkpoints verify and equal the reference's; metrics are its prefix (all of it when finished)."""
    ckpts = run_dir(out, name) / "checkpoints"
    steps = checkpoint.complete_steps(ckpts)
    for step in steps:
        assert checkpoint.verify(ckpts, step) is None, step
        assert same_arrays(checkpoint_arrays(ckpts / str(step)), reference["arrays"][step]), step
    if (ckpts / "latest").exists():
        assert int((ckpts / "latest").read_text()) in steps
    got = comparable(metrics(out, name))
    want = reference["metrics"] if finished else reference["metrics"][: len(got)]
    assert got == want
    if finished:
        assert steps == list(range(STEPS - 2 * EVERY, STEPS + 1, EVERY))  # keep_last=3
        assert status(out, name)["state"] == "completed"


def test_sigkill_at_random_moments_loses_and_changes_nothing(out, reference):
    cfg = gpt_yaml(out.parent / "faulted.yaml", f"training.steps={STEPS}", "checkpoint.keep_last=3")
    rng = random.Random(8)
    kills: list[str] = []
    name, runs = "faulted", 0
    while True:
        early = kills.count("before the first checkpoint") < 2
        if len(kills) >= KILLS and not early:
            run_cli("run", name, str(cfg), str(out), check=True)
            _check_faithful(out, name, reference, finished=True)
            break
        if early and checkpoint.complete_steps(run_dir(out, name) / "checkpoints"):
            runs += 1  # too late for a kill before the first checkpoint here: take a new run
            name = f"faulted-{runs}"
        if early:
            trigger = ("step", 2)
        else:
            trigger = rng.choice([("save", 0), ("save", 0), ("step", rng.randint(1, 6)),
                                  ("delay", rng.uniform(0.0, 0.6)), ("launch", rng.uniform(0.5, 3.0))])
        proc = start_cli("run", name, str(cfg), str(out))
        phase = _kill_when(proc, out, name, trigger)
        if phase is None:  # it finished first: check it, then fault a new run
            assert proc.returncode == 0, proc.stderr.read()
            _check_faithful(out, name, reference, finished=True)
            runs += 1
            name = f"faulted-{runs}"
            continue
        kills.append(phase)
        _check_faithful(out, name, reference, finished=False)
    counts = {p: kills.count(p) for p in set(kills)}
    print(f"{len(kills)} kills over {runs + 1} run(s): {counts}")
    assert len(kills) >= KILLS
    assert counts.get("during a save", 0) >= 3, counts


def _largest_state_file(step_dir):
    return max((p for p in (step_dir / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _truncate(step_dir):
    f = _largest_state_file(step_dir)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _overwrite(step_dir):
    f = _largest_state_file(step_dir)
    data = bytearray(f.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = bytes(64)
    f.write_bytes(bytes(data))


def _break_meta(step_dir):
    (step_dir / "meta" / "metadata").write_text('{"step": 16, "broken')


def _empty_state(step_dir):
    shutil.rmtree(step_dir / "state")
    (step_dir / "state").mkdir()


# newest first: the resume meets each as the newest checkpoint left and must fall back past it
DAMAGE = {24: _break_meta, 20: _empty_state, 16: _overwrite, 12: _truncate}


def test_each_kind_of_damaged_newest_checkpoint_falls_back_to_the_previous_one(out, reference):
    name = "damaged"
    shutil.copytree(run_dir(out, "reference"), run_dir(out, name))
    ckpts = run_dir(out, name) / "checkpoints"
    st = status(out, name)  # as if the process died right after its last checkpoint
    st.update(state="running", pid=2**22 + 12345)
    (run_dir(out, name) / "status.json").write_text(json.dumps(st))
    for step, damage in DAMAGE.items():
        damage(ckpts / str(step))

    listing = run_cli("checkpoints", name, str(out), "--verify", check=True).stdout
    for step in DAMAGE:
        assert any(line.split()[:1] == [str(step)] and "damaged" in line for line in listing.splitlines()), listing
    one_line_error(run_cli("restore", name, "16", str(out)), "checkpoint 16 of run damaged is damaged")

    proc = run_cli("run", name, str(reference["yaml"]), str(out), check=True)
    for step in DAMAGE:
        assert f"checkpoint {step} is damaged" in proc.stderr, proc.stderr
    assert "resumed from checkpoint 8 instead" in proc.stderr
    assert comparable(metrics(out, name)) == reference["metrics"]
    for step in range(EVERY, STEPS + 1, EVERY):
        assert checkpoint.verify(ckpts, step) is None
        assert same_arrays(checkpoint_arrays(ckpts / str(step)), reference["arrays"][step]), step
    aside = [p for p in ckpts.iterdir() if p.name.startswith(".damaged-")]
    assert len(aside) == 1 and sorted(os.listdir(aside[0])) == ["12", "16", "20", "24"]
