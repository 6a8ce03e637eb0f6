"""Register the data jobs for CLI tests (``--load``), whether or not theseus.experiments does."""

from theseus.data.tokenize import TokenizeBlockwiseDatasetJob, TokenizeVariableDatasetJob
from theseus.data.train_tokenizer import TrainTokenizerJob
from theseus.registry import JOBS

JOBS["data/tokenize_variable_dataset"] = TokenizeVariableDatasetJob
JOBS["data/tokenize_blockwise_dataset"] = TokenizeBlockwiseDatasetJob
JOBS["data/train_tokenizer"] = TrainTokenizerJob
