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
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import torch

from recfuse.config import ModelConfig
from recfuse.train import distributed

if TYPE_CHECKING:
    from recfuse.data.split import EvalSet

# One record per epoch (fields ``fit`` = (name, seed), ``row``, ``epochs``; the message has the best so far) and
# one with ``done`` at the end, so fits in worker processes can show their progress in the parent
# (`recfuse benchmark --jobs N`).
log = logging.getLogger("recfuse.train")


Precision = Literal["auto", "bf16", "fp32"]


@dataclass
class TrainConfig(ModelConfig):
    """Training-loop settings shared by the neural models (their configs inherit these).

    Each model config declares its own ``learning_rate`` (its default differs by model).
    """

    epochs: int = 200
    """Most epochs to train; early stopping usually ends the fit sooner."""
    batch_size: int = 128
    """Training windows per step."""
    weight_decay: float = 0.0
    """Adam's L2 penalty."""
    patience: int = 10
    """Epochs without a better valid NDCG@10 before stopping."""
    eval_every: int = 1
    """Validate every this many epochs."""
    max_seconds: float = 0.0
    """Wall-clock cap on the fit, checked after every batch (0: none). Figures should cap by epochs instead."""
    device: str = "auto"
    """Torch device; ``auto`` picks CUDA when available."""
    precision: Precision = "auto"
    """``bf16`` autocast, ``fp32``, or ``auto`` (bf16 where the hardware has it)."""
    progress: bool = True
    """Show a progress bar on a terminal, a plain line per epoch otherwise (logs, CI)."""

    @property
    def learning_rate(self) -> float:
        """Adam's step size, declared by each model's config with that model's default."""
        raise NotImplementedError(f"{type(self).__name__} declares no learning_rate")


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
        """Train ``model`` until ``epochs``, ``patience`` or ``max_seconds`` stops it; keep its best-on-valid state.

        Returns the fit's record: ``best_epoch``, ``epochs_run``, ``stopped`` (``"patience"``, ``"epochs"``
        or ``"max_seconds"``), ``best_valid_ndcg@10``, timings and the per-epoch ``history``.
        """
        c = self.config
        rng = np.random.default_rng(c.seed)
        device = model.device
        dtype = resolve_precision(c.precision, device)
        opt = torch.optim.Adam(model.module.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay)
        best_metric, best_epoch, best_state = -np.inf, 0, None
        history: list[dict[str, float]] = []
        stopped = "epochs"
        started = time.perf_counter()
        out_of_time = lambda: bool(c.max_seconds) and time.perf_counter() - started > c.max_seconds
        # Several processes (torchrun): same start weights, averaged gradients, rank 0 validates and reports.
        ddp, main = distributed.active(), distributed.is_main()
        step = distributed.wrap(model)  # DistributedDataParallel over the processes, else the plain loss
        if ddp and c.max_seconds:
            own_clock = out_of_time
            out_of_time = lambda: distributed.agree(own_clock())
        progress = _progress(c.progress and main)
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
                        loss = step(batch)
                    loss.backward()  # under DDP, the gradients are averaged over processes here
                    opt.step()
                    total += float(loss.detach())
                    n += 1
                    if out_of_time():
                        break
                row = {"epoch": epoch, "loss": total / max(n, 1)}
                stop = False
                due = epoch % c.eval_every == 0 or epoch == c.epochs or out_of_time()  # every process asks the clock
                if valid is not None and main and due:
                    model.module.eval()
                    with torch.no_grad():
                        metric = model.validate(valid)
                    row["valid_ndcg@10"] = metric
                    if metric > best_metric:
                        best_metric, best_epoch = metric, epoch
                        best_state = copy.deepcopy(model.module.state_dict())
                    elif epoch - best_epoch >= c.patience:
                        stop, stopped = True, "patience"
                if ddp:
                    stop = distributed.agree(stop)
                history.append(row)
                stats = f"loss {row['loss']:.4f}"
                if "valid_ndcg@10" in row:
                    stats += f" valid ndcg@10 {row['valid_ndcg@10']:.4f} (best {best_metric:.4f} @ {best_epoch})"
                if progress and task is not None:
                    progress.update(task, advance=1, description=f"{name} {stats}")
                elif c.progress and main:  # no terminal (a log file, CI): one plain line per epoch
                    print(f"{name} seed {c.seed} epoch {epoch}/{c.epochs}: {stats}", file=sys.stderr, flush=True)
                log.info("%s seed %d epoch %d: %s", name, c.seed, epoch, stats,
                         extra={"fit": (name, c.seed), "row": row, "epochs": c.epochs})
                if not stop and out_of_time():
                    stop, stopped = True, "max_seconds"
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
        # Time to the best epoch: what early stopping "needed"; the rest is patience.
        per_epoch = elapsed / max(len(history), 1)
        return {
            "best_epoch": best_epoch,
            "epochs_run": len(history),
            "stopped": stopped,
            "best_valid_ndcg@10": None if best_metric == -np.inf else float(best_metric),
            "train_seconds": elapsed,
            "seconds_to_best_epoch": per_epoch * best_epoch,
            "history": history,
        }


def _progress(enabled: bool) -> Any:
    """A live progress bar on a terminal; ``None`` when off or when stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
