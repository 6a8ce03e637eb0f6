"""Model families, exported for experiments: ``from theseus.model.models import GPT``."""

from theseus.model.models.gpt import GPT

__all__ = ["GPT"]
