"""The built-in datasets: ``DATASETS["key"] = DatasetClass``, one line each.

Add your own the same way, in this file or in a module loaded with ``--load``.
"""

from theseus.data.datasets.alpaca import Alpaca
from theseus.data.datasets.fineweb import FineWeb
from theseus.data.datasets.huggingface import HuggingFace
from theseus.data.datasets.shakespeare import Shakespeare
from theseus.data.datasets.text_files import TextFiles
from theseus.data.datasets.tinystories import TinyStories
from theseus.registry import DATASETS

DATASETS["shakespeare"] = Shakespeare
DATASETS["text_files"] = TextFiles
DATASETS["huggingface"] = HuggingFace
DATASETS["fineweb"] = FineWeb
DATASETS["tinystories"] = TinyStories
DATASETS["alpaca"] = Alpaca
