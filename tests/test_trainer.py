"""The shared training loop: early stopping, the best state restored, why a fit stopped, the time cap."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from recfuse.train.trainer import TrainConfig, Trainer


@dataclass
class FakeConfig(TrainConfig):
    """The loop's settings plus the learning rate that every model config declares."""

    learning_rate: float = 1e-3


class FakeModel:
    """A one-weight stand-in (the trainer is under test, not a recommender).

    Its valid metric is read from a script, one value per epoch.
    """

    def __init__(self, script: list[float]) -> None:
        self.module = torch.nn.Linear(1, 1)
        self.device = torch.device("cpu")
        self.script = iter(script)

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        yield {"x": torch.ones(4, 1)}

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module(batch["x"]).pow(2).mean()

    def validate(self, valid: object) -> float:
        return next(self.script)


def _fit(script: list[float], **config: object) -> dict:
    c = FakeConfig(epochs=len(script), progress=False, precision="fp32", **config)  # type: ignore[arg-type]
    return Trainer(c).fit(FakeModel(script), valid=object())


def test_early_stopping_keeps_the_best_epoch() -> None:
    info = _fit([0.1, 0.3, 0.2, 0.2, 0.2, 0.9], patience=3)
    assert info["best_epoch"] == 2
    assert info["epochs_run"] == 5  # stopped 3 epochs after the best, before the 0.9


def test_the_fit_says_why_it_stopped() -> None:
    assert _fit([0.1, 0.3, 0.2, 0.2, 0.2, 0.9], patience=3)["stopped"] == "patience"
    assert _fit([0.1, 0.2, 0.3])["stopped"] == "epochs"


class SlowModel(FakeModel):
    """Each batch takes 50 ms; an epoch has 100 of them."""

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        for _ in range(100):
            yield {"x": torch.ones(4, 1)}

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        time.sleep(0.05)
        return super().training_loss(batch)


def test_the_time_cap_is_checked_inside_the_epoch() -> None:
    """A 0.3 s cap on 5 s epochs ends the fit in the first epoch, validated, with the reason."""
    c = FakeConfig(epochs=10, progress=False, precision="fp32", max_seconds=0.3)
    started = time.perf_counter()
    info = Trainer(c).fit(SlowModel([0.1] * 10), valid=object())
    assert time.perf_counter() - started < 2.0
    assert info["stopped"] == "max_seconds" and info["epochs_run"] == 1
    assert info["best_valid_ndcg@10"] == pytest.approx(0.1)


def test_a_config_without_a_learning_rate_is_refused() -> None:
    with pytest.raises(NotImplementedError, match="declares no learning_rate"):
        Trainer(TrainConfig(epochs=1, progress=False)).fit(FakeModel([0.1]), valid=object())


def test_without_a_terminal_each_epoch_prints_a_plain_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Output to a file (CI, nohup): no progress bar, one line per epoch with loss, valid and best so far."""
    c = FakeConfig(epochs=3, progress=True, precision="fp32")
    Trainer(c).fit(FakeModel([0.1, 0.3, 0.2]), valid=object())
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    assert lines[2].startswith("model seed 0 epoch 3/3: loss ") and "valid ndcg@10 0.2000 (best 0.3000 @ 2)" in lines[2]
