"""The native GPT jobs."""

from __future__ import annotations

from theseus.model.models import GPT
from theseus.training.trainer import BaseTrainer, BaseTrainerConfig


class PretrainGPT(BaseTrainer[BaseTrainerConfig, GPT]):
    """Pretrain a native GPT (decoder-only, RoPE, pre-norm) on tokenized data."""

    MODEL = GPT
    CONFIG = BaseTrainerConfig
