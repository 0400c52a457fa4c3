"""``python -m recfuse.serve ...`` = ``recfuse serve ...``."""

import typer

from recfuse.serve.cli import serve

if __name__ == "__main__":
    typer.run(serve)
