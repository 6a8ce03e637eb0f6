"""Training throughput of theseus against a PyTorch eager twin, measured so that the figures can be trusted.

Three measurements, each run in fresh subprocesses that alternate between the sides for
``--rounds`` rounds (so that noise hits both alike), reported as the median over rounds
with the spread (lowest to highest round):

``step``
    The jitted train step (``make_train_step`` + AdamW) against an eager PyTorch step of
    the same model (``torch_twin.py``) on a fixed batch. ``--yardsticks DIR`` adds the
    shared reference scripts ``torch_gpt.py`` and ``jax_minimal_gpt.py`` from ``DIR``.
``whole``
    A whole ``theseus run`` (process start to exit: imports, compilation, validation and
    the final checkpoint included) against a PyTorch script that trains the same model on
    the same tokenized data, batches, schedule, log and validation steps, for the same
    number of steps. Tokens/s is all training tokens over the process's wall time.
``overhead``
    The per-step time of the theseus loop with a model whose compute is negligible (one
    layer, width 16, 16 tokens a step) next to the bare compiled step of the same model:
    their difference is what the loop adds per step.

Shapes (``--shape``): ``bench`` (4 layers, d_model 256, 4 heads, seq 256, batch 8, vocab
8192, fp32, the default for ``step``), ``tiny`` (the nanoGPT character-level size: 4
layers, d_model 128, 4 heads, seq 64, batch 12, vocab 320; the default for ``whole``), and
the accelerator presets ``gpt-125m`` (12 layers, d_model 768, seq 1024) and ``gpt-350m``
(24 layers, d_model 1024, seq 2048), bf16 compute with fp32 parameters, JAX side only,
whose MFU is against the chip's data-sheet peak.

Before anything runs the script samples the machine for a few seconds and refuses to
measure when other processes keep the CPUs busy (``--force`` measures anyway, marking
every table as taken on a busy machine); each round also records how much CPU time
other processes took while it ran. The whole table, as in a note::

    python benchmarks/train_throughput.py --all        # step (bench) + whole (tiny) + overhead
    python benchmarks/train_throughput.py --mode step --shape bench --rounds 5
    python benchmarks/train_throughput.py --mode whole --steps 2000
    python benchmarks/train_throughput.py --mode step --shape gpt-125m   # on a GPU: MFU
    python benchmarks/train_throughput.py --profile --shape bench         # top ops, both sides

The PyTorch side is skipped with a message when torch is not installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

SHAPES: dict[str, dict[str, Any]] = {
    "bench": {"layers": 4, "d_model": 256, "heads": 4, "seq": 256, "batch": 8, "vocab": 8192, "dtype": "float32"},
    "tiny": {"layers": 4, "d_model": 128, "heads": 4, "seq": 64, "batch": 12, "vocab": 320, "dtype": "float32"},
    "micro": {"layers": 1, "d_model": 16, "heads": 2, "seq": 8, "batch": 2, "vocab": 320, "dtype": "float32"},
    "gpt-125m": {"layers": 12, "d_model": 768, "heads": 12, "seq": 1024, "batch": 8, "vocab": 50304, "dtype": "bfloat16"},
    "gpt-350m": {"layers": 24, "d_model": 1024, "heads": 16, "seq": 2048, "batch": 4, "vocab": 50304, "dtype": "bfloat16"},
}
ACCELERATOR_SHAPES = ("gpt-125m", "gpt-350m")
SHAPE_KEYS = ("layers", "d_model", "heads", "seq", "batch", "vocab", "dtype")


def cpu_seconds() -> float:
    """User plus system CPU time of this process (all threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_bytes() -> int:
    """Maximum resident set size of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def shape_of(args: argparse.Namespace) -> dict[str, Any]:
    """The preset named by ``--shape`` with any explicit ``--layers`` … ``--dtype`` applied."""
    shape = dict(SHAPES[args.shape])
    for key in SHAPE_KEYS:
        value = getattr(args, key)
        if value is not None:
            shape[key] = value
    shape["position"] = args.position
    return shape


# --------------------------------------------------------------------------- a quiet machine


def busy_cores(seconds: float) -> float:
    """CPUs kept busy by all processes over the next ``seconds`` (from ``/proc/stat``)."""
    def sample() -> tuple[float, float]:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(total1 - total0, 1.0) * (os.cpu_count() or 1)


class ForeignLoad:
    """CPU time other processes took while a measurement ran: machine busy time minus its own."""

    def __enter__(self) -> ForeignLoad:
        self.start = time.perf_counter()
        self.machine = self._machine_busy_s()
        self.own = self._children_cpu_s()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.start
        foreign = (self._machine_busy_s() - self.machine) - (self._children_cpu_s() - self.own)
        self.cores = max(foreign, 0.0) / max(wall, 1e-9)

    @staticmethod
    def _machine_busy_s() -> float:
        if not Path("/proc/stat").exists():
            return 0.0
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _children_cpu_s() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime


def check_quiet(args: argparse.Namespace) -> bool:
    """Refuse (exit 2) when the machine is busy, unless ``--force``; True when it was quiet."""
    load1 = os.getloadavg()[0]
    busy = busy_cores(args.sample_seconds) if Path("/proc/stat").exists() else 0.0
    quiet = busy <= args.max_busy and load1 <= args.max_load
    print(f"machine: {os.cpu_count()} CPUs, load average {load1:.2f}, "
          f"{busy:.2f} CPUs busy over {args.sample_seconds:g} s before starting")
    if quiet:
        return True
    message = (
        f"the machine is busy (load {load1:.2f} > {args.max_load} or {busy:.2f} CPUs busy > {args.max_busy}): "
        "figures taken now compare nothing"
    )
    if not args.force:
        print(f"error: {message}; wait for a quiet moment or pass --force", file=sys.stderr)
        sys.exit(2)
    print(f"\n!!! WARNING: {message}. Measuring anyway (--force); every table below is marked BUSY.\n", flush=True)
    return False


# --------------------------------------------------------------------------- workers (subprocesses)


def fixed_batch(shape: dict[str, Any]) -> tuple[Any, Any]:
    """The same ``[B, T]`` inputs and next-token targets for both sides."""
    import numpy as np

    tokens = np.random.default_rng(0).integers(0, shape["vocab"], (shape["batch"], shape["seq"] + 1), dtype=np.int64)
    return tokens[:, :-1], tokens[:, 1:]


def theseus_model(shape: dict[str, Any]) -> Any:
    """theseus's GPT at ``shape``: GELU, tied embeddings, defaults for everything else."""
    from theseus.model.models import GPT

    return GPT(
        n_layers=shape["layers"], n_embd=shape["d_model"], n_head=shape["heads"], block_size=shape["seq"],
        vocab_size=shape["vocab"], mlp="gelu", position=shape["position"], tie_embeddings=True,
        dtype=shape["dtype"],
    )


def jax_setup(shape: dict[str, Any]) -> tuple[Any, Any, Any, Any, Any]:
    """theseus's model at ``shape`` on one device: ``(model, state, step, batch, rng)`` with AdamW, not compiled."""
    import jax
    import numpy as np

    from theseus.base.hardware import make_mesh
    from theseus.training.optimizers import build_optimizer
    from theseus.training.optimizers.adamw import AdamWConfig
    from theseus.training.sharding import shard_batch
    from theseus.training.step import init_train_state, make_train_step

    model = theseus_model(shape)
    mesh = make_mesh(1, jax.devices()[:1])
    tx = build_optimizer("adamw", 3e-4, AdamWConfig(weight_decay=0.1, grad_clip=1.0))
    state, shardings = init_train_state(model, tx, mesh, jax.random.key(0), (1, shape["seq"]))
    step = make_train_step(model, tx, mesh=mesh, state_shardings=shardings)
    x, y = fixed_batch(shape)
    batch = shard_batch({"x": x[None].astype(np.int32), "y": y[None].astype(np.int32)}, mesh)
    return model, state, step, batch, jax.random.key(1)


def worker_jax(shape: dict[str, Any], steps: int, warmup: int) -> dict[str, Any]:
    """Time theseus's jitted train step on one device; MFU against the chip's peak (or the CPU's measured one)."""
    import jax

    from theseus.base.hardware import detect_chip, peak_flops

    model, state, step, batch, rng = jax_setup(shape)
    start = time.perf_counter()
    compiled = step.lower(state, batch, rng).compile()
    compile_s = time.perf_counter() - start
    times, cpu = [], []
    loss = 0.0
    for i in range(warmup + steps):
        start, cpu_start = time.perf_counter(), cpu_seconds()
        state, metrics = compiled(state, batch, rng)
        loss = float(metrics["loss"])
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu.append(cpu_seconds() - cpu_start)
    peak = peak_flops(dtype=shape["dtype"])
    return {
        "times": times, "cpu": cpu, "loss": loss, "compile_s": compile_s, "chip": detect_chip(),
        "peak_flops": peak.flops, "peak_source": peak.source, "flops_per_token": model.flops_per_token(shape["seq"]),
        "params": model.num_params(state.params), "version": jax.__version__,
    }


def worker_torch(shape: dict[str, Any], steps: int, warmup: int) -> dict[str, Any]:
    """Time the eager PyTorch twin's step on the same fixed batch."""
    import torch_twin

    x, y = fixed_batch(shape)
    return torch_twin.time_steps(shape, x, y, steps, warmup, cpu_seconds)


def worker_profile(side: str, shape: dict[str, Any], top: int) -> dict[str, Any]:
    """The ``top`` most expensive ops of one step: XLA:CPU thunks from a JAX trace, or ``torch.profiler``."""
    if side == "torch":
        import torch
        import torch_twin

        model = torch_twin.build_model(shape["layers"], shape["d_model"], shape["heads"], shape["seq"],
                                       shape["vocab"], shape["position"])
        opt = torch_twin.build_optimizer(model, 3e-4)
        x, y = (torch.from_numpy(a.copy()) for a in fixed_batch(shape))
        for _ in range(2):
            torch_twin.train_step(model, opt, x, y)
        with torch.profiler.profile() as prof:
            for _ in range(3):
                float(torch_twin.train_step(model, opt, x, y))
        rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
        return {"ops": [(e.key, e.self_cpu_time_total / 3e3, e.count // 3) for e in rows]}
    return profile_jax(shape, top)


def profile_jax(shape: dict[str, Any], top: int) -> dict[str, Any]:
    """Trace three steps with the JAX profiler and sum the XLA:CPU thunks' time per op."""
    import collections
    import gzip
    import re

    import jax

    _, state, step, batch, rng = jax_setup(shape)
    compiled = step.lower(state, batch, rng).compile()
    names = {}
    for line in compiled.as_text().splitlines():
        match = re.match(r"\s*(?:ROOT )?%(\S+) = (\S+) .*", line)
        if match:
            op = re.search(r'op_name="([^"]*)"', line)
            names[match.group(1)] = (op.group(1).split("/")[-1] if op else "", match.group(2).split("{")[0])
    for _ in range(2):
        state, metrics = compiled(state, batch, rng)
        float(metrics["loss"])
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir)
        for _ in range(3):
            state, metrics = compiled(state, batch, rng)
            float(metrics["loss"])
        jax.profiler.stop_trace()
        with gzip.open(next(Path(trace_dir).rglob("*.trace.json.gz"))) as handle:
            trace = json.load(handle)
    spent: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    for event in trace["traceEvents"]:
        if event.get("ph") == "X" and event["name"] in names:
            op, out_shape = names[event["name"]]
            key = f"{event['name']}: {op} -> {out_shape}"
            spent[key] += event["dur"]
            count[key] += 1
    return {"ops": [(k, v / 3e3, count[k] // 3) for k, v in spent.most_common(top)],
            "total_ms": sum(spent.values()) / 3e3}


def worker_overhead(steps: int) -> dict[str, Any]:
    """The micro model's compiled step dispatched back to back with no loop around it: the floor of a step."""
    import jax

    _, state, step, batch, rng = jax_setup({**SHAPES["micro"], "position": "rope"})
    for _ in range(20):
        state, metrics = step(state, batch, rng)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, batch, rng)
    jax.block_until_ready(metrics)
    return {"bare_step_s": (time.perf_counter() - start) / steps}


# --------------------------------------------------------------------------- the whole-process comparison


def tokenize_data(workdir: Path) -> Path:
    """Tokenize the packaged Shakespeare corpus (byte tokenizer) under ``workdir`` once; the OUT root."""
    out = workdir / "out"
    if (out / "data" / "shakespeare" / "meta.json").exists():
        return out
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "tokenize.yaml"
    theseus_cli("configure", "data/tokenize_variable_dataset", str(cfg), "data.dataset=shakespeare")
    theseus_cli("run", "tokenize", str(cfg), str(out))
    return out


def theseus_cli(*argv: str) -> None:
    """Run the installed ``theseus`` command; raise with its output if it fails."""
    proc = subprocess.run([str(Path(sys.executable).with_name("theseus")), *argv], capture_output=True, text=True,
                          env=child_env())
    if proc.returncode != 0:
        raise RuntimeError(f"theseus {' '.join(argv)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def whole_settings(shape: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """What both sides of the whole-process comparison train: shape, steps, lr, log and validation steps."""
    return {**shape, "steps": args.steps or 2000, "lr": 1e-3, "log_every": args.log_every,
            "val_every": args.val_every, "val_batches": 4}


def run_timed(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run ``command`` to exit; its wall time, peak RSS (bytes) and output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        log.seek(0)
        output = log.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{output[-3000:]}")
    return wall, usage.ru_maxrss * 1024, output


def whole_theseus(out: Path, settings: dict[str, Any], name: str) -> dict[str, Any]:
    """Time ``theseus run`` (the installed command, as a user runs it) from start to exit."""
    s = settings
    cfg = out.parent / f"{name}.yaml"
    overrides = [
        f"architecture.vocab_size={s['vocab']}", f"architecture.n_layers={s['layers']}",
        f"architecture.n_embd={s['d_model']}", f"architecture.n_head={s['heads']}",
        f"architecture.block_size={s['seq']}", f"architecture.position={s['position']}",
        f"training.batch_size={s['batch']}", f"training.steps={s['steps']}", f"training.log_every={s['log_every']}",
        f"training.val_every={s['val_every']}", f"training.val_batches={s['val_batches']}",
        f"optimization.lr={s['lr']}",
    ]
    theseus_cli("configure", "gpt/train/pretrain", str(cfg), *overrides)
    theseus = str(Path(sys.executable).with_name("theseus"))
    wall, rss, _ = run_timed([theseus, "run", name, str(cfg), str(out), "--fresh"], child_env())
    records = [json.loads(line) for line in (out / "runs/default/default" / name / "metrics.jsonl").open()]
    first = records[0]
    return {"wall_s": wall, "rss": rss, "startup_s": first.get("startup_time"), "compile_s": first.get("compile_time"),
            "loss": records[-1]["loss"], "val_loss": records[-1].get("val_loss")}


def whole_torch(out: Path, settings: dict[str, Any], name: str) -> dict[str, Any]:
    """Time the PyTorch script training the same model on the same data, from start to exit."""
    command = [sys.executable, __file__, "--worker", "torch-whole", "--settings", json.dumps(settings),
               "--data", str(out / "data" / "shakespeare"), "--run-dir", str(out.parent / name)]
    wall, rss, output = run_timed(command, child_env())
    last = json.loads(output.strip().splitlines()[-1])
    return {"wall_s": wall, "rss": rss, "startup_s": None, "compile_s": None, "loss": last["loss"],
            "val_loss": last.get("val_loss")}


# --------------------------------------------------------------------------- the driver


def child_env() -> dict[str, str]:
    """A measurement's environment: one CPU device for JAX, the repository importable."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join(flags)
    env.setdefault("JAX_PLATFORMS", "cpu" if not env.get("JAX_PLATFORMS") else env["JAX_PLATFORMS"])
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(BENCH), env.get("PYTHONPATH", "")])
    return env


def side_env(side: str) -> dict[str, str]:
    """theseus's own process tuning for the theseus side (as ``theseus run`` applies it); none for PyTorch."""
    from theseus.base.tuning import tuned_environment

    return tuned_environment(child_env()) if side in ("jax", "torch-tuned") else child_env()


def measure(side: str, worker_argv: list[str]) -> dict[str, Any]:
    """Run one side's worker in a fresh subprocess; its JSON report plus the foreign load meanwhile."""
    worker = "torch" if side == "torch-tuned" else side
    with ForeignLoad() as load:
        proc = subprocess.run([sys.executable, __file__, "--worker", worker, *worker_argv],
                              capture_output=True, text=True, env=side_env(side))
    if proc.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["foreign_cores"] = load.cores
    return report


def measure_yardstick(script: Path, shape: dict[str, Any], steps: int) -> dict[str, Any]:
    """Run a shared reference script with the same shape; its median step from its JSON line."""
    argv = [f"--layers={shape['layers']}", f"--d-model={shape['d_model']}", f"--heads={shape['heads']}",
            f"--seq={shape['seq']}", f"--batch={shape['batch']}", f"--vocab={shape['vocab']}", f"--steps={steps}"]
    with ForeignLoad() as load:
        proc = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, env=child_env())
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} failed:\n{proc.stderr[-2000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    step_s = report["median_step_s"]
    return {"times": [step_s], "cpu": [float("nan")], "loss": report.get("final_loss", report.get("loss", 0.0)),
            "foreign_cores": load.cores, "peak_rss": report.get("peak_rss_mb", 0) * 2**20}


def spread(values: list[float]) -> str:
    """``median (min-max)`` of per-round values."""
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def print_step_table(runs: dict[str, list[dict[str, Any]]], shape: dict[str, Any], busy: bool) -> None:
    """Per side: tokens/s and step time (median of round medians, spread), CPU time, MFU, RSS; then ratios."""
    tokens = shape["batch"] * shape["seq"]
    jax_runs = runs.get("jax", [])
    flops = jax_runs[0]["flops_per_token"] if jax_runs else None
    peak = statistics.median(r["peak_flops"] for r in jax_runs) if jax_runs else None
    source = jax_runs[0]["peak_source"] if jax_runs else ""
    mark = "  [BUSY MACHINE]" if busy else ""
    print(f"\n== step: {shape_label(shape)}, {tokens} tokens/step{mark}")
    if peak:
        print(f"   peak {peak / 1e9:.0f} GFLOP/s ({source}, {shape['dtype']}); {flops / 1e6:.1f} MFLOP/token")
    print(f"   {'side':16} {'tokens/s med (min-max)':>24} {'step ms med (min-max)':>24} {'CPU ms':>8} {'MFU':>6} "
          f"{'RSS MB':>7} {'others':>7}")
    for side, mine in runs.items():
        steps = [statistics.median(r["times"]) for r in mine]
        rates = [tokens / s for s in steps]
        cpu = statistics.median(statistics.median(r["cpu"]) for r in mine) * 1e3
        mfu = f"{statistics.median(rates) * flops / peak:.1%}" if flops and peak else "-"
        rss = max(r.get("peak_rss", 0) for r in mine) / 2**20
        others = max(r["foreign_cores"] for r in mine)
        print(f"   {side:16} {spread(rates):>24} {spread([s * 1e3 for s in steps]):>24} {cpu:8.0f} {mfu:>6} "
              f"{rss:7.0f} {others:6.2f}c   loss {mine[-1]['loss']:.3f}")
    for other in [s for s in runs if s != "jax"]:
        if jax_runs:
            ratios = [statistics.median(t["times"]) / statistics.median(j["times"]) for j, t in zip(jax_runs, runs[other])]
            print(f"   theseus / {other} speed per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
                  f"median {statistics.median(ratios):.2f}x")
    print("   ('others': the most CPUs other processes kept busy during one of the side's rounds)")


def shape_label(shape: dict[str, Any]) -> str:
    """A short description of a shape."""
    return (f"{shape['layers']}L d{shape['d_model']} h{shape['heads']} seq{shape['seq']} b{shape['batch']} "
            f"V{shape['vocab']} {shape['dtype']}")


def run_step_mode(args: argparse.Namespace, shape: dict[str, Any], busy: bool) -> None:
    """Alternate the step workers for ``--rounds`` rounds and print the table."""
    accelerator = args.shape in ACCELERATOR_SHAPES
    sides = ["jax"]
    if not accelerator and importlib.util.find_spec("torch") is None:
        print("torch is not installed: skipping the PyTorch side (pip install torch==2.13.0)")
    elif not accelerator:
        sides += ["torch", *(["torch-tuned"] if args.torch_tuned else [])]
    steps = args.steps or (10 if not accelerator else 20)
    argv = [f"--shape={args.shape}", f"--steps={steps}", f"--warmup={args.warmup}", f"--position={args.position}",
            *[f"--{k.replace('_', '-')}={v}" for k, v in shape.items() if k in SHAPE_KEYS]]
    yardsticks = []
    if args.yardsticks and not accelerator:
        yardsticks = [Path(args.yardsticks) / name for name in ("torch_gpt.py", "jax_minimal_gpt.py")]
    runs: dict[str, list[dict[str, Any]]] = {}
    for round_index in range(args.rounds):
        order = sides if round_index % 2 == 0 else list(reversed(sides))
        for side in order:
            run = measure(side, argv)
            runs.setdefault(side, []).append(run)
            step_s = statistics.median(run["times"])
            print(f"round {round_index + 1} {side:16} {shape['batch'] * shape['seq'] / step_s:9.0f} tokens/s, "
                  f"step {step_s * 1e3:.0f} ms, others {run['foreign_cores']:.2f} CPUs", flush=True)
        for script in yardsticks:
            run = measure_yardstick(script, shape, steps)
            runs.setdefault(script.stem, []).append(run)
            print(f"round {round_index + 1} {script.stem:16} "
                  f"{shape['batch'] * shape['seq'] / run['times'][0]:9.0f} tokens/s", flush=True)
    print_step_table(runs, shape, busy)


def run_whole_mode(args: argparse.Namespace, shape: dict[str, Any], busy: bool) -> None:
    """Alternate whole ``theseus run`` processes with the PyTorch script and print the table."""
    settings = whole_settings(shape, args)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="theseus-bench-"))
    out = tokenize_data(workdir)
    tokens = settings["steps"] * settings["batch"] * settings["seq"]
    runs: dict[str, list[dict[str, Any]]] = {"theseus run": [], "torch loop": []}
    for round_index in range(args.rounds):
        order = list(runs) if round_index % 2 == 0 else list(reversed(runs))
        for side in order:
            with ForeignLoad() as load:
                result = (whole_theseus if side == "theseus run" else whole_torch)(out, settings, f"r{round_index}")
            result["foreign_cores"] = load.cores
            runs[side].append(result)
            print(f"round {round_index + 1} {side:16} {result['wall_s']:7.1f} s, {tokens / result['wall_s']:7.0f} tokens/s, "
                  f"others {load.cores:.2f} CPUs", flush=True)
    mark = "  [BUSY MACHINE]" if busy else ""
    print(f"\n== whole process: {shape_label(shape)}, {settings['steps']} steps, log every {settings['log_every']}, "
          f"validate every {settings['val_every']} on {settings['val_batches']} batches{mark}")
    print(f"   {'side':16} {'wall s med (min-max)':>22} {'tokens/s med (min-max)':>24} {'start-up s':>10} "
          f"{'RSS MB':>7} {'others':>7}")
    for side, mine in runs.items():
        walls = [r["wall_s"] for r in mine]
        startup = [r["startup_s"] for r in mine if r["startup_s"] is not None]
        startup_s = f"{statistics.median(startup):.1f}" if startup else "-"
        print(f"   {side:16} {spread(walls):>22} {spread([tokens / w for w in walls]):>24} {startup_s:>10} "
              f"{max(r['rss'] for r in mine) / 2**20:7.0f} {max(r['foreign_cores'] for r in mine):6.2f}c   "
              f"loss {mine[-1]['loss']:.3f} val {mine[-1]['val_loss']:.3f}")
    ratios = [t["wall_s"] / j["wall_s"] for j, t in zip(runs["theseus run"], runs["torch loop"])]
    print(f"   theseus / torch speed per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f}x")
    print(f"   (start-up: process start to the end of the first training step; data under {workdir})")


def run_overhead_mode(args: argparse.Namespace, busy: bool) -> None:
    """The theseus loop's per-step time with a negligible model, against its bare compiled step."""
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="theseus-bench-"))
    out = tokenize_data(workdir)
    steps = args.steps or 2000
    settings = {**SHAPES["micro"], "position": "rope", "steps": steps, "lr": 1e-3,
                "log_every": steps // 4, "val_every": 0, "val_batches": 1}
    loop, bare = [], []
    for round_index in range(args.rounds):
        whole_theseus(out, settings, f"overhead{round_index}")
        records = [json.loads(line) for line in
                   (out / "runs/default/default" / f"overhead{round_index}" / "metrics.jsonl").open()]
        loop.append(statistics.median(r["step_time"] for r in records if "step_time" in r))
        bare.append(measure("overhead", [f"--steps={min(steps, 500)}"])["bare_step_s"])
        print(f"round {round_index + 1}: loop {loop[-1] * 1e6:.0f} us/step, bare step {bare[-1] * 1e6:.0f} us", flush=True)
    mark = "  [BUSY MACHINE]" if busy else ""
    print(f"\n== per-step overhead: {shape_label(SHAPES['micro'])}, {steps} steps{mark}")
    print(f"   theseus loop step (metrics.jsonl step_time): {spread([v * 1e6 for v in loop])} us")
    print(f"   the compiled step alone, back to back:       {spread([v * 1e6 for v in bare])} us")
    print(f"   added by the loop: {(statistics.median(loop) - statistics.median(bare)) * 1e6:.0f} us/step")


def run_profile_mode(args: argparse.Namespace, shape: dict[str, Any]) -> None:
    """Print the most expensive ops of one step for theseus (XLA:CPU trace) and PyTorch (torch.profiler)."""
    argv = [f"--shape={args.shape}", f"--position={args.position}", f"--top={args.top}",
            *[f"--{k.replace('_', '-')}={v}" for k, v in shape.items() if k in SHAPE_KEYS]]
    for side in ("jax", "torch"):
        if side == "torch" and importlib.util.find_spec("torch") is None:
            continue
        report = _profile(side, argv)
        total = report.get("total_ms")
        print(f"\n== top ops of one {side} step ({shape_label(shape)})"
              + (f": XLA thunks {total:.0f} ms in all" if total else ": self CPU time"))
        for name, ms, count in report["ops"]:
            print(f"   {ms:8.1f} ms  x{count:<3} {name[:110]}")


def _profile(side: str, argv: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--worker", f"profile-{side}", *argv],
                          capture_output=True, text=True, env=side_env("jax" if side == "jax" else "torch"))
    if proc.returncode != 0:
        raise RuntimeError(f"profile {side} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("step", "whole", "overhead"), default="step")
    parser.add_argument("--all", action="store_true", help="step (bench) + whole (tiny) + overhead, one report")
    parser.add_argument("--profile", action="store_true", help="print the top ops of one step of each side")
    parser.add_argument("--shape", choices=tuple(SHAPES), default=None, help="bench for step, tiny for whole")
    for key in SHAPE_KEYS:
        kind = str if key == "dtype" else int
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind, default=None)
    parser.add_argument("--position", choices=("learned", "rope"), default="learned")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (step), trained steps (whole)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation (step)")
    parser.add_argument("--log-every", type=int, default=10, help="whole: steps between log records")
    parser.add_argument("--val-every", type=int, default=250, help="whole: steps between validations")
    parser.add_argument("--workdir", help="whole/overhead: keep the tokenized data and runs here")
    parser.add_argument("--yardsticks", help="directory with torch_gpt.py and jax_minimal_gpt.py to run as well")
    parser.add_argument("--torch-tuned", action="store_true", help="also run PyTorch with theseus's allocator tuning")
    parser.add_argument("--top", type=int, default=15, help="profile: ops listed per side")
    parser.add_argument("--force", action="store_true", help="measure even when the machine is busy")
    parser.add_argument("--max-load", type=float, default=1.0, help="refuse above this 1-minute load average")
    parser.add_argument("--max-busy", type=float, default=0.3, help="refuse when others keep more CPUs busy")
    parser.add_argument("--sample-seconds", type=float, default=3.0, help="how long to watch the CPUs first")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.shape is None:
        args.shape = "tiny" if args.mode == "whole" else "bench"
    return args


def run_worker(args: argparse.Namespace) -> None:
    """Inside a measurement subprocess: do the one job and print one JSON line."""
    shape = shape_of(args)
    if args.worker == "torch-whole":
        import torch_twin

        result: dict[str, Any] = torch_twin.train_whole(args.data, json.loads(args.settings), Path(args.run_dir))
    elif args.worker == "overhead":
        result = worker_overhead(args.steps)
    elif args.worker.startswith("profile-"):
        result = worker_profile(args.worker.removeprefix("profile-"), shape, args.top)
    elif args.worker == "jax":
        result = worker_jax(shape, args.steps, args.warmup)
    else:
        result = worker_torch(shape, args.steps, args.warmup)
    result["peak_rss"] = peak_rss_bytes()
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> None:
    """Check the machine is quiet, then run the measurements asked for."""
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    quiet = check_quiet(args)
    if args.profile:
        run_profile_mode(args, shape_of(args))
    elif args.all:
        step = argparse.Namespace(**{**vars(args), "shape": "bench", "steps": None})
        whole = argparse.Namespace(**{**vars(args), "shape": "tiny", "steps": None})
        run_step_mode(step, shape_of(step), not quiet)
        run_whole_mode(whole, shape_of(whole), not quiet)
        run_overhead_mode(argparse.Namespace(**{**vars(args), "steps": None}), not quiet)
    elif args.mode == "step":
        run_step_mode(args, shape_of(args), not quiet)
    elif args.mode == "whole":
        run_whole_mode(args, shape_of(args), not quiet)
    else:
        run_overhead_mode(args, not quiet)
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
