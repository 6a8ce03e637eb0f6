"""Built-in jobs: ``JOBS["family/kind/variant"] = JobClass``.

Each family sits in an ``optional`` block so a module whose dependencies are missing
is reported by ``theseus jobs`` instead of taking the whole registry down.
"""

from theseus.registry import JOBS

__all__ = ["JOBS"]
