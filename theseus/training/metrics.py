"""Where training metrics go: metrics.jsonl (always), a console line, W&B and TensorBoard (optional).

``metrics.jsonl`` is the record of a run; the trackers mirror it:

- **W&B** (``logging.wandb=true``): one W&B run per theseus run, with the run's resolved
  ``config.yaml`` as its config and the run id of ``job.json`` as its id, so a resumed run
  continues the same W&B run (``resume="allow"``) and ``--fresh`` starts a new one.
- **TensorBoard** (``logging.tensorboard=true``): scalar events under ``<run>/tensorboard``,
  written with ``tensorboardX``. A resumed run marks the steps after the last record it
  kept as replaced (``purge_step``), so TensorBoard shows what ``metrics.jsonl`` holds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from theseus.config import field, load_yaml
from theseus.errors import TheseusError
from theseus.rundir import RunDirectory, now

if TYPE_CHECKING:
    from theseus.base.hardware import PeakFlops

log = logging.getLogger("theseus")


@dataclass
class LoggingConfig:
    """Metric sinks."""

    wandb: bool = field("logging/wandb", default=False, doc="also log to Weights & Biases", changeable=True)
    wandb_project: str = field(
        "logging/wandb_project", default="theseus", doc="W&B project of the run", changeable=True
    )
    wandb_mode: Literal["online", "offline", "disabled"] = field(
        "logging/wandb_mode", default="offline", doc="online | offline | disabled", changeable=True
    )
    tensorboard: bool = field(
        "logging/tensorboard", default=False, doc="also write TensorBoard event files to <run>/tensorboard",
        changeable=True,
    )


class Tracker(Protocol):
    """An experiment tracker fed with every metrics record."""

    def write(self, record: dict[str, Any]) -> None:
        """Record one log step (``record`` carries ``step``)."""

    def close(self) -> None:
        """Flush and release the tracker."""


class WandbTracker:
    """One W&B run per theseus run: id from job.json, config from config.yaml."""

    def __init__(self, run: RunDirectory, cfg: LoggingConfig, name: str, config: dict[str, Any]) -> None:
        try:
            import wandb
        except ImportError:
            raise TheseusError("logging.wandb=true needs wandb: pip install 'theseus[wandb]'") from None
        self._run = wandb.init(
            project=cfg.wandb_project, name=name, id=run.run_id() or name, resume="allow",
            mode=cfg.wandb_mode, config=config, dir=str(run.path),
        )

    def write(self, record: dict[str, Any]) -> None:
        """Log the record at its step."""
        self._run.log({k: v for k, v in record.items() if k != "step"}, step=int(record["step"]))

    def close(self) -> None:
        """Finish the W&B run."""
        self._run.finish()


class TensorBoardTracker:
    """Scalar events under ``<run>/tensorboard``, one event file per process."""

    def __init__(self, run: RunDirectory) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise TheseusError(
                "logging.tensorboard=true needs tensorboardX: pip install 'theseus[tensorboard]'"
            ) from None
        folder = run.tensorboard_dir
        resumed = folder.is_dir() and any(folder.iterdir())
        kept = run.last_metrics() or {}
        self._writer = SummaryWriter(
            str(folder),
            purge_step=int(kept.get("step", 0)) + 1 if resumed else None,
            filename_suffix=f".{os.getpid()}",
        )

    def write(self, record: dict[str, Any]) -> None:
        """Add every number of the record as a scalar at its step, then flush."""
        step = int(record["step"])
        for key, value in record.items():
            if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def close(self) -> None:
        """Close the event file."""
        self._writer.close()


class MetricsSink:
    """Append metric records to the run directory and to the enabled trackers.

    Only the primary process writes. ``config`` is what W&B receives; by default the
    run's resolved ``config.yaml``.
    """

    def __init__(self, run: RunDirectory, cfg: LoggingConfig, *, primary: bool, run_name: str,
                 config: dict[str, Any] | None = None) -> None:
        self.run = run
        self.primary = primary
        self.trackers: list[Tracker] = []
        if not primary:
            return
        if cfg.tensorboard:
            self.trackers.append(TensorBoardTracker(run))
        if cfg.wandb:
            if config is None:
                config = load_yaml(run.config_path) if run.config_path.is_file() else {}
            self.trackers.append(WandbTracker(run, cfg, run_name, config))

    def write(self, record: dict[str, Any]) -> None:
        """Record one log step (``record`` must carry ``step``); metrics.jsonl also gets the wall-clock ``time``."""
        if not self.primary:
            return
        self.run.append_metrics({**record, "time": now()})
        for tracker in self.trackers:
            tracker.write(record)

    def close(self) -> None:
        """Flush and close every tracker."""
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            tracker.close()


def mfu_fields(
    flops_per_token: float | None, tokens_per_s: float, peak: PeakFlops, n_devices: int
) -> dict[str, Any]:
    """``mfu`` (model FLOPs per second over the devices' peak) and ``mfu_peak_source`` for a record.

    Empty when the model's FLOPs are unknown (``flops_per_token`` is ``None``): such a
    record has no ``mfu`` rather than a made-up one.
    """
    if flops_per_token is None:
        return {}
    return {"mfu": flops_per_token * tokens_per_s / (peak.flops * n_devices), "mfu_peak_source": peak.source}


#: how each figure of a metrics record reads in a progress line, in display order
FIGURES: dict[str, Callable[[float], str]] = {
    "loss": lambda v: f"loss {v:.4f}",
    "val_loss": lambda v: f"val {v:.4f}",
    "lr": lambda v: f"lr {v:.2e}",
    "grad_norm": lambda v: f"gnorm {v:.2f}",
    "tokens_per_s": lambda v: f"{v:,.0f} tok/s",
    "mfu": lambda v: f"MFU {100 * v:.1f}%",
}


def _figures(record: dict[str, Any], keys: Iterable[str]) -> list[str]:
    return [FIGURES[key](record[key]) for key in keys if key in record]


def format_line(record: dict[str, Any], total_steps: int) -> str:
    """A compact progress line: ``step 120/200  loss 2.3100  val 2.4000  lr 3.00e-04  1,234 tok/s  MFU 12.0%``."""
    return "  ".join([f"step {record['step']}/{total_steps}", *_figures(record, FIGURES)])


def format_figures(record: dict[str, Any]) -> str:
    """The few figures a progress display shows beside the count: ``loss 2.3100, val 2.4000, 1,234 tok/s``."""
    return ", ".join(_figures(record, ("loss", "val_loss", "tokens_per_s")))
