"""Data: readers, the dataset registry, the in-memory log and the splits.

``describe`` is imported from :mod:`recfuse.data.describe` directly: re-exporting the
function here would shadow the module of the same name.
"""

from __future__ import annotations

from recfuse.data.dataset import DataError, IdMap, Interactions
from recfuse.data.readers import (
    FORMATS,
    detect_format,
    load,
    read_atomic,
    read_log,
    read_ml100k,
    read_movielens_csv,
    read_movielens_dat,
    read_sequences,
)
from recfuse.data.registry import DATASETS, get, list_datasets, load_dataset

__all__ = [
    "DATASETS",
    "FORMATS",
    "DataError",
    "IdMap",
    "Interactions",
    "detect_format",
    "get",
    "list_datasets",
    "load",
    "load_dataset",
    "read_atomic",
    "read_log",
    "read_ml100k",
    "read_movielens_csv",
    "read_movielens_dat",
    "read_sequences",
]
