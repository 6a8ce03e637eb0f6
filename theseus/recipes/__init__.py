"""The built-in jobs: ``JOBS.lazy("family/kind/variant", "module:Class")``, imported on first use.

They live here, outside ``theseus.experiments``, so that your own registrations there (the
tutorial's ``JOBS["my_model/train/pretrain"] = PretrainMyModel``) can never take them
down: a module of yours that fails to import is listed by ``theseus jobs`` with its
reason, and every built-in job stays available. Running one job never imports another's
dependencies.
"""

from theseus.registry import JOBS

JOBS.lazy("data/tokenize_variable_dataset", "theseus.data.tokenize:TokenizeVariableDatasetJob")
JOBS.lazy("data/tokenize_blockwise_dataset", "theseus.data.tokenize:TokenizeBlockwiseDatasetJob")
JOBS.lazy("data/train_tokenizer", "theseus.data.train_tokenizer:TrainTokenizerJob")
JOBS.lazy("gpt/train/pretrain", "theseus.recipes.gpt:PretrainGPT")
JOBS.lazy("gpt/evaluate", "theseus.recipes.gpt:EvaluateGPTCheckpoint")
JOBS.lazy("hf/train/finetune", "theseus.recipes.huggingface:FinetuneHF")
JOBS.lazy("hf/evaluate", "theseus.recipes.huggingface:EvaluateHFCheckpoint")

__all__ = ["JOBS"]
