"""``python -m recfuse.train ARGS``: the ``recfuse train`` command alone, the entry point torchrun starts.

Usage: ``torchrun --standalone --nproc-per-node 2 -m recfuse.train --dataset ml-100k --out model/``.
"""

from __future__ import annotations

import typer

from recfuse.train.cli import train


def main() -> None:
    """Run ``recfuse train`` with this process's command line."""
    typer.run(train)


if __name__ == "__main__":
    main()
