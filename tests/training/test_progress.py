"""Progress through the real CLI: a live bar with an ETA on a terminal (a real pseudo-terminal), periodic
plain lines through a pipe, for training and tokenization alike."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time

import pytest
from clihelp import REPO, TINY_SHAKESPEARE, run_cli

from theseus.progress import Pace, clock

TINY = [
    "architecture.n_layers=2", "architecture.n_embd=32", "architecture.n_head=2", "architecture.block_size=32",
    "training.batch_size=8", "training.log_every=4", "training.val_every=8", "training.val_batches=1",
    "training.steps=24",
]
ESCAPE = re.compile(r"\x1b\[")
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    tok, gpt = root / "tok.yaml", root / "gpt.yaml"
    run_cli("configure", "data/tokenize_variable_dataset", str(tok), *TINY_SHAKESPEARE, "data.chunk_chars=1000",
            check=True)
    run_cli("configure", "gpt/train/pretrain", str(gpt), *TINY, check=True)
    return tok, gpt


def in_a_terminal(args, cwd, timeout=240.0):
    """Run `theseus ARGS` with stdin, stdout and stderr on a real pseudo-terminal 120 columns wide; its output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "theseus.cli", *args], stdin=slave, stdout=slave, stderr=slave,
                            cwd=cwd, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal closed: the process is gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


def test_a_terminal_shows_a_live_bar_with_an_eta(configs, tmp_path):
    tok, gpt = configs
    tokenizing = in_a_terminal(["run", "tok", str(tok), "out"], tmp_path)
    assert re.search(r"tokenizing shakespeare .*3/3 docs .*ETA 0:00:00", CONTROL.sub("", tokenizing))
    assert "━" in tokenizing and "\x1b[?25l" in tokenizing  # rich's live display: a bar, the cursor hidden
    training = in_a_terminal(["run", "r", str(gpt), "out"], tmp_path)
    assert "\x1b[?25l" in training and "━" in training
    assert "compiling the training step" in training
    shown = CONTROL.sub("", training)
    assert re.search(r"\d+/24 steps", shown) and "ETA 0:" in shown and "steps/s" in shown
    assert "[theseus] step 24/24" in training and "run r completed" in training  # the log still prints


def test_a_pipe_gets_periodic_plain_lines(configs, tmp_path):
    tok, gpt = configs
    out = tmp_path / "out"
    every = {"THESEUS_PROGRESS_EVERY": "0"}  # a line at every update, to see them in a short test
    tokenizing = run_cli("run", "tok", str(tok), str(out), env=every, check=True).stderr
    lines = [line for line in tokenizing.splitlines() if "tokenizing shakespeare: " in line]
    assert [line.split(": ")[1].split(" docs")[0] for line in lines] == ["0/3", "1/3", "2/3", "3/3"]
    assert "ETA" in lines[-1] and "train tokens" in lines[-1]
    training = run_cli("run", "r", str(gpt), str(out), env=every, check=True).stderr
    assert "[theseus] training r: compiling the training step" in training
    steps = [line for line in training.splitlines() if re.match(r"\[theseus\] training r: \d+/24 steps", line)]
    assert len(steps) == 24 and "(100%)" in steps[-1] and "ETA 0:00:00" in steps[-1]
    assert "loss" in steps[-1]  # the figures of the last log step
    assert not ESCAPE.search(tokenizing + training)
    quiet = run_cli("run", "r2", str(gpt), str(out), check=True).stderr  # the default: one line per 30 s
    assert len(re.findall(r"training r2: \d+/24 steps", quiet)) == 1


def test_the_eta_leaves_out_what_came_before_the_first_update():
    pace = Pace(total=100)
    pace.update(10, now=50.0)  # step 10 after a long compilation
    assert pace.eta() is None
    pace.update(30, now=60.0)  # then 2 steps a second
    assert pace.rate() == 2.0 and pace.eta() == 35.0
    assert clock(3725) == "1:02:05"
