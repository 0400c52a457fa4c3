"""recfuse: long/short-term interest fusion recommender with item text."""

from __future__ import annotations

__version__ = "0.1.0"

from recfuse.columns import Columns
from recfuse.data.dataset import IdMap, Interactions

__all__ = ["Columns", "IdMap", "Interactions", "__version__"]
