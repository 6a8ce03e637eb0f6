"""Dashboard load time of a run with many metric records: the run page and its chart data.

Writes a run directory with ``--records`` metric records (the keys a training run
writes, 1 in 50 with a validation loss), starts ``theseus web`` on it, and times, over
HTTP, the run page plus its chart data:

- **cold**: the first request after metrics.jsonl was replaced (each round replaces it
  again): the server answers with an evenly spaced sample and parses the file in the
  background;
- **exact**: from the same start until the exact downsampled series arrive;
- **warm**: the same requests once the file is parsed (only what was appended since is read).

With ``--browser`` it also opens the page in Debian's Chromium (through Playwright) and
reports the time from navigation start to the charts being drawn. Figures are medians
and minimums over ``--rounds`` rounds.

    python benchmarks/web_load.py [--records 100000] [--rounds 5] [--browser]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def write_run(root: Path, records: int) -> Path:
    """A completed run ``big`` with ``records`` metric records; returns its metrics.jsonl."""
    from theseus.rundir import RunDirectory

    run = RunDirectory.of(root, "big")
    run.path.mkdir(parents=True)
    run.write_config("job: gpt/train/pretrain\n")
    t0 = time.time() - records
    with open(run.metrics_path, "w") as fh:
        for step in range(1, records + 1):
            rec = {"step": step, "loss": 4.0 * math.exp(-step / records) + 0.1 * math.sin(step), "lr": 3e-4,
                   "grad_norm": 1.0, "tokens": 4096 * step, "step_time": 0.1, "data_wait": 0.001,
                   "tokens_per_s": 40960.0, "mfu": 0.3, "mfu_peak_source": "measured", "time": t0 + step}
            if step % 50 == 0:
                rec["val_loss"] = rec["loss"] + 0.05
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
    run.write_status(state="completed", job="gpt/train/pretrain", step=records, total_steps=records,
                     started_at=t0, ended_at=time.time(), heartbeat=time.time())
    return run.metrics_path


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return bytes(resp.read())


def page_and_data(base: str) -> tuple[float, float]:
    """Seconds to the page and the first chart data, and to the exact chart data."""
    started = time.perf_counter()
    fetch(base + "/runs/default/default/big")
    data = json.loads(fetch(base + "/api/runs/default/default/big/metrics"))
    first = time.perf_counter() - started
    while data["partial"]:
        time.sleep(0.02)
        data = json.loads(fetch(base + "/api/runs/default/default/big/metrics"))
    return first, time.perf_counter() - started


def browser_times(base: str, rounds: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for _ in range(rounds):
            page.goto(base + "/runs/default/default/big")
            page.wait_for_selector('.chart[data-key="loss"][data-points]')
            out.append(page.evaluate("performance.getEntriesByName('theseus:charts')[0].startTime") / 1000)
        browser.close()
    return out


def main() -> None:
    """Parse the arguments, run the measurements, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--browser", action="store_true", help="also time Chromium to the charts drawn")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        metrics = write_run(root, args.records)
        print(f"{args.records} records, {metrics.stat().st_size / 1e6:.1f} MB of metrics.jsonl")
        server = subprocess.Popen([sys.executable, "-m", "theseus.cli", "web", str(root), "--port", "0"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            match = re.search(r"(http://127\.0\.0\.1:\d+)/", server.stdout.readline())
            assert match, "theseus web did not print its URL"
            base = match.group(1)
            page_and_data(base)  # the server's start-up parse is not a cold request
            cold, exact, warm = [], [], []
            for _ in range(args.rounds):
                copy = metrics.with_name("copy")
                copy.write_bytes(metrics.read_bytes())
                copy.replace(metrics)  # a new file: the server parses it again
                first, done = page_and_data(base)
                cold.append(first)
                exact.append(done)
                warm.append(page_and_data(base)[0])
            for name, times in (("cold", cold), ("exact", exact), ("warm", warm)):
                print(f"{name:>5}: page + chart data median {statistics.median(times):.3f} s, min {min(times):.3f} s")
            if args.browser:
                shown = browser_times(base, args.rounds)
                print(f"browser: navigation to charts drawn median {statistics.median(shown):.3f} s, "
                      f"min {min(shown):.3f} s")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
