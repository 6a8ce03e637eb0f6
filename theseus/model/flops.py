"""Counting a model's FLOPs from its forward pass, for models that do not state them.

:func:`counted_flops_per_token` traces ``model.apply`` on one sequence (abstractly: nothing
is computed or allocated) and adds up ``2·M·N·K`` for every matrix product
(``dot_general``) in the traced program, multiplying the body of a ``scan`` by its length
and taking the larger branch of a ``cond``. Training costs three forward passes (the
backward pass computes two products per forward one), as in PaLM's appendix B, so the
count reproduces its ``6N + 12·L·H·Q·T`` for a standard transformer: the parameters'
matmuls, the LM head, and attention over the full ``T x T`` (causal masking is not
credited), with embedding lookups (gathers) left out.

Why not the alternatives. XLA's cost analysis of the compiled step counts a ``while``
loop's body once, so a model that scans over its layers comes out ``L`` times too cheap;
it also counts the optimizer update and rematerialised work, which MFU leaves out.
Parameter shapes alone cannot tell a matmul weight from an embedding table and miss
attention, whose cost grows with the sequence. The traced program has neither problem,
for any model, at the cost of one trace when training starts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.extend.core import jaxprs_in_params

TRAINING_PASSES = 3.0
"""Training FLOPs per forward FLOP: the forward pass and a backward pass of twice its cost."""


def _dot_flops(eqn: Any) -> float:
    """``2 · batch · M · N · K`` of one ``dot_general``."""
    (lhs_contract, _), (lhs_batch, _) = eqn.params["dimension_numbers"]
    lhs, rhs = (tuple(v.aval.shape) for v in eqn.invars[:2])
    contract = math.prod(lhs[d] for d in lhs_contract)
    batch = math.prod(lhs[d] for d in lhs_batch)
    return 2.0 * math.prod(lhs) * math.prod(rhs) / (contract * batch)


def matmul_flops(jaxpr: Any) -> float:
    """FLOPs of the matrix products in ``jaxpr`` (a ``Jaxpr`` or ``ClosedJaxpr``), scans unrolled."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0.0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            total += _dot_flops(eqn)
            continue
        inner: Iterable[float] = [matmul_flops(sub) for sub in jaxprs_in_params(eqn.params)]
        if eqn.primitive.name == "scan":
            total += eqn.params["length"] * sum(inner)
        elif eqn.primitive.name == "cond":
            total += max(inner, default=0.0)
        else:  # jit, remat, custom_jvp/vjp, while (its trip count is unknown: once)
            total += sum(inner)
    return total


def counted_flops_per_token(model: nn.Module, seq_len: int) -> float | None:
    """Training FLOPs per token of ``model`` on sequences of ``seq_len`` tokens, counted from its forward pass.

    ``None`` when the forward pass holds no matrix product (nothing to count MFU against).
    """
    sample = jax.ShapeDtypeStruct((1, seq_len), jnp.int32)
    params = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), sample)["params"]
    traced = jax.make_jaxpr(lambda p, x: model.apply({"params": p}, x))(params, sample)
    forward = matmul_flops(traced)
    return TRAINING_PASSES * forward / seq_len if forward > 0 else None


__all__ = ["TRAINING_PASSES", "counted_flops_per_token", "matmul_flops"]
