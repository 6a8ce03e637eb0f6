"""Built-in jobs: ``JOBS["family/kind/variant"] = JobClass``.

Each family sits in an ``optional`` block so a module whose dependencies are missing
is reported by ``theseus jobs`` instead of taking the whole registry down.
"""

from theseus.registry import JOBS

with JOBS.optional("data/tokenize_variable_dataset", "data/tokenize_blockwise_dataset", "data/train_tokenizer"):
    from theseus.data.tokenize import TokenizeBlockwiseDatasetJob, TokenizeVariableDatasetJob
    from theseus.data.train_tokenizer import TrainTokenizerJob

    JOBS["data/tokenize_variable_dataset"] = TokenizeVariableDatasetJob
    JOBS["data/tokenize_blockwise_dataset"] = TokenizeBlockwiseDatasetJob
    JOBS["data/train_tokenizer"] = TrainTokenizerJob

with JOBS.optional("gpt/train/pretrain"):
    from theseus.experiments.gpt import PretrainGPT

    JOBS["gpt/train/pretrain"] = PretrainGPT

__all__ = ["JOBS"]
