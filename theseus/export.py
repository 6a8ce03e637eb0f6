"""Export a trained run as a Hugging Face checkpoint folder that ``from_pretrained`` loads.

``theseus export NAME OUT DIR`` (see :func:`export_run`) reads the run's config and a
checkpoint's parameters and writes ``config.json``, safetensors weights and the tokenizer
files into the new folder ``DIR``:

- an HF-compat run (:class:`~theseus.model.huggingface.HFCompat`) keeps its checkpoint's
  ``config.json``, names and tokenizer; only the weights are the trained ones;
- a native GPT run becomes the transformers class its architecture matches (see
  :mod:`theseus.model.hf.from_gpt`), with the run's tokenizer when it has a
  ``tokenizer.json`` form (the ``huggingface`` backend).

Nothing here imports transformers or torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax.linen
import jax
import numpy as np

from theseus.errors import TheseusError

log = logging.getLogger("theseus")

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Exported:
    """What :func:`export_run` wrote."""

    path: Path
    step: int
    model_type: str
    tensors: int
    files: list[Path]


def export_run(run_dir: Path, dest: Path, *, step: int | None = None, dtype: str | None = None) -> Exported:
    """Write checkpoint ``step`` (default: the newest) of the run in ``run_dir`` to the new folder ``dest``.

    ``dtype`` (``float32``, ``bfloat16``, ``float16``) defaults to the dtype of the HF
    checkpoint the run started from, else to the parameters' dtype.
    """
    from theseus.model.hf.writer import write_checkpoint
    from theseus.trained_run import TrainedRun

    if dtype is not None and dtype not in DTYPES:
        raise TheseusError(f"--dtype {dtype}: choose one of {', '.join(DTYPES)}")
    run = TrainedRun.at(run_dir).load(step)
    config, tensors, copies = hf_checkpoint(run.model, run.params, run.tokenizer, dtype)
    files = write_checkpoint(dest, config, tensors, copies)
    return Exported(dest, run.step, str(config["model_type"]), len(tensors), files)


def hf_checkpoint(
    model: Any, params: Any, tokenizer: Any = None, dtype: str | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray], list[Path]]:
    """``(config.json, tensors, tokenizer files to copy)`` of an HF-compat or GPT model's parameters.

    See :func:`export_run` for ``dtype``; ``tokenizer`` is the one a GPT run used.
    """
    from theseus.model.hf.load import dotted
    from theseus.model.huggingface import HFCompat
    from theseus.model.models.gpt import GPT

    copies: list[Path] = []
    params = flax.linen.meta.unbox(params)
    if isinstance(model, HFCompat):
        config = dict(model.checkpoint.config)
        leaves = jax.tree_util.tree_flatten_with_path(params)[0]
        tensors = {dotted(path): np.asarray(leaf) for path, leaf in leaves}
        copies = model.checkpoint.tokenizer_files
        dtype = dtype or _dtype_name(config.get("dtype", config.get("torch_dtype")))
    elif isinstance(model, GPT):
        from theseus.model.hf.from_gpt import gpt_to_hf

        config, tensors = gpt_to_hf(model, params)
        copies = _tokenizer_files(tokenizer) if tokenizer is not None else []
    else:
        raise TheseusError(f"theseus exports HF-compat and GPT models, not a {type(model).__name__}")
    dtype = dtype or str(next(iter(tensors.values())).dtype)
    if "torch_dtype" in config:
        config["torch_dtype"] = dtype
    config["dtype"] = dtype
    target = np.dtype(jax.numpy.dtype(dtype))
    return config, {name: t.astype(target) for name, t in tensors.items()}, copies


def _dtype_name(value: Any) -> str | None:
    return str(value) if value in DTYPES else None


def _tokenizer_files(tokenizer: Any) -> list[Path]:
    """The ``tokenizer.json`` (and its config, chat template) of a ``huggingface`` tokenizer."""
    identity = tokenizer.identity()
    if identity.get("backend") != "huggingface":
        log.warning(
            "the run's %s tokenizer has no tokenizer.json form: the export holds no tokenizer files",
            identity.get("backend"),
        )
        return []
    from theseus.model.hf.checkpoint import TOKENIZER_FILES

    folder = Path(str(identity["path"])).parent
    return [folder / name for name in TOKENIZER_FILES if (folder / name).is_file()]
