"""Data: readers, the dataset registry, the in-memory log and the splits."""

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

__all__ = [
    "FORMATS",
    "DataError",
    "IdMap",
    "Interactions",
    "detect_format",
    "load",
    "read_atomic",
    "read_log",
    "read_ml100k",
    "read_movielens_csv",
    "read_movielens_dat",
    "read_sequences",
]
