"""Small layers shared by the neural models."""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Module):
    """Inverted dropout whose mask comes from ``torch.rand``.

    Same maths as ``nn.Dropout``; on CPU ``nn.Dropout``'s ``bernoulli_`` was
    the largest single cost of a SASRec epoch on ml-100k (21 % of the time),
    and ``torch.rand`` draws the same mask about 4x faster (3.7 ms -> 0.8 ms
    for a 128x50x64 tensor on 2 cores).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"
