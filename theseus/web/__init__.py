"""The dashboard behind ``theseus web OUT``: runs, live loss curves, logs, checkpoints, datasets.

A Starlette app with server-rendered Jinja2 pages and a little vendored JavaScript
(uPlot for the charts); no build step and nothing fetched from the network at run
time. It reads the run directory (:mod:`theseus.rundir`) and never imports JAX.

- :mod:`theseus.web.runs`: run summaries for the list, from pluggable sources;
- :mod:`theseus.web.series`: metrics.jsonl as downsampled columns and byte-offset increments;
- :mod:`theseus.web.files`: reading files of a run (log tail by seeking) only inside OUT;
- :mod:`theseus.web.actions`: stopping a local run (SIGTERM, guarded against recycled pids);
- :mod:`theseus.web.security`: the access token, CSRF tokens, host checks and headers;
- :mod:`theseus.web.app` builds the app; :mod:`theseus.web.server` runs it.
"""

from __future__ import annotations

import importlib.util

#: the modules the dashboard needs beyond the core install (the ``web`` extra)
REQUIRED = ("starlette", "uvicorn", "jinja2")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a module blocked in sys.modules
        return False


def missing_dependencies() -> list[str]:
    """The modules of the ``web`` extra that are not installed."""
    return [name for name in REQUIRED if not _importable(name)]
