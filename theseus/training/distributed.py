"""Multi-process setup: ``jax.distributed.initialize`` from explicit settings or SLURM.

Explicit settings (``system/coordinator_address``, ``system/num_processes``,
``system/process_id``) win; then the same three from the environment
(``THESEUS_COORDINATOR_ADDRESS``, ``THESEUS_NUM_PROCESSES``, ``THESEUS_PROCESS_ID``, set by
``theseus submit`` on plain SSH hosts, so they stay out of the run's config); otherwise a
SLURM allocation with more than one task is detected from its environment; otherwise the
run is a single process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from theseus.config import field
from theseus.errors import TheseusError

log = logging.getLogger("theseus")


@dataclass
class DistributedConfig:
    """How the processes of one run find each other."""

    coordinator_address: str | None = field(
        "system/coordinator_address", default=None, doc="host:port of process 0 (None: SLURM or single process)",
        changeable=True,
    )
    num_processes: int | None = field(
        "system/num_processes", default=None, doc="total processes", ge=1,
        changeable=True,
    )
    process_id: int | None = field(
        "system/process_id", default=None, doc="this process's index", ge=0,
        changeable=True,
    )


def slurm_process_count() -> int:
    """Tasks in the current SLURM step (1 outside SLURM)."""
    for var in ("SLURM_NTASKS", "SLURM_NPROCS"):
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                return 1
    return 1


def initialize(cfg: DistributedConfig) -> bool:
    """Initialise multi-process JAX if asked to; True when the run has several processes."""
    import jax

    explicit = (cfg.coordinator_address, cfg.num_processes, cfg.process_id)
    if all(v is None for v in explicit):
        cfg = from_environment() or cfg
        explicit = (cfg.coordinator_address, cfg.num_processes, cfg.process_id)
    if any(v is not None for v in explicit):
        if any(v is None for v in explicit):
            raise TheseusError(
                "system.coordinator_address, system.num_processes and system.process_id must be set together"
            )
        # CPU collectives across processes (harmless for accelerators, which bring their own)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        _init(jax, cfg.coordinator_address, cfg.num_processes, cfg.process_id)
        return True
    if slurm_process_count() > 1:
        # CPU collectives across processes, as above
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        _init(jax, None, None, None)
        return True
    return False


ENV_VARS = ("THESEUS_COORDINATOR_ADDRESS", "THESEUS_NUM_PROCESSES", "THESEUS_PROCESS_ID")


def from_environment() -> DistributedConfig | None:
    """The multi-process settings from ``THESEUS_*`` environment variables, or ``None``."""
    address, n, pid = (os.environ.get(v) for v in ENV_VARS)
    if address is None and n is None and pid is None:
        return None
    try:
        return DistributedConfig(address, int(n) if n is not None else None, int(pid) if pid is not None else None)
    except ValueError:
        raise TheseusError(f"{', '.join(ENV_VARS[1:])} must be whole numbers") from None


def _init(jax_mod: object, address: str | None, n: int | None, pid: int | None) -> None:
    import jax

    if jax.distributed.is_initialized():
        return
    log.info("joining a %s-process run (coordinator %s, process %s)", n or "SLURM", address or "auto", pid)
    jax.distributed.initialize(coordinator_address=address, num_processes=n, process_id=pid)
