"""The contract every theseus model implements.

A model is a :class:`flax.linen.Module` whose configurable attributes are declared with
:func:`theseus.config.field`, so ``configure(MyModel)`` builds it from the active config.
It says how its parameters are laid out on a device mesh through :attr:`Module.sharding`
(logical axis name → mesh axis) and creates every parameter with logical axis names
(``nn.with_logical_partitioning``). The contract is three members: :meth:`components`,
:attr:`sharding` and ``__call__``.

Everything else trainers, evaluators and generators read from a model is declared here
with a default: :attr:`Module.block_size` (the context length), :attr:`Module.vocab_size`
(rows of the output distribution), :meth:`Module.decoder` (the hook KV-cache generation
uses; without it a model generates by recomputation) and :meth:`Module.flops_per_token`
(its cost for MFU: counted from the forward pass unless the model states it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from theseus.base.axis import Axis
from theseus.config import field
from theseus.errors import TheseusError
from theseus.model.axes import Axes

DTypeName = Literal["float32", "bfloat16", "float16"]
DTYPES: dict[str, jnp.dtype] = {
    "float32": jnp.dtype(jnp.float32),
    "bfloat16": jnp.dtype(jnp.bfloat16),
    "float16": jnp.dtype(jnp.float16),
}
ShardingRules = list[tuple[str, Axis | None]]


class Module(nn.Module):
    """Base class of theseus models: config-bound fields, sharding rules, loss and cost.

    Subclasses implement ``__call__(idx, *, deterministic=True) -> logits[B, T, V]`` and
    :attr:`sharding`, and list the sub-module classes that carry config fields of their own
    in :meth:`components`. The rest is optional (see the module doc).
    """

    param_dtype: DTypeName = field(
        "architecture/param_dtype", default="float32", doc="dtype parameters are stored in"
    )
    dtype: DTypeName = field(
        "architecture/dtype", default="float32", doc="dtype activations and matmuls are computed in"
    )

    @classmethod
    def components(cls) -> list[type]:
        """Classes whose config fields belong to this model's config (followed by ``build``)."""
        return []

    @property
    def sharding(self) -> ShardingRules:
        """Logical-axis rules ``[(Axes.X.value, Axis.SHARD | None), ...]`` for this model's parameters."""
        raise TheseusError(
            f"{type(self).__name__} must define its sharding rules: the sharding property (see Module.sharding)"
        )

    # ---- what trainers, evaluators and generators read (a subclass may redeclare these as fields)

    @property
    def block_size(self) -> int | None:
        """The context length the model is trained and evaluated at; ``None``: the model has none."""
        return self.__dict__.get("_block_size")

    @block_size.setter
    def block_size(self, value: int | None) -> None:
        # lets a subclass redeclare block_size as a (mandatory) dataclass field
        self.__dict__["_block_size"] = value

    @property
    def vocab_size(self) -> int | None:
        """Rows of the output distribution (every token id is below it); ``None``: unknown."""
        return self.__dict__.get("_vocab_size")

    @vocab_size.setter
    def vocab_size(self, value: int | None) -> None:
        self.__dict__["_vocab_size"] = value

    def decoder(self, params: Any) -> tuple[Module, Any]:
        """The module and parameters that KV-cache generation runs (see :mod:`theseus.inference.kv_cache`).

        Generation calls ``module.apply({"params": p, "cache": c}, idx, positions=pos, mask=mask,
        decode=True, mutable=["cache"]) -> (logits[B, T, V], {"cache": c'})``: with ``decode``
        the model appends the keys and values of ``idx`` to the ``cache`` collection and
        attends over everything cached so far, ``positions[B, T]`` are the tokens' absolute
        positions and ``mask[B, T]`` marks real tokens (prompts are left-padded). A model that
        decodes this way overrides this method, returning itself (or a twin better suited to
        decoding, with its parameters converted) — see :meth:`can_decode`. The default raises
        :class:`~theseus.errors.TheseusError`.
        """
        raise TheseusError(
            f"{type(self).__name__} cannot generate with a KV cache: it does not implement Module.decoder()"
        )

    @classmethod
    def can_decode(cls) -> bool:
        """True when the class implements :meth:`decoder` (so ``theseus generate`` can sample it)."""
        return cls.decoder is not Module.decoder

    @property
    def weight_dtype(self) -> jnp.dtype:
        """:attr:`param_dtype` as a JAX dtype."""
        return DTYPES[self.param_dtype]

    @property
    def compute_dtype(self) -> jnp.dtype:
        """:attr:`dtype` as a JAX dtype."""
        return DTYPES[self.dtype]

    @staticmethod
    def constrain(x: jax.Array, axes: Sequence[Axes | None]) -> jax.Array:
        """Pin the layout of activation ``x`` by logical axes; a no-op outside a rules context."""
        return nn.with_logical_constraint(x, tuple(a.value if a is not None else None for a in axes))

    @staticmethod
    def token_loss(
        logits: jax.Array, targets: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Summed next-token cross entropy and the number of tokens it covers.

        ``logits`` is ``[..., V]``, ``targets`` the integer labels ``[...]``; ``mask``
        (default: ``targets >= 0``) weights each position. The target log-probability is
        picked in float32 (see :func:`cross_entropy`).
        Returns ``(sum of mask * nll, sum of mask)`` so callers can normalise by the true
        token count across micro-batches and devices.
        """
        weights = (targets >= 0) if mask is None else mask
        weights = weights.astype(jnp.float32)
        safe_targets = jnp.where(weights > 0, targets, 0).astype(jnp.int32)
        nll = cross_entropy(logits.astype(jnp.float32), safe_targets)
        return jnp.sum(nll * weights), jnp.sum(weights)

    def matmul_params(self) -> int | None:
        """Parameters that take part in matmuls, LM head included, input embedding lookups excluded.

        ``None`` (the default): not stated, and :meth:`flops_per_token` counts the forward pass.
        """
        return None

    def attention_flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token spent in attention scores and values at ``seq_len`` (with :meth:`matmul_params`)."""
        return 0.0

    def flops_per_token(self, seq_len: int) -> float | None:
        """Training FLOPs (forward + backward) per token at ``seq_len``, for MFU; ``None``: unknown.

        A model that states :meth:`matmul_params` gets PaLM's appendix B, ``6N + attention``
        (for a standard transformer the attention term is ``12·L·H·Q·T``: layers, heads, head
        dim, sequence length; causal masking is *not* credited, as in PaLM, nanoGPT and
        torchtitan). Any other model's matrix products are counted from its forward pass
        (:func:`theseus.model.flops.counted_flops_per_token`, the same convention); override
        this for more precision. When it is ``None`` the trainer reports no MFU.
        """
        matmul = self.matmul_params()
        if matmul is None:
            from theseus.model.flops import counted_flops_per_token

            return counted_flops_per_token(self, seq_len)
        return 6.0 * matmul + self.attention_flops_per_token(seq_len)

    def activation_bytes(self, batch: int, seq_len: int) -> float | None:
        """A lower bound on the bytes of activations a training step keeps for ``batch`` sequences of ``seq_len``.

        The trainer compares it (plus parameters and gradients) with a device's memory
        before compiling, to refuse a batch or block size that cannot fit in one line. The
        default, ``None``, skips that check.
        """
        return None

    @staticmethod
    def num_params(params: Any) -> int:
        """Number of scalars in a parameter tree (boxed or plain)."""
        leaves = jax.tree_util.tree_leaves(nn.meta.unbox(params))
        return int(sum(leaf.size for leaf in leaves))


@jax.custom_vjp
def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-position ``logsumexp(logits) - logits[target]`` for float32 ``logits[..., V]``.

    Its gradient is written out, ``softmax(logits) - onehot(target)`` in one pass over the
    vocabulary, instead of being derived through the max shift, the exponentials and the
    gather: on XLA:CPU that makes the loss's backward about three times cheaper. The target
    logit is read with ``take_along_axis``; no one-hot ``[..., V]`` is built forward.
    """
    return _cross_entropy_forward(logits, targets)[0]


def _cross_entropy_forward(
    logits: jax.Array, targets: jax.Array
) -> tuple[jax.Array, tuple[jax.Array, jax.Array, jax.Array]]:
    peak = jnp.max(logits, axis=-1, keepdims=True)
    log_norm = jnp.log(jnp.sum(jnp.exp(logits - peak), axis=-1))
    # shifted by the max like the exponentials, but only at the targets: no [..., V] array is stored
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0] - peak[..., 0]
    return log_norm - target_logit, (logits, peak[..., 0] + log_norm, targets)


def _cross_entropy_backward(
    residuals: tuple[jax.Array, jax.Array, jax.Array], grad: jax.Array
) -> tuple[jax.Array, None]:
    logits, lse, targets = residuals
    probs = jnp.exp(logits - lse[..., None])
    hit = jnp.arange(logits.shape[-1], dtype=targets.dtype) == targets[..., None]
    return grad[..., None] * (probs - hit.astype(logits.dtype)), None


cross_entropy.defvjp(_cross_entropy_forward, _cross_entropy_backward)
