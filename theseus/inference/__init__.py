"""Text generation.

:func:`generate_cached` is the fast batched generator for GPT models (a key/value cache,
one prefill and one compiled decode loop); :func:`generate` is the exact, model-agnostic
reference generator (full recomputation at every step).
"""

from theseus.inference.generate import Generation, generate
from theseus.inference.kv_cache import generate_cached, init_cache

__all__ = ["Generation", "generate", "generate_cached", "init_cache"]
