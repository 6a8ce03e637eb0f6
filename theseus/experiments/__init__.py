"""Your jobs: ``JOBS["family/kind/variant"] = JobClass``, one line each.

Register a job class from a module of this package (or from anywhere on the path)::

    from theseus.experiments.my_model import PretrainMyModel

    JOBS["my_model/train/pretrain"] = PretrainMyModel

The built-in jobs are registered in :mod:`theseus.recipes`, apart from this package, so a
mistake here shows up in ``theseus jobs`` as this package's import error and never hides
them.
"""

from theseus.registry import JOBS

__all__ = ["JOBS"]
