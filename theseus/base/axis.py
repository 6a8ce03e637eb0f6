"""Names of the two physical mesh axes every theseus mesh has."""

from __future__ import annotations

import enum


class Axis(enum.StrEnum):
    """A mesh axis: ``BATCH`` splits the batch (data parallel), ``SHARD`` splits weights (tensor parallel).

    Members are strings (``Axis.SHARD == "shard"``), usable wherever JAX wants an axis name.
    """

    BATCH = "batch"
    SHARD = "shard"
