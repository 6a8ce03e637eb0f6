"""Data: tokenizers, datasets, tokenization jobs and the batch loader.

- :mod:`theseus.data.tokenizer`: the :class:`~theseus.data.tokenizer.Tokenizer` protocol,
  :class:`~theseus.data.tokenizer.TokenizerConfig` and ``get_tokenizer`` (byte, tiktoken,
  huggingface backends; chat formatting in :mod:`theseus.data.chat`).
- :mod:`theseus.data.datasets`: document sources, registered in ``DATASETS``.
- :mod:`theseus.data.tokenize`: the ``data/tokenize_variable_dataset`` and
  ``data/tokenize_blockwise_dataset`` jobs; :mod:`theseus.data.train_tokenizer`: ``data/train_tokenizer``.
- :mod:`theseus.data.loader`: memmapped datasets and deterministic batches for training.
"""
