"""The fusion model's settings: the short-term transformer, the long-term branch, the signals, the gate.

The figures behind each default are in the experiment log (``docs/experiments/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recfuse.models.sequential import SequentialConfig

Gate = Literal["learned", "fixed", "short", "long"]
Scope = Literal["all", "past"]
GATES: tuple[Gate, ...] = ("learned", "fixed", "short", "long")
SCOPES: tuple[Scope, ...] = ("all", "past")


@dataclass
class FusionConfig(SequentialConfig):
    """Settings of :class:`~recfuse.models.fusion.Fusion`, on top of the shared sequential and training ones.

    Examples
    --------
    >>> FusionConfig(gate="fixed").gate
    'fixed'
    """

    learning_rate: float = 3e-3
    """Adam's step size."""
    label_smoothing: float = 0.1
    """Share of each target's probability spread evenly over the catalogue, in every softmax loss."""
    n_layers: int = 2
    """Transformer blocks of the short-term branch."""
    n_heads: int = 1
    """Attention heads of each short-term block."""
    attn_dropout: float = 0.2
    """Dropout on the short-term attention weights."""
    long_len: int = 200
    """History events before the short-term window that the long-term branch also reads."""
    long_scope: Scope = "all"
    """Long-term branch reads ``all`` (older events and the window) or ``past`` (older only; short branch = SASRec)."""
    use_text: bool = True
    """Item text in the item tower, when ``fit`` is given item text vectors."""
    use_time: bool = True
    """Time-gap features and the request-time gap, when the log has timestamps."""
    use_rating: bool = True
    """Rating features, when the log has ratings."""
    gate: Gate = "learned"
    """``learned`` gate, ``fixed`` 50/50, ``short`` (short-term only) or ``long`` (long-term only)."""
    user_emb: bool = True
    """A learned vector per training user in the long-term interest (zero for a user the model never saw)."""
    user_swap: float = 0.5
    """Probability that a training row's user is swapped for a random one (SSE-PT's regulariser)."""
    id_dropout: float = 0.0
    """Share of items trained with their text part alone, as practice for items without events."""
    aux_loss: float = 0.5
    """Weight of each branch's own softmax loss, which keeps both branches useful to the gate."""
    aux_share: float = 0.25
    """Share of positions the branch losses are computed on (each costs a catalogue softmax)."""
    trend_days: float = 30.0
    """Window of the trend term (item popularity before the request time), in days; 0 turns it off."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gate not in GATES:
            raise ValueError(f"fusion gate must be one of {GATES}, got {self.gate!r}")
        if self.long_scope not in SCOPES:
            raise ValueError(f"fusion long_scope must be one of {SCOPES}, got {self.long_scope!r}")
        if not 0.0 <= self.user_swap <= 1.0:
            raise ValueError(f"fusion user_swap must be in [0, 1], got {self.user_swap}")
        if not 0.0 <= self.id_dropout < 1.0:
            raise ValueError(f"fusion id_dropout must be in [0, 1), got {self.id_dropout}")
        if self.trend_days < 0:
            raise ValueError(f"fusion trend_days must be >= 0, got {self.trend_days}")
