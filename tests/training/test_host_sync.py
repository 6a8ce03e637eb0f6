"""The training loop leaves the devices alone between log steps: it never reads a device array."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from jax._src.array import ArrayImpl

from theseus.quick import quick
from theseus.recipes.gpt import PretrainGPT
from theseus.registry import JOBS

MICRO = {
    "architecture.vocab_size": 320, "architecture.n_layers": 1, "architecture.n_embd": 16,
    "architecture.n_head": 2, "architecture.block_size": 8,
    "training.batch_size": 16, "training.per_device_batch_size": 1, "training.steps": 12,
    "training.log_every": 6, "training.val_every": 12, "training.val_batches": 1,
    "training.peak_flops": 1e12, "checkpoint.every_steps": 1000,
}


class GuardedPretrain(PretrainGPT):
    """The GPT trainer, failing whenever its loop reads a device array outside a log or checkpoint step.

    Every read of a device array on the host (``float(x)``, ``np.asarray(x)``,
    ``jax.device_get``) goes through ``ArrayImpl._value``; the loop runs with that property
    replaced by one that refuses unless a metrics fetch, a validation or a save is under way.
    """

    reading = False
    reads = 0

    @contextmanager
    def _may_read(self) -> Iterator[None]:
        GuardedPretrain.reading = True
        try:
            yield
        finally:
            GuardedPretrain.reading = False

    def _loop(self) -> None:
        real: Any = ArrayImpl._value

        def guarded(array: ArrayImpl) -> Any:
            assert GuardedPretrain.reading, "the loop read a device array between log steps"
            GuardedPretrain.reads += 1
            return real.fget(array)

        ArrayImpl._value = property(guarded)  # type: ignore[method-assign,assignment]
        try:
            super()._loop()
        finally:
            ArrayImpl._value = real  # type: ignore[method-assign]

    def _fetch_metrics(self, metrics: dict[str, Any]) -> dict[str, float]:  # type: ignore[override]
        with self._may_read():
            return super()._fetch_metrics(metrics)

    def _validate(self, final: bool = False) -> dict[str, float]:
        with self._may_read():
            return super()._validate(final)

    def save(self, step: int, state: Any, meta: dict[str, Any] | None = None) -> None:
        with self._may_read():
            super().save(step, state, meta)

    def _stop_if_diverged(self, guard: Any) -> None:
        # a non-finite guard (where the trainer has one) reads its flags at log and checkpoint steps
        with self._may_read():
            super()._stop_if_diverged(guard)  # type: ignore[misc]


JOBS["test/guarded_pretrain"] = GuardedPretrain


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """An output root holding a little tokenized Shakespeare (byte tokenizer)."""
    root = tmp_path_factory.mktemp("hostsync")
    with quick("data/tokenize_variable_dataset", root, "tok") as j:
        j.config.data.dataset = "shakespeare"
        j.config.data.max_documents = 3
        j.config.data.val_fraction = 0.34
        assert j().exit_code == 0
    return root


def test_steps_between_log_steps_read_nothing_from_the_devices(out) -> None:
    GuardedPretrain.reads = 0
    with quick("test/guarded_pretrain", out, "guarded") as j:
        for key, value in MICRO.items():
            j.set(key, value)
        outcome = j()
    assert outcome.exit_code == 0, outcome.message
    records = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [6, 12]
    assert records[0]["startup_time"] > records[0]["compile_time"] > 0
    assert GuardedPretrain.reads > 0  # the guard saw the log steps' reads


def test_the_guard_catches_a_read_between_log_steps(out) -> None:
    class Syncing(GuardedPretrain):
        def report(self, step: int, **info: Any) -> None:
            float(self.state.step)  # a per-step sync, as a careless change would add
            super().report(step, **info)

    JOBS["test/syncing_pretrain"] = Syncing
    with quick("test/syncing_pretrain", out, "syncing") as j:
        for key, value in MICRO.items():
            j.set(key, value)
        with pytest.raises(AssertionError, match="between log steps"):
            j()
