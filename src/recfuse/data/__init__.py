"""Data: readers, the dataset registry, the in-memory log and the splits."""

from __future__ import annotations

from recfuse.data.dataset import DataError, IdMap, Interactions

__all__ = ["DataError", "IdMap", "Interactions"]
