"""Text generation.

:func:`generate_cached` is the fast batched generator for any model that implements the
decoding hook :meth:`~theseus.model.module.Module.decoder` (a key/value cache, one prefill
and one compiled decode loop); :func:`generate` is the exact, model-agnostic reference
generator (full recomputation at every step). :func:`~theseus.inference.from_run.generate_from_run`
(``theseus generate``) picks one for a trained run.
"""

from theseus.inference.generate import Generation, generate
from theseus.inference.kv_cache import generate_cached, init_cache

__all__ = ["Generation", "generate", "generate_cached", "init_cache"]
