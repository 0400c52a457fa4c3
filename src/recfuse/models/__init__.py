"""Models, and the registry that names them (greppable, no import magic)."""

from __future__ import annotations

from recfuse.models.base import ModelConfig, Recommender
from recfuse.models.fusion import Fusion
from recfuse.models.gru4rec import GRU4Rec
from recfuse.models.itemknn import ItemKNN
from recfuse.models.mf import ALS, BPR
from recfuse.models.pop import Popularity
from recfuse.models.sasrec import SASRec

MODELS: dict[str, type[Recommender]] = {
    "pop": Popularity,
    "itemknn": ItemKNN,
    "als": ALS,
    "bpr": BPR,
    "gru4rec": GRU4Rec,
    "sasrec": SASRec,
    "fusion": Fusion,
}

__all__ = ["MODELS", "ModelConfig", "Recommender"]
