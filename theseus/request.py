"""The ``request`` section of a run YAML: what hardware ``theseus submit`` asks for.

::

    request:
      chip: h100      # accelerator kind; null (or absent) for a CPU run
      n_chips: 8      # how many in total; 0 means a CPU run

``theseus configure --chip/-n`` and ``QuickJob.save(chip=, n_chips=)`` write it through
:func:`request_section`; ``theseus submit`` reads it with :meth:`Request.from_tree`. One
rule everywhere: ``n_chips: 0`` is a CPU run, so its ``chip`` is ``null``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from theseus.errors import ConfigError

CHIP_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
REQUEST_KEYS = ("chip", "n_chips")


def _check_chip(chip: Any, where: str) -> str | None:
    if chip is None:
        return None
    if not isinstance(chip, str) or not CHIP_PATTERN.match(chip):
        raise ConfigError(f"request.chip{where} must be a chip name such as h100, got {chip!r}")
    return chip


def _check_n_chips(n_chips: Any, where: str) -> int | None:
    if n_chips is None:
        return None
    if isinstance(n_chips, bool) or not isinstance(n_chips, int) or n_chips < 0:
        raise ConfigError(f"request.n_chips{where} must be a whole number >= 0, got {n_chips!r}")
    return n_chips


def request_section(
    previous: Mapping[str, Any] | None = None, chip: str | None = None, n_chips: int | None = None
) -> dict[str, Any]:
    """The ``request`` section: ``previous`` with ``chip``/``n_chips`` laid over it.

    ``n_chips=0`` makes the run a CPU run (``chip: null``). Returns ``{}`` when nothing
    is requested. Raises :class:`ConfigError` for a negative count or a malformed chip.
    """
    out: dict[str, Any] = dict(previous or {})
    if chip is not None:
        out["chip"] = _check_chip(chip, "")
    if n_chips is not None:
        out["n_chips"] = _check_n_chips(n_chips, "")
    if out.get("n_chips") == 0:
        out["chip"] = None
    return out


@dataclass(frozen=True)
class Request:
    """A hardware request: ``chip`` (``None`` for CPU) and the total ``n_chips``."""

    chip: str | None = None
    n_chips: int = 0

    @property
    def cpu(self) -> bool:
        """True for a CPU run."""
        return self.chip is None or self.n_chips == 0

    @classmethod
    def from_tree(cls, section: Any, where: str = "") -> Request:
        """Read a ``request`` section strictly (``where`` names its file in errors).

        A chip without a count asks for one chip; a count without a chip is refused.
        """
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise ConfigError(f"request{where} must be a mapping with chip and n_chips")
        for key in section:
            if key not in REQUEST_KEYS:
                raise ConfigError(f"unknown key request.{key}{where} (known: {', '.join(REQUEST_KEYS)})")
        chip = _check_chip(section.get("chip"), where)
        n_chips = _check_n_chips(section.get("n_chips"), where)
        if n_chips is None:
            n_chips = 0 if chip is None else 1
        if chip is None and n_chips > 0:
            raise ConfigError(f"request.n_chips{where} is {n_chips} but no request.chip says which chip")
        return cls(chip=None if n_chips == 0 else chip, n_chips=n_chips)

    def with_overrides(self, chip: str | None = None, n_chips: int | None = None) -> Request:
        """This request with command-line ``--chip``/``-n`` applied (same rule as the YAML)."""
        if n_chips is None:
            # --chip alone on a CPU request asks for one chip of that kind
            n_chips = 1 if chip is not None and self.n_chips == 0 else self.n_chips
        section = request_section({}, chip if chip is not None else self.chip, n_chips)
        return Request.from_tree(section, " (command line)")

    def describe(self) -> str:
        """``8 x h100`` or ``CPU``."""
        return "CPU" if self.cpu else f"{self.n_chips} x {self.chip}"
