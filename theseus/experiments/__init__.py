"""Built-in jobs: ``JOBS["family/kind/variant"] = JobClass``.

The built-ins are registered lazily (``"module:Class"``, imported on first use) so that
running one job never imports another's dependencies; a job whose module fails to
import is listed by ``theseus jobs`` with the reason. Your own job is one line here:
``JOBS["my_model/train/pretrain"] = PretrainMyModel``.
"""

from theseus.registry import JOBS

JOBS.lazy("data/tokenize_variable_dataset", "theseus.data.tokenize:TokenizeVariableDatasetJob")
JOBS.lazy("data/tokenize_blockwise_dataset", "theseus.data.tokenize:TokenizeBlockwiseDatasetJob")
JOBS.lazy("data/train_tokenizer", "theseus.data.train_tokenizer:TrainTokenizerJob")
JOBS.lazy("gpt/train/pretrain", "theseus.experiments.gpt:PretrainGPT")
JOBS.lazy("gpt/evaluate", "theseus.experiments.gpt:EvaluateGPTCheckpoint")

__all__ = ["JOBS"]
