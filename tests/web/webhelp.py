"""Helpers for the dashboard tests: a real `theseus web` subprocess, raw HTTP, run directories, Chromium."""

import http.client
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from clihelp import REPO, start_cli

from theseus.rundir import RunDirectory

CHROMIUM = os.environ.get("THESEUS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("THESEUS_TEST_ARTIFACTS", REPO / "test-artifacts")) / "web"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str

    def json(self):
        return json.loads(self.body)


def request(port, method, path, *, headers=None, body=None, host="127.0.0.1") -> Response:
    """One raw HTTP request: the path goes on the wire exactly as given (no normalisation)."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        sent = {"Host": f"127.0.0.1:{port}", **(headers or {})}
        data = body.encode() if isinstance(body, str) else body
        if data is not None:
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
            sent["Content-Length"] = str(len(data))
        for key, value in sent.items():
            conn.putheader(key, value)
        conn.endheaders(data)
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode(errors="replace"))
    finally:
        conn.close()


@dataclass
class Server:
    """A running `theseus web` process."""

    proc: subprocess.Popen
    port: int
    banner: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path, **kw) -> Response:
        return request(self.port, "GET", path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def post(self, path, body="", **kw) -> Response:
        return request(self.port, "POST", path, body=body, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_web(out, *args, headers=None, env=None) -> Server:
    """Start `theseus web OUT --port 0 ARGS...` (any free port, read from its banner) and wait until it answers."""
    proc = start_cli("web", str(out), "--port", "0", *args, env=env)
    banner = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
    if not match:
        proc.kill()
        raise AssertionError(f"theseus web printed {banner!r}; stderr: {proc.stderr.read()}")
    server = Server(proc, int(match.group(1)), banner, dict(headers or {}))
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                return server
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"theseus web exited {proc.returncode}: {proc.stderr.read()}") from None
            time.sleep(0.05)
    server.stop()
    raise AssertionError("theseus web did not start listening")


def write_run(root, name, n, *, state="completed", project="default", group="default", val_every=50,
              pid=None, started_at=None, host=None) -> RunDirectory:
    """A run directory written through RunDirectory: ``n`` metric records, status, log, config."""
    run = RunDirectory.of(root, name, project, group)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(f"job: gpt/train/pretrain\ntraining:\n  steps: {n}\n")
    t0 = (started_at or time.time()) - n * 0.01
    lines = []
    for step in range(1, n + 1):
        record = {
            "step": step, "loss": 5.0 * math.exp(-3.0 * step / n) + 0.05 * math.sin(step), "lr": 3e-4,
            "grad_norm": 1.0 + 0.1 * math.cos(step), "tokens": step * 512, "tokens_per_s": 50000.0 + step % 7,
            "mfu": 0.21, "mfu_peak_source": "measured", "time": t0 + step * 0.01,
        }
        if val_every and step % val_every == 0:
            record["val_loss"] = record["loss"] + 0.1
        lines.append(json.dumps(record, sort_keys=True))
    run.metrics_path.write_text("".join(line + "\n" for line in lines))
    run.log_path.write_text("".join(f"{name} log line {i}\n" for i in range(200)))
    run.write_status(
        state=state, job="gpt/train/pretrain", name=name, project=project, group=group, step=n, total_steps=n,
        host=host or socket.gethostname(), pid=pid or 1, started_at=started_at or t0,
        ended_at=None if state == "running" else time.time(), heartbeat=time.time(), attempt=1, error=None,
    )
    return run


def launch_chromium(playwright):
    """Debian's Chromium through Playwright; skipped when missing, except in CI."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("THESEUS_CI"):
            raise AssertionError(f"{CHROMIUM} is missing: .ci/run installs the chromium package")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def require_playwright():
    """The playwright module; skipped when missing, except in CI."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("THESEUS_CI"):
            raise
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    return sync_playwright


def artifacts() -> Path:
    """The folder test screenshots go to (gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def start_nice(*args) -> subprocess.Popen:
    """`theseus ARGS...` in the background at low CPU priority (it must not slow the server under test)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        ["nice", "-n", "10", sys.executable, "-m", "theseus.cli", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env,
    )
