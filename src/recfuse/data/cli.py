"""``recfuse data``: get, list and describe datasets; write a synthetic one.

Bad input (unknown name, malformed file, failed download) prints the
:class:`DataError` message and exits with code 2, without a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from recfuse.data import registry
from recfuse.data.dataset import DataError
from recfuse.data.describe import describe as describe_data
from recfuse.data.describe import describe_table
from recfuse.data.options import dataset_options
from recfuse.data.spec import DatasetSpec

app = typer.Typer(
    name="data",
    help="Get, register and describe datasets.",
    no_args_is_help=True,
    add_completion=False,
)

_out = Console()
_err = Console(stderr=True)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Bad input -> its message on stderr and exit code 2 (no traceback)."""
    try:
        yield
    except DataError as err:
        _err.print(f"[red]error:[/] {err}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None


@app.command("get")
def get_command(
    name: Annotated[str, typer.Argument(help="Registered dataset name (see `recfuse data list`).")],
    from_path: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Install a copy you already have (folder, single file or zip archive) instead of downloading; "
            "known checksums are verified.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if the dataset is already cached.")] = False,
) -> None:
    """Download (or copy with --from), verify and cache a dataset; print its folder."""
    with _user_errors():
        path = registry.get(name, force=force, from_path=from_path)
    typer.echo(str(path))


@app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the registered datasets, their sources and whether they are cached."""
    rows = registry.list_datasets()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"datasets (cache: {registry.data_root()})", header_style="bold")
    for col in ("name", "format", "cached", "description / sources"):
        table.add_column(col)
    for row in rows:
        sources = "\n".join(f"  {s}" for s in row["sources"])
        table.add_row(row["name"], row["format"], "yes" if row["cached"] else "no", f"{row['description']}\n{sources}")
    _out.print(table)


@app.command("describe")
@dataset_options(argument=True)
def describe_command(
    spec: DatasetSpec,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")] = False,
) -> None:
    """Load a dataset and print its statistics (users, items, time span, lengths, sparsity, ...)."""
    with _user_errors():
        data = spec.load()
        summary = describe_data(data)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _out.print(describe_table(summary))


@app.command("synth")
def synth_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (events/part-*.parquet, items.parquet, users.parquet).")],
    users: Annotated[int, typer.Option("--users", help="Number of users.")] = 1000,
    items: Annotated[int, typer.Option("--items", help="Catalogue size.")] = 500,
    events: Annotated[int, typer.Option("--events", help="Total events (at least 3 per user).")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every draw.")] = 0,
) -> None:
    """Write a structured synthetic log (power-law items in clusters, user tastes, drifting sessions) as Parquet."""
    from recfuse.data.synth import SynthConfig, synthesize

    with _user_errors():
        path = synthesize(out, SynthConfig(users=users, items=items, events=events, seed=seed))
    typer.echo(str(path))


__all__ = ["app"]
