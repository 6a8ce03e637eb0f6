"""`theseus web` against a real OUT: a live tiny GPT run, over HTTP and in headless Chromium.

The module shares one output root and one server. The live run trains until
`test_stop_ends_the_run_preempted` (the last test) stops it through the dashboard.
"""

import json
import os
import re
import time
from pathlib import Path

import pytest
from clihelp import run_cli, tokenize_tiny_shakespeare
from webhelp import artifacts, launch_chromium, require_playwright, start_nice, start_web, write_run

from theseus.web.app import fmt_number

TINY = [
    "architecture.vocab_size=320", "architecture.n_layers=2", "architecture.n_embd=32",
    "architecture.n_head=2", "architecture.block_size=32", "training.batch_size=16",
    "optimization.lr=3e-3", "training.val_batches=1",
]
LIVE_STEPS = 100000
BIG = 100_000


def run_dir(out, name):
    return Path(out) / "runs" / "default" / "default" / name


def records(out, name):
    lines = (run_dir(out, name) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """Tokenized Shakespeare (three plays), a finished run with results, a 100k-record run, a hostile name."""
    root = tmp_path_factory.mktemp("web")
    tokenize_tiny_shakespeare(root)
    curve = write_run(root, "curve", 300, val_every=50)
    curve.write_result("shakespeare_ppl", {"shakespeare_ppl": {"perplexity": 7.25, "tokens": 4096}})
    write_run(root, "big", BIG, val_every=100)
    write_run(root, "<img src=x onerror=alert(1)>", 12, state="failed").write_status(error="<script>alert(1)</script>")
    return root


@pytest.fixture(scope="module")
def live(out):
    """A tiny GPT training run that keeps going until the dashboard stops it."""
    cfg = out / "gpt.yaml"
    run_cli("configure", "gpt/train/pretrain", str(cfg), *TINY, f"training.steps={LIVE_STEPS}",
            "training.log_every=2", "training.val_every=20", check=True)
    proc = start_nice("run", "live", str(cfg), str(out))
    path = run_dir(out, "live") / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (path.is_file() and len(records(out, "live")) >= 2):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A THESEUS_HOME holding one submission record, as `theseus submit` writes it."""
    from theseus.dispatch.records import Submission

    root = tmp_path_factory.mktemp("home")
    old = os.environ.get("THESEUS_HOME")
    os.environ["THESEUS_HOME"] = str(root)
    try:
        Submission(
            id="20260101-120000-abcdef", name="far-run", project="default", group="default",
            job="gpt/train/pretrain", backend="slurm", target="cluster1", request={}, out="/remote/out",
            run_dir="/remote/out/runs/default/default/far-run", code="c0de", environment="e0",
            last={"state": "running", "step": 42, "checked_at": time.time()},
        ).save()
    finally:
        if old is None:
            del os.environ["THESEUS_HOME"]
        else:
            os.environ["THESEUS_HOME"] = old
    return root


@pytest.fixture(scope="module")
def server(out, live, home):
    srv = start_web(out, env={"THESEUS_HOME": str(home)})
    yield srv
    srv.stop()


def test_submitted_runs_are_listed_with_where_they_run(server):
    listing = server.get("/").body
    assert "far-run" in listing and "slurm:cluster1" in listing
    assert 'href="/runs/default/default/far-run"' not in listing  # no local run directory to show


def test_list_and_run_pages_show_the_runs_and_their_latest_metrics(server, out, live):
    listing = server.get("/").body
    assert re.search(r'href="/runs/default/default/live">live</a>', listing)
    assert 'class="state running">running<' in listing
    assert "gpt/train/pretrain" in listing
    last = records(out, "curve")[-1]
    assert fmt_number(last["loss"]) in listing and fmt_number(last["val_loss"]) in listing
    assert fmt_number(last["tokens_per_s"]) in listing and "300/300" in listing

    before = records(out, "live")[-1]
    rows = {r["id"]: r for r in server.get("/api/runs").json()["runs"]}
    row = rows["default/default/live"]
    assert row["state"] == "running" and row["step"] >= before["step"] and row["total"] == LIVE_STEPS
    after = {r["step"]: r for r in records(out, "live")}
    assert row["loss"] in {r["loss"] for r in after.values() if r["step"] >= before["step"]}

    page = server.get("/runs/default/default/live").body
    assert "<h1 id=\"run-name\">live</h1>" in page
    assert "n_embd: 32" in page  # the resolved config
    assert "theseus run live-rerun" in page  # the command that reproduces it
    assert "Stop run" in page
    curve = server.get("/runs/default/default/curve").body
    assert "shakespeare_ppl.perplexity" in curve and "7.25" in curve


def test_a_training_run_shows_new_points_within_seconds(server, out):
    snap = server.get("/api/runs/default/default/live/metrics").json()
    last_step = snap["series"]["loss"]["step"][-1]
    deadline = time.time() + 20
    new = None
    while time.time() < deadline:
        new = server.get(f"/api/runs/default/default/live/metrics?since={snap['offset']}").json()
        if new["records"]:
            break
        time.sleep(0.5)
    assert new and new["records"] and not new["reset"], new
    steps = new["series"]["loss"]["step"]
    assert steps[0] > last_step and steps == sorted(steps)
    on_disk = {r["step"]: r["loss"] for r in records(out, "live")}
    assert new["series"]["loss"]["value"] == [on_disk[int(s)] for s in steps]
    log = server.get("/api/runs/default/default/live/log?since=0").json()
    assert "training GPT" in log["text"]


def test_chromium_renders_the_pages_in_the_house_style(server, out):
    sync_playwright = require_playwright()
    shots = artifacts()
    problems = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))

        page.goto(server.base + "/")
        page.evaluate("document.fonts.ready")
        style = page.evaluate("""() => {
            const b = getComputedStyle(document.body);
            return {bg: b.backgroundColor, fg: b.color, font: b.fontFamily,
                    plex: document.fonts.check('14px "IBM Plex Sans"') && document.fonts.check('12px "IBM Plex Mono"'),
                    loaded: [...document.fonts].filter(f => f.status === 'loaded').map(f => f.family)}
        }""")
        assert style["bg"] == "rgb(247, 247, 247)" and style["fg"] == "rgb(47, 51, 56)", style
        assert style["font"].startswith('"IBM Plex Sans"'), style
        assert style["plex"] and {"IBM Plex Sans", "IBM Plex Mono"} <= set(style["loaded"]), style
        assert page.locator("td.name a", has_text="<img src=x onerror=alert(1)>").count() == 1
        page.locator('input[value="default/default/live"]').check()
        page.locator('input[value="default/default/curve"]').check()
        page.screenshot(path=str(shots / "list.png"))
        page.locator("#compare-button").click()
        page.wait_for_selector('.chart[data-key="loss"][data-points]')
        assert page.locator(".chart").count() >= 5
        assert page.evaluate("window.theseus.charts.loss.plot.series.length") == 3  # x + two runs
        page.screenshot(path=str(shots / "compare.png"), full_page=True)

        # a finished run: every record is a point (300 losses, 6 validation losses)
        page.goto(server.base + "/runs/default/default/curve")
        page.wait_for_selector('.chart[data-key="loss"][data-points]')
        expected = sum(1 for r in records(out, "curve") for k in ("loss", "val_loss") if k in r)
        assert page.get_attribute('.chart[data-key="loss"]', "data-points") == str(expected) == "306"
        assert page.evaluate("window.theseus.charts.loss.plot.data[1].filter(v => v !== null).length") == 300
        page.locator('#x-axis button[data-x="time"]').click()
        assert page.evaluate("window.theseus.charts.loss.plot.scales.x.time") is True

        # 100,000 records: navigation start to the charts drawn (the server parsed the file at start-up)
        page.goto(server.base + "/runs/default/default/big")
        page.wait_for_selector('.chart[data-key="loss"][data-points]')
        drawn = page.evaluate("performance.getEntriesByName('theseus:charts')[0].startTime")
        print(f"100k-record run page in Chromium, navigation to charts drawn: {drawn:.0f} ms")
        assert drawn < 1000, drawn

        # the live run: the chart grows while the page is open
        page.goto(server.base + "/runs/default/default/live")
        page.wait_for_selector('.chart[data-key="loss"][data-points]')
        points = lambda: int(page.get_attribute('.chart[data-key="loss"]', "data-points"))  # noqa: E731
        first, deadline = points(), time.time() + 20
        while points() <= first and time.time() < deadline:
            page.wait_for_timeout(250)
        assert points() > first, "the open run page did not grow"
        page.screenshot(path=str(shots / "run.png"), full_page=True)
        browser.close()
    assert not problems, problems


def test_a_hundred_thousand_records_load_under_a_second(server, out):
    """Cold (metrics.jsonl just replaced, so the server must parse it again) and warm, over HTTP.

    Cold, the first answer is a sample while the server parses the file in the background;
    the exact downsampled series follow. Each cold round replaces the file again.
    """
    path = run_dir(out, "big") / "metrics.jsonl"
    api = "/api/runs/default/default/big/metrics"
    cold, exact, warm = [], [], []
    for _ in range(3):
        fresh = path.with_name("metrics.copy")
        fresh.write_bytes(path.read_bytes())
        fresh.replace(path)  # a new inode: the server's parsed copy is stale
        t0 = time.perf_counter()
        assert server.get("/runs/default/default/big").status == 200
        first = server.get(api).json()
        cold.append(time.perf_counter() - t0)
        assert first["partial"] and first["records"] == BIG
        assert 1000 <= len(first["series"]["loss"]["step"]) <= 1202
        body = first
        while body["partial"] and time.perf_counter() - t0 < 60:
            time.sleep(0.05)
            body = server.get(api).json()
        exact.append(time.perf_counter() - t0)
        assert not body["partial"] and body["records"] == BIG
        assert 600 <= len(body["series"]["loss"]["step"]) <= 1202  # min/max buckets
        assert body["series"]["loss"]["step"][-1] == BIG
        t0 = time.perf_counter()
        assert server.get("/runs/default/default/big").status == 200
        assert not server.get(api).json()["partial"]
        warm.append(time.perf_counter() - t0)
    losses = [r["loss"] for r in records(out, "big")]
    kept = body["series"]["loss"]["value"]
    assert max(kept) == max(losses) and min(kept) == min(losses)  # the extremes survive downsampling
    shown = {name: ", ".join(f"{t:.3f}s" for t in times) for name, times in
             (("cold", cold), ("exact", exact), ("warm", warm))}
    print(f"100k-record run page + chart data: cold {shown['cold']}; exact series after {shown['exact']}; "
          f"warm {shown['warm']}")
    assert max(cold) < 1.0 and max(warm) < 1.0, shown


def test_datasets_page_lists_token_counts_and_tokenizer(server, out):
    meta = json.loads((out / "data" / "shakespeare" / "meta.json").read_text())
    page = server.get("/data").body
    assert "shakespeare" in page and "byte" in page
    assert fmt_number(meta["train"]["tokens"]) in page and fmt_number(meta["val"]["tokens"]) in page


def test_stop_ends_the_run_preempted(server, out, live):
    """Runs last: stops the live run through the dashboard (SIGTERM -> checkpoint -> preempted)."""
    page = server.get("/runs/default/default/live").body
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    resp = server.post("/runs/default/default/live/stop", f"csrf={token}")
    assert resp.status == 303, resp.body
    assert live.wait(timeout=120) == 75
    status = json.loads((run_dir(out, "live") / "status.json").read_text())
    assert status["state"] == "preempted"
    after = server.get("/runs/default/default/live").body
    assert 'class="state preempted"' in after and "Stop run" not in after
    assert f'<td class="num">{fmt_number(status["step"])}</td>' in after  # its checkpoint
    last = records(out, "live")[-1]
    assert fmt_number(last["loss"]) in server.get("/").body
