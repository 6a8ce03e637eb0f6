"""A toy stateful job for lifecycle tests: a seeded random walk with checkpoints."""

import time
from dataclasses import dataclass

import numpy as np

from theseus.config import field
from theseus.errors import Preempted
from theseus.job import RestoreableJob
from theseus.registry import JOBS


@dataclass
class CounterConfig:
    """Counter job settings."""

    steps: int = field("counter/steps", default=20)
    seed: int = field("counter/seed", default=0)
    dim: int = field("counter/dim", default=8)
    sleep: float = field("counter/sleep", default=0.0)
    big: int = field("counter/big", default=0, doc="extra float32 elements saved in each checkpoint")


class CounterJob(RestoreableJob[CounterConfig]):
    """Toy random walk that checkpoints and resumes (tests only)."""

    CONFIG = CounterConfig

    def _state(self, w: np.ndarray, step: int) -> dict:
        state = {"w": w, "step": np.asarray(step, np.int64)}
        if self.args.big:
            state["big"] = np.full(self.args.big, step, np.float32)
        return state

    def run(self) -> None:
        a = self.args
        resumed = self.resume_state(self._state(np.zeros(a.dim), 0))
        if resumed is None:
            w, start = np.zeros(a.dim), 0
        else:
            state, _ = resumed
            w, start = np.asarray(state["w"]), int(state["step"])
        for step in range(start + 1, a.steps + 1):
            rng = np.random.default_rng([a.seed, step])
            w = 0.9 * w + rng.standard_normal(a.dim)
            self.run_dir.append_metrics({"step": step, "loss": float(np.sum(w**2))})
            self.report(step)
            print(f"STEP {step}", flush=True)
            if self.should_checkpoint(step) or self.stop_requested():
                if self.checkpoint_config.async_save is False or a.big:
                    print(f"SAVING {step}", flush=True)
                self.save(step, self._state(w, step))
            if self.stop_requested():
                raise Preempted(f"stopped after step {step}")
            time.sleep(a.sleep)
        self.save(a.steps, self._state(w, a.steps))
        self.checkpoints.wait()
        self.run_dir.write_result("final", {"w": w.tolist(), "step": a.steps})


JOBS["test/counter"] = CounterJob
