"""One trainer for every neural model: epochs, early stopping, progress, best state.

The model owns its loss and its batches (``train_batches`` / ``training_loss``);
the trainer owns everything around them.  Early stopping watches valid
NDCG@10 under the full-ranking protocol, and the best state is restored at
the end, so a fitted model is always its best-on-valid self.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from recfuse.config import ModelConfig

if TYPE_CHECKING:
    from recfuse.data.split import EvalSet

# One record per epoch (fields ``fit`` = (name, seed), ``row``, ``epochs``; the message has the best so far) and
# one with ``done`` at the end, so fits in worker processes can show their progress in the parent
# (`recfuse benchmark --jobs N`).
log = logging.getLogger("recfuse.train")


@dataclass
class TrainConfig(ModelConfig):
    """Training-loop settings shared by the neural models (their configs inherit these)."""

    epochs: int = 200
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10  # epochs without a better valid NDCG@10 before stopping
    lr_decay: float = 1.0  # on a plateau, multiply the learning rate by this (1 = constant rate)
    decay_after: int = 5  # epochs without a better valid NDCG@10 (or since the last decay) before each decay
    eval_every: int = 1
    # Greedy weight averaging ("model soup", Wortsman et al. 2022) over the ``average_top`` best epochs by
    # valid NDCG@10: from the best one, each next checkpoint joins the average if valid does not drop.
    # 0 or 1: the best epoch alone.
    average_top: int = 0
    max_seconds: float = 0.0  # 0 = no wall-clock limit
    device: str = "auto"  # "auto" picks CUDA when available
    precision: str = "auto"  # "bf16" | "fp32" | "auto" (bf16 autocast where the hardware has it)
    progress: bool = True


class Trainable(Protocol):
    """What the trainer needs from a model."""

    module: torch.nn.Module
    device: torch.device

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[dict[str, torch.Tensor]]: ...
    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...
    def validate(self, valid: EvalSet) -> float: ...


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 matrix products are native here (CUDA >= Ampere, or a CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    if name == "fp32" or (name == "auto" and not bf16_supported(device)):
        return torch.float32
    if name in ("bf16", "auto"):
        return torch.bfloat16
    raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', not {name!r}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    """Fits a :class:`Trainable` with Adam and early stopping on valid NDCG@10."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    def fit(self, model: Trainable, valid: EvalSet | None, name: str = "model") -> dict[str, Any]:
        c = self.config
        rng = np.random.default_rng(c.seed)
        device = model.device
        dtype = resolve_precision(c.precision, device)
        opt = torch.optim.Adam(model.module.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay)
        best_metric, best_epoch, best_state = -np.inf, 0, None
        top: list[tuple[float, int, dict[str, torch.Tensor]]] = []  # (valid, epoch, state) of the average_top best
        if not 0.0 < c.lr_decay <= 1.0:
            raise ValueError(f"lr_decay must be in (0, 1], got {c.lr_decay}")
        lr, decayed_at = c.learning_rate, 0
        history: list[dict[str, float]] = []
        started = time.perf_counter()
        progress = _progress(c.progress)
        task = progress.add_task(f"{name}", total=c.epochs) if progress else None
        try:
            if progress:
                progress.start()
            for epoch in range(1, c.epochs + 1):
                model.module.train()
                total, n = 0.0, 0
                for batch in model.train_batches(rng, c.batch_size):
                    opt.zero_grad(set_to_none=True)
                    # Autocast runs the big matrix products (the catalogue softmax) in bf16;
                    # weights, optimiser state and the loss reduction stay fp32.
                    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                        loss = model.training_loss(batch)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach())
                    n += 1
                row = {"epoch": epoch, "loss": total / max(n, 1), "lr": lr}
                stop = False
                if valid is not None and (epoch % c.eval_every == 0 or epoch == c.epochs):
                    model.module.eval()
                    with torch.no_grad():
                        metric = model.validate(valid)
                    row["valid_ndcg@10"] = metric
                    keep = c.average_top > 1 and (len(top) < c.average_top or metric > top[-1][0])
                    state = copy.deepcopy(model.module.state_dict()) if keep or metric > best_metric else None
                    if keep and state is not None:
                        top.append((metric, epoch, state))
                        top.sort(key=lambda r: -r[0])  # stable: an earlier epoch first among equals
                        del top[c.average_top :]
                    if metric > best_metric:
                        best_metric, best_epoch, best_state = metric, epoch, state
                    elif epoch - best_epoch >= c.patience:
                        stop = True
                    elif c.lr_decay < 1.0 and epoch - max(best_epoch, decayed_at) >= c.decay_after:
                        # Reduce on plateau: a high rate finds the basin fast, a lower one settles in it.
                        lr, decayed_at = lr * c.lr_decay, epoch
                        for group in opt.param_groups:
                            group["lr"] = lr
                history.append(row)
                stats = f"loss {row['loss']:.4f}"
                if "valid_ndcg@10" in row:
                    stats += f" valid ndcg@10 {row['valid_ndcg@10']:.4f} (best {best_metric:.4f} @ {best_epoch})"
                if progress and task is not None:
                    progress.update(task, advance=1, description=f"{name} {stats}")
                log.info("%s seed %d epoch %d: %s", name, c.seed, epoch, stats,
                         extra={"fit": (name, c.seed), "row": row, "epochs": c.epochs})
                if c.max_seconds and time.perf_counter() - started > c.max_seconds:
                    stop = True
                if stop:
                    break
        finally:
            if progress:
                progress.stop()
            log.info("%s seed %d: done", name, c.seed, extra={"fit": (name, c.seed), "done": True})
        elapsed = time.perf_counter() - started
        if best_state is not None:
            model.module.load_state_dict(best_state)
        else:
            best_epoch = len(history)
        model.module.eval()
        soup = None
        if valid is not None and len(top) > 1:
            soup = greedy_soup(model, valid, top)
            best_metric = soup["valid_ndcg@10"]
        # Time to the best epoch: what early stopping "needed"; the rest is patience.
        per_epoch = elapsed / max(len(history), 1)
        return {
            "best_epoch": best_epoch,
            "epochs_run": len(history),
            "best_valid_ndcg@10": None if best_metric == -np.inf else float(best_metric),
            "train_seconds": elapsed,
            "seconds_to_best_epoch": per_epoch * best_epoch,
            "history": history,
            **({"soup": soup} if soup is not None else {}),
        }


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point entries; other entries (counters, masks) from the first state.

    >>> average_states([{"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}, {"w": torch.tensor([1.0, 0.0]), "n": torch.tensor(5)}])
    {'w': tensor([0.5000, 1.0000]), 'n': tensor(3)}
    """
    out = {}
    for key, first in states[0].items():
        out[key] = torch.stack([s[key] for s in states]).mean(0).to(first.dtype) if first.is_floating_point() else first
    return out


def greedy_soup(model: Trainable, valid: EvalSet, top: list[tuple[float, int, dict[str, torch.Tensor]]]) -> dict[str, Any]:
    """Load the greedy average of ``top`` (``(valid, epoch, state)``, best first) into ``model``: each next
    checkpoint joins if the average's valid NDCG@10 does not drop.  Returns the epochs used and that valid."""
    members, best = [top[0]], top[0][0]
    for cand in top[1:]:
        model.module.load_state_dict(average_states([m[2] for m in [*members, cand]]))
        model.module.eval()
        with torch.no_grad():
            metric = model.validate(valid)
        if metric >= best:
            members, best = [*members, cand], metric
    model.module.load_state_dict(average_states([m[2] for m in members]))
    model.module.eval()
    return {"epochs": [m[1] for m in members], "valid_ndcg@10": float(best), "tried": len(top)}


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )
