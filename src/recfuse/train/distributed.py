"""Data-parallel training over processes with ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Launch with torchrun, one process per core group or GPU::

    torchrun --nproc-per-node 2 -m recfuse.train --dataset ml-100k --out model/
    recfuse train --nproc 2 --dataset ml-100k --out model/       # the same, torchrun started for you
    torchrun --nnodes 2 --node-rank 0 --master-addr HOST --master-port 29500 \\
        --nproc-per-node 8 -m recfuse.train ...                   # multi-node: torchrun's own flags

Every process builds the same windows and the same shuffled order (same
seed), and takes a strided share of each global batch (:func:`shard`;
``batch_size`` is the global batch).  After each backward pass the gradients
are averaged over processes in flat buckets (:func:`average_gradients`: the
all-reduce that ``DistributedDataParallel``'s reducer performs, done on the
whole module because the models call their networks' methods outside
``forward``), and each process's loss is divided by the mean number of
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


def broadcast_parameters(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every process (so all start from the same weights)."""
    if not active():
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def average_gradients(module: nn.Module, bucket_elements: int = 1 << 22) -> None:
    """Average every parameter's gradient over the processes, in flat buckets of about ``bucket_elements``.

    A parameter without a gradient on this step counts as a zero gradient
    (every process must send the same buckets).
    """
    if not active():
        return
    n = world_size()
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket: list[torch.Tensor] = []
    size = 0
    for p in params:
        bucket.append(p.grad)  # type: ignore[arg-type]
        size += p.numel()
        if size >= bucket_elements:
            _reduce(bucket, n)
            bucket, size = [], 0
    if bucket:
        _reduce(bucket, n)


def _reduce(grads: Sequence[torch.Tensor], n: int) -> None:
    flat = torch.cat([g.reshape(-1) for g in grads])  # (sum of sizes,)
    dist.all_reduce(flat)
    flat /= n
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


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
