"""Names of the two physical mesh axes every theseus mesh has.

Not to be confused with :class:`theseus.model.axes.Axes` (plural), the *logical* axis names
that parameters and activations carry. A model's ``sharding`` rules map the latter onto
these: ``(Axes.N_ATTN.value, Axis.SHARD)``. The two ``BATCH`` members differ on purpose:
``Axes.BATCH`` is ``"activation_batch"`` and ``Axis.BATCH`` is ``"batch"``, so a logical name
can never be taken for a mesh axis (the spec warns against mixing the two) and the rule
``activation_batch -> batch`` that splits activations over the data-parallel devices is
spelled out in :func:`theseus.model.sharding.logical_rules`.
"""

from __future__ import annotations

import enum


class Axis(enum.StrEnum):
    """A mesh axis: ``BATCH`` splits the batch (data parallel), ``SHARD`` splits weights (tensor parallel).

    Members are strings (``Axis.SHARD == "shard"``), usable wherever JAX wants an axis name.
    """

    BATCH = "batch"
    SHARD = "shard"
