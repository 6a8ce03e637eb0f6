"""Time from `theseus submit` to the first remote training step: a first submission (the
remote environment is built) and a second one (it is reused).

Needs a host of a dispatch config that can run the tiny GPT below, with tokenized data in
its output root (``<out>/data/shakespeare``). With the test infrastructure
(``bash scripts/ci-infra.sh up``)::

    python benchmarks/submit_latency.py --dispatch-config D.yaml --host ci

The first submission uses a brand-new ``work`` directory (``--work``, default a fresh
``~/theseus-bench-<time>``), so it pays for shipping the code and building the
environment; the second uses the same one. Each run's first step is read from
``status.json`` (``training.log_every=1``), polled every 0.2 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

from theseus.dispatch.config import load_dispatch_config
from theseus.dispatch.dispatch import launch, plan

TINY = [
    "architecture.vocab_size=320", "architecture.n_layers=2", "architecture.n_embd=32",
    "architecture.n_head=2", "architecture.block_size=32", "training.batch_size=16",
    "training.log_every=1", "training.steps=4", "checkpoint.every_steps=0",
]


def first_step_seconds(name: str, yaml_path: Path, host: str, dispatch) -> tuple[float, float]:
    """(seconds until submit returned, seconds until the remote run reported step >= 1)."""
    started = time.monotonic()
    handle = launch(plan(name, str(yaml_path), TINY, hosts=[host], dispatch_config=dispatch, fresh=True))
    submitted = time.monotonic() - started
    while True:
        status = handle.status()
        if (status.step or 0) >= 1:
            return submitted, time.monotonic() - started
        if status.state in ("failed", "lost", "cancelled"):
            raise SystemExit(f"{name} {status.state}: {status.detail}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dispatch-config", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--work", help="remote work directory (default: a fresh one)")
    args = parser.parse_args()
    from theseus.cli import theseus as cli

    dispatch = load_dispatch_config(args.dispatch_config)
    work = args.work or f"~/theseus-bench-{int(time.time())}"
    dispatch.hosts[args.host] = dataclasses.replace(dispatch.hosts[args.host], work=work)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["THESEUS_HOME"] = str(Path(tmp) / "home")  # keep the benchmark's records apart
        yaml_path = Path(tmp) / "gpt.yaml"
        cli(["configure", "gpt/train/pretrain", str(yaml_path)], standalone_mode=False)
        stamp = int(time.time())
        for label in ("first submission (new work dir)", "second submission (environment reused)"):
            returned, first = first_step_seconds(f"bench-{stamp}-{label.split()[0]}", yaml_path, args.host, dispatch)
            print(f"{label}: submit returned after {returned:.1f} s, first training step after {first:.1f} s")


if __name__ == "__main__":
    main()
