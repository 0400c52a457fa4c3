"""Data-parallel training: 2 gloo processes under torchrun end with the parameters of 1 process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from recfuse.train import distributed

# Fits SASRec on a fixed toy log (uneven user lengths, so the processes' shares of a batch differ in
# positions), validating once at the end (on rank 0, which then keeps that state), and saves rank 0's
# parameters.  Dropout is off: each process has its own torch random stream.
SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import torch
    from recfuse.data.dataset import Interactions
    from recfuse.data.split import leave_one_out
    from recfuse.models.sasrec import SASRec
    from recfuse.train import distributed

    torch.set_num_threads(1)
    ddp = distributed.init_from_env()
    rng = np.random.default_rng(0)
    seqs = [(f"u{u}", [f"i{j}" for j in rng.integers(0, 30, int(rng.integers(4, 25)))]) for u in range(24)]
    split = leave_one_out(Interactions.from_sequences(seqs))
    model = SASRec(epochs=3, batch_size=8, max_len=6, dropout=0.0, attn_dropout=0.0, precision="fp32",
                   progress=False, seed=5, eval_every=3).fit(split.train, split.valid)
    if distributed.is_main():
        np.savez(sys.argv[1], best_epoch=model.fit_info["best_epoch"], **model.state())
''')


def _run(cmd: list[str], tmp: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(cmd, check=False, env=env, cwd=tmp, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    _run([sys.executable, str(script), str(tmp_path / "one.npz")], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script),
          str(tmp_path / "two.npz")], tmp_path)
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert sorted(one.files) == sorted(two.files)
    assert int(two["best_epoch"]) == int(one["best_epoch"]) == 3
    d = one["pos_emb.weight"].shape[1]
    for name in one.files:
        a, b = one[name], two[name]
        if name.endswith("qkv.bias"):
            # The key bias's true gradient is zero (attention's softmax ignores a shift shared by all keys):
            # Adam turns the rounding noise there into steps of +-lr, in one process as in two.
            a, b = np.delete(a, np.s_[d : 2 * d]), np.delete(b, np.s_[d : 2 * d])
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=name)
    # Training moved the weights: the comparison is not of two untouched initialisations.
    assert not np.allclose(one["item_emb.weight"], 0.0)


def test_without_a_process_group_everything_is_single_process() -> None:
    assert not distributed.active() and distributed.is_main() and distributed.world_size() == 1
    rows = np.arange(6).reshape(3, 2)
    assert distributed.shard(rows) is rows
    assert distributed.positions(0) == 1 and distributed.agree(True)


def test_train_nproc_forwards_the_rest_of_the_command_line() -> None:
    from recfuse.train.cli import _forwarded_args

    argv = ["train", "--nproc", "2", "--dataset", "ml-100k", "--nproc=3", "--out", "m"]
    assert _forwarded_args(argv) == ["--dataset", "ml-100k", "--out", "m"]


@pytest.mark.parametrize("value", ["0", "1"])
def test_init_from_env_without_torchrun(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", value)
    assert distributed.init_from_env() is False
