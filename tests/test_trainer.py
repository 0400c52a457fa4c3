"""The shared training loop: early stopping, the best state restored, the plateau schedule."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from recfuse.train.trainer import TrainConfig, Trainer


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
    c = TrainConfig(epochs=len(script), progress=False, precision="fp32", **config)  # type: ignore[arg-type]
    return Trainer(c).fit(FakeModel(script), valid=object())


def test_early_stopping_keeps_the_best_epoch() -> None:
    info = _fit([0.1, 0.3, 0.2, 0.2, 0.2, 0.9], patience=3)
    assert info["best_epoch"] == 2
    assert info["epochs_run"] == 5  # stopped 3 epochs after the best, before the 0.9


def test_learning_rate_decays_on_each_plateau_and_resets_on_a_new_best() -> None:
    script = [0.1, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]
    info = _fit(script, learning_rate=1.0, lr_decay=0.5, decay_after=2, patience=10)
    lrs = [row["lr"] for row in info["history"]]
    # best at 2; plateau of 2 -> decay after epoch 4; new best at 5; decays after 7 and 9.
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125]
    assert [row["lr"] for row in _fit(script, learning_rate=1.0)["history"]] == [1.0] * 10


def test_bad_decay_is_refused() -> None:
    with pytest.raises(ValueError, match="lr_decay"):
        _fit([0.1], lr_decay=0.0)


class FakePathModel:
    """A stand-in whose one weight follows a scripted path, one value per epoch, and whose valid metric
    is ``-(w - 1)^2``: no single epoch lands on 1, some averages of them come close."""

    def __init__(self, path: list[float]) -> None:
        self.module = torch.nn.Linear(1, 1)
        self.device = torch.device("cpu")
        self.path = iter(path)

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        yield {}

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            self.module.weight.fill_(next(self.path))
        return (self.module.weight * 0).sum()  # zero gradient: Adam leaves the weight where the path put it

    def validate(self, valid: object) -> float:
        return -float((self.module.weight.detach() - 1.0) ** 2)


def test_greedy_soup_averages_the_best_epochs_while_valid_improves() -> None:
    path = [0.0, 2.0, 0.4, 1.7, 3.0, 3.0, 3.0]  # valid -1, -1, -0.36, -0.49, -4, ...
    c = TrainConfig(epochs=len(path), progress=False, precision="fp32", patience=3, average_top=3)
    model = FakePathModel(path)
    info = Trainer(c).fit(model, valid=object())
    # best 0.4 (epoch 3); + 1.7 (epoch 4) -> 1.05 is better; + 0.0 (epoch 1) -> 0.7 is worse: left out
    assert info["soup"]["epochs"] == [3, 4] and info["soup"]["tried"] == 3
    assert float(model.module.weight.detach()) == pytest.approx(1.05)
    assert info["best_valid_ndcg@10"] == pytest.approx(-0.0025, abs=1e-6)  # float32 weight
    assert info["best_epoch"] == 3  # the best single epoch, as before
    alone = FakePathModel(path)
    info = Trainer(TrainConfig(epochs=len(path), progress=False, precision="fp32", patience=3)).fit(alone, valid=object())
    assert "soup" not in info and float(alone.module.weight.detach()) == pytest.approx(0.4)
