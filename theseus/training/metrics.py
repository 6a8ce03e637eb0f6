"""Where training metrics go: metrics.jsonl (always), a console line, and W&B (optional)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Literal

from theseus.config import field
from theseus.rundir import RunDirectory, now

log = logging.getLogger("theseus")


@dataclass
class LoggingConfig:
    """Metric sinks."""

    wandb: bool = field("logging/wandb", default=False, doc="also log to Weights & Biases")
    wandb_project: str = field("logging/wandb_project", default="theseus")
    wandb_mode: Literal["online", "offline", "disabled"] = field(
        "logging/wandb_mode", default="offline", doc="online | offline | disabled"
    )


class MetricsSink:
    """Append metric records to the run directory and, when enabled, to W&B."""

    def __init__(self, run: RunDirectory, cfg: LoggingConfig, *, primary: bool, run_name: str,
                 config: dict[str, Any] | None = None) -> None:
        self.run = run
        self.primary = primary
        self._wandb: Any = None
        if cfg.wandb and primary:
            try:
                import wandb
            except ImportError:
                log.warning("logging.wandb=true but wandb is not installed (pip install 'theseus[wandb]'); skipping")
            else:
                os.environ.setdefault("WANDB_DIR", str(run.path))
                self._wandb = wandb.init(
                    project=cfg.wandb_project, name=run_name, id=run_name, resume="allow",
                    mode=cfg.wandb_mode, config=config or {}, dir=str(run.path),
                )

    def write(self, record: dict[str, Any]) -> None:
        """Record one log step (``record`` must carry ``step``); metrics.jsonl also gets the wall-clock ``time``."""
        if not self.primary:
            return
        self.run.append_metrics({**record, "time": now()})
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in record.items() if k != "step"}, step=int(record["step"]))

    def close(self) -> None:
        """Flush and close the W&B run."""
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def format_line(record: dict[str, Any], total_steps: int) -> str:
    """A compact progress line: ``step 120/200 loss 2.31 val 2.40 lr 3e-4 1.2k tok/s MFU 12%``."""
    parts = [f"step {record['step']}/{total_steps}"]
    if "loss" in record:
        parts.append(f"loss {record['loss']:.4f}")
    if "val_loss" in record:
        parts.append(f"val {record['val_loss']:.4f}")
    if "lr" in record:
        parts.append(f"lr {record['lr']:.2e}")
    if "grad_norm" in record:
        parts.append(f"gnorm {record['grad_norm']:.2f}")
    if "tokens_per_s" in record:
        parts.append(f"{record['tokens_per_s']:,.0f} tok/s")
    if "mfu" in record:
        parts.append(f"MFU {100 * record['mfu']:.1f}%")
    return "  ".join(parts)
