"""Data-parallel training over processes with ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Launch with torchrun, one process per core group or GPU::

    torchrun --nproc-per-node 2 -m recfuse.train --dataset ml-100k --out model/
    recfuse train --nproc 2 --dataset ml-100k --out model/       # the same, torchrun started for you
    torchrun --nnodes 2 --node-rank 0 --master-addr HOST --master-port 29500 \\
        --nproc-per-node 8 -m recfuse.train ...                   # multi-node: torchrun's own flags

Every process builds the same windows and the same shuffled order (same
seed), and takes a strided share of each global batch (:func:`shard`;
``batch_size`` is the global batch).  The training step runs under
``torch.nn.parallel.DistributedDataParallel`` (:func:`wrap`): it starts every
process from rank 0's weights and averages the gradients over processes in
buckets, overlapped with the backward pass; each process's loss is divided by the mean number of
positions per process (:func:`positions`), so the averaged gradient is the
one-process gradient of the global batch.  Validation, early stopping,
progress and the model directory happen on rank 0; its stop decision is
broadcast (:func:`agree`).

Without an initialised process group every function here is the identity
(or a no-op), so single-process training is untouched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


def active() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """Number of training processes (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process validates, reports progress and writes files (rank 0, or the only process)."""
    return rank() == 0


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1); ``False`` if none.

    NCCL when CUDA is available (each process on GPU ``LOCAL_RANK``), gloo otherwise.

    Examples
    --------
    >>> init_from_env()  # not started by torchrun
    False
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    return active()


def shard(rows: np.ndarray) -> np.ndarray:
    """This process's strided share of a global batch ``rows`` (all of it without a process group).

    >>> shard(np.arange(4)).tolist()
    [0, 1, 2, 3]
    """
    if not active():
        return rows
    return rows[rank() :: world_size()]


def positions(n: int) -> int | float:
    """What a process divides its summed loss by: ``max(n, 1)`` alone, the mean count over processes in a group.

    With the gradients averaged afterwards, dividing by the mean count makes
    the result the gradient of the global batch's mean loss, however unevenly
    the positions fall on the processes.

    >>> positions(0), positions(7)
    (1, 7)
    """
    if not active():
        return max(n, 1)
    total = torch.tensor([float(n)], dtype=torch.float64)
    dist.all_reduce(total)
    return max(float(total) / world_size(), 1e-12)


class TrainingStep(nn.Module):
    """A model's training loss as a module's ``forward``, so that ``DistributedDataParallel`` can wrap it.

    The recommenders compute their loss in ``training_loss(batch)``, calling several methods of their
    network outside its ``forward``; DDP needs every parameter to be used inside the forward of the
    module it wraps, so this module holds the network (``net``) and runs the model's loss as its forward.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.net = model.module
        self._loss = model.training_loss

    def forward(self, batch: Any) -> torch.Tensor:
        return self._loss(batch)  # type: ignore[no-any-return]


def wrap(model: Any) -> nn.Module:
    """``model``'s training step under ``DistributedDataParallel`` (it copies rank 0's weights to every
    process on construction and averages the gradients over processes in buckets during backward);
    the plain :class:`TrainingStep` without a process group."""
    step = TrainingStep(model)
    if not active():
        return step
    device = next(model.module.parameters()).device
    return nn.parallel.DistributedDataParallel(
        step, device_ids=[device.index] if device.type == "cuda" else None,
        # A step may leave parameters out (a branch with no input in the batch, dropped ids): DDP then
        # finds them in the graph and counts a zero gradient, as every process must send every bucket.
        find_unused_parameters=True,
    )


def agree(flag: bool) -> bool:
    """Rank 0's ``flag`` on every process (the stop decision, the clock), ``flag`` itself without a group."""
    if not active():
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.broadcast(t, src=0)
    return bool(t.item())


def launch(nproc: int, args: Sequence[str]) -> int:
    """Run ``python -m recfuse.train ARGS`` in ``nproc`` processes under torchrun on this machine; its exit code.

    For several machines call torchrun directly with its ``--nnodes``,
    ``--node-rank``, ``--master-addr`` and ``--master-port`` flags.
    """
    threads = max(1, (os.cpu_count() or 1) // nproc)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "recfuse.train", *args]
    return subprocess.call(cmd, env=env)
