"""theseus: train and evaluate language models on JAX, locally and on clusters."""

__version__ = "0.1.0"
