"""Text generation. :func:`generate` is the exact reference generator (full recomputation)."""

from theseus.inference.generate import Generation, generate

__all__ = ["Generation", "generate"]
