"""Remote dispatch: ``theseus submit`` to plain SSH hosts and SLURM clusters.

:mod:`theseus.dispatch.dispatch` is the API (``submit``, ``plan``, ``get``,
``list_submissions``); ``config`` reads ``~/.theseus.yaml``; ``plain`` and ``slurm`` are
the backends; ``ship`` bundles the code; ``environment`` builds the remote virtualenv;
``records`` keeps what was submitted; ``ssh`` and ``shell`` talk to remotes safely.
"""

from theseus.dispatch.dispatch import SubmittedRun, get, list_submissions, plan, render, submit

__all__ = ["SubmittedRun", "get", "list_submissions", "plan", "render", "submit"]
