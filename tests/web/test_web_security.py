"""The dashboard fails closed: bind rules, access token, traversal, CSRF, escaping, guarded stop."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from clihelp import REPO, run_cli, start_cli
from webhelp import free_port, request, start_web, write_run

COUNTER = str(REPO / "tests" / "foundation" / "counter_job.py")
MARKER = "TOP-SECRET-MARKER-41"
XSS_NAME = "<img src=x onerror=alert(1)>"
XSS_ERROR = "<script>alert(1)</script>"
TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """An output root with two runs, a hostile run name, and secrets beside and outside it."""
    base = tmp_path_factory.mktemp("websec")
    root = base / "out"
    write_run(root, "small", 120)
    run = write_run(root, XSS_NAME, 10, state="failed")
    run.write_status(error=XSS_ERROR, job="<script>alert(2)</script>")
    (root / "secret.txt").write_text(MARKER)
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(MARKER)
    (outside / "config.yaml").write_text(f"leak: {MARKER}\n")
    # a run directory that is a symlink out of OUT, and a run whose log is a symlink out of OUT
    (root / "runs" / "default" / "default" / "escape").symlink_to(outside)
    linked = write_run(root, "linked", 5)
    linked.log_path.unlink()
    linked.log_path.symlink_to(outside / "secret.txt")
    return root


@pytest.fixture(scope="module")
def server(out):
    srv = start_web(out)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def token_server(out):
    srv = start_web(out, "--token", TOKEN)
    yield srv
    srv.stop()


ROUTES = [
    ("GET", "/"),
    ("GET", "/runs-table"),
    ("GET", "/data"),
    ("GET", "/compare?run=default/default/small"),
    ("GET", "/runs/default/default/small"),
    ("POST", "/runs/default/default/small/stop"),
    ("GET", "/api/runs"),
    ("GET", "/api/runs/default/default/small/metrics"),
    ("GET", "/api/runs/default/default/small/metrics?since=0"),
    ("GET", "/api/runs/default/default/small/log"),
    ("GET", "/static/styles.css"),
    ("GET", "/static/fonts/ibm-plex-sans-latin-400-normal.woff2"),
    ("GET", "/static/vendor/uPlot.iife.min.js"),
    ("GET", "/no/such/page"),
]


def test_non_loopback_bind_without_token_refuses_to_start(out):
    port = free_port()
    proc = run_cli("web", str(out), "--host", "0.0.0.0", "--port", str(port), timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--token" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    with pytest.raises(OSError):
        request(port, "GET", "/")


def test_missing_out_and_busy_port_are_one_line(out, tmp_path):
    missing = run_cli("web", str(tmp_path / "nowhere"), "--port", "0", timeout=60)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "does not exist" in missing.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = run_cli("web", str(out), "--port", str(busy.getsockname()[1]), timeout=60)
    assert taken.returncode == 2 and taken.stderr.count("\n") == 1 and "cannot listen" in taken.stderr, taken.stderr


def test_short_token_is_refused(out):
    proc = run_cli("web", str(out), "--token", "short", "--port", str(free_port()), timeout=60)
    assert proc.returncode == 2 and "at least 16 characters" in proc.stderr


def test_with_a_token_every_route_without_it_is_refused(token_server):
    for method, path in ROUTES:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                        {"Cookie": f"theseus_token_{token_server.port}=wrong-token-0123456789"}):
            resp = request(token_server.port, method, path, headers=headers, body="" if method == "POST" else None)
            assert resp.status in (401, 403), (method, path, headers, resp.status)
            assert "theseus" not in resp.body.lower() or "unauthorized" in resp.body, (path, resp.body[:200])
        wrong = path + ("&" if "?" in path else "?") + "token=wrong-token-0123456789"
        assert request(token_server.port, "GET", wrong).status == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for method, path in ROUTES:
        if method == "GET" and not path.startswith("/no/"):
            assert request(token_server.port, "GET", path, headers=bearer).status == 200, path


def test_token_in_the_url_sets_a_cookie_and_is_dropped_from_the_url(token_server):
    resp = request(token_server.port, "GET", f"/runs/default/default/small?token={TOKEN}&x=1")
    assert resp.status == 303
    assert resp.headers["location"] == "/runs/default/default/small?x=1"
    cookie = resp.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    again = request(token_server.port, "GET", "/runs/default/default/small", headers={"Cookie": cookie.split(";")[0]})
    assert again.status == 200 and "small" in again.body
    # a token in the URL of a POST does not authorize it
    assert request(token_server.port, "POST", f"/runs/default/default/small/stop?token={TOKEN}", body="").status == 401


def test_generated_token_is_printed_once_and_required(out):
    srv = start_web(out, "--generate-token")
    try:
        match = re.search(r"\?token=([A-Za-z0-9_-]+)", srv.banner)
        assert match, srv.banner
        assert srv.get("/").status == 401
        assert srv.get("/", headers={"Authorization": f"Bearer {match.group(1)}"}).status == 200
    finally:
        srv.stop()
    assert match.group(1) not in srv.proc.stdout.read()  # printed once, not repeated


TRAVERSALS = [
    "/runs/default/default/..",
    "/runs/default/../default",
    "/runs/../../../secret.txt",
    "/runs/%2e%2e/%2e%2e/%2e%2e",
    "/runs/default/default/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/runs/default/default/..%2F..%2F..%2Fsecret.txt",
    "/runs/default/default/escape",
    "/runs/default/default/%00",
    "/runs/default/default/.hidden",
    "/runs/default/default//etc/passwd",
    "/api/runs/default/default/escape/log",
    "/api/runs/default/default/escape/metrics",
    "/api/runs/%2e%2e/%2e%2e/%2e%2e/log",
    "/api/runs/default/default/..%2f..%2f..%2fsecret.txt/log",
    "/static/../secret.txt",
    "/static/%2e%2e/%2e%2e/app.py",
    "/static/..%2f..%2fapp.py",
    "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt",
    "/static//etc/passwd",
    "/static/fonts/../../app.py",
    "/compare?run=../../../secret.txt",
    "/compare?run=default/default/..",
    "/compare?run=default/default/escape",
    "/compare?run=%2Fetc%2Fpasswd",
    "/compare?run=/etc/passwd/x",
    "/compare?run=default%2F..%2F..%2Fsecret.txt",
    "/api/runs/default/default/small/metrics?since=-1",
    "/api/runs/default/default/small/metrics?since=..%2F..%2Fsecret.txt",
    "/api/runs/default/default/small/metrics?points=/etc/passwd",
    "/api/runs/default/default/small/log?since=%2Fetc%2Fpasswd",
]


def test_traversal_in_paths_and_parameters_is_refused(server, out):
    for path in TRAVERSALS:
        resp = server.get(path)
        assert resp.status in (400, 404), (path, resp.status)
        assert MARKER not in resp.body, path
    absolute = server.get("/" + quote(str(out / "secret.txt")))
    assert absolute.status == 404 and MARKER not in absolute.body


def test_a_symlink_out_of_out_is_not_followed(server):
    page = server.get("/runs/default/default/linked")
    assert page.status == 200 and MARKER not in page.body
    log = server.get("/api/runs/default/default/linked/log?since=0")
    assert MARKER not in log.body
    assert MARKER not in server.get("/").body


def test_script_in_names_and_messages_renders_inert(server):
    listing = server.get("/").body
    page = server.get("/runs/default/default/" + quote(XSS_NAME, safe="")).body
    for body in (listing, page):
        assert "<img src=x" not in body and "<script>alert" not in body
        assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert quote(XSS_NAME, safe="") in listing  # the link encodes the name as one path segment
    headers = server.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_loopback_server_refuses_foreign_host_names(server):
    resp = request(server.port, "GET", "/", headers={"Host": "attacker.example"})
    assert resp.status == 403


def _counter_run(out, name, steps=2000):
    """A real run (the counter job of the lifecycle tests) that keeps running until stopped."""
    cfg = Path(out) / f"{name}.yaml"
    run_cli("configure", "test/counter", str(cfg), f"counter.steps={steps}", "counter.sleep=0.05",
            "--load", COUNTER, check=True)
    proc = start_cli("run", name, str(cfg), str(out), "--load", COUNTER)
    status = Path(out) / "runs" / "default" / "default" / name / "status.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if status.is_file() and json.loads(status.read_text()).get("step"):
            return proc, status
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    raise AssertionError("the counter run never reported a step")


def _csrf(server, path):
    page = server.get(path).body
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_stop_needs_post_and_the_csrf_token(server, out):
    proc, status = _counter_run(out, "guarded")
    path = "/runs/default/default/guarded"
    try:
        token = _csrf(server, path)
        assert server.get(path + "/stop").status == 405
        assert server.post(path + "/stop", "").status == 403
        assert server.post(path + "/stop", "csrf=wrong").status == 403
        assert server.post(path + "/stop", "", headers={"X-CSRF-Token": "wrong"}).status == 403
        foreign = {"Origin": "http://attacker.example"}
        assert server.post(path + "/stop", f"csrf={token}", headers=foreign).status == 403
        time.sleep(0.3)
        assert proc.poll() is None, "a refused POST stopped the run"
        resp = server.post(path + "/stop", f"csrf={token}", headers={"Origin": server.base})
        assert resp.status == 303 and "stopped=" in resp.headers["location"]
        assert proc.wait(timeout=60) == 75
        assert json.loads(status.read_text())["state"] == "preempted"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_stop_refuses_a_recycled_pid(server, out):
    """status.json names a live process that is not the run: younger than the run, or not the lock holder."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = write_run(out, "recycled", 10, state="running", pid=sleeper.pid, started_at=time.time() - 3600)
        run.lock_path.write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename}))
        token = _csrf(server, "/runs/default/default/recycled")
        resp = server.post("/runs/default/default/recycled/stop", f"csrf={token}")
        assert resp.status == 409 and "another process" in resp.body
        run.write_status(started_at=time.time())
        run.lock_path.write_text("")  # the lock was released: no live holder
        resp = server.post("/runs/default/default/recycled/stop", f"csrf={token}")
        assert resp.status == 409 and "lock" in resp.body
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_missing_web_extra_is_one_line(tmp_path):
    code = ("import sys; sys.modules['uvicorn'] = None; from theseus.cli import main; "
            f"sys.argv = ['theseus', 'web', {str(tmp_path)!r}]; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'theseus[web]'" in lines[0], proc.stderr


def test_help_does_not_import_the_web_stack():
    code = ("import sys; from theseus.cli import main; sys.argv = ['theseus', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('starlette', 'uvicorn', 'jax', 'theseus.web.app') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and "web" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"
