"""The root of every model config (kept apart so trainer and models import it without a cycle)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ModelConfig:
    """Hyperparameters shared by name across models."""

    seed: int = 0
