"""Data: read files and built-in data sets, split them, and turn them into tensor batches.

    splits = load_data(cfg.data, cfg.task)      # DataSplits: train/val/test batches + preprocessor
    pre = Preprocessor.from_state(state)         # the same preprocessing at predict time
"""

from practicum.data.builtin import DATASETS, list_datasets
from practicum.data.inspection import inspect_file
from practicum.data.loading import load_data, raw_split
from practicum.data.preprocess import Preprocessor
from practicum.data.spec import Batch, DataSplits, InputSpec

__all__ = [
    "DATASETS",
    "Batch",
    "DataSplits",
    "InputSpec",
    "Preprocessor",
    "inspect_file",
    "list_datasets",
    "load_data",
    "raw_split",
]
