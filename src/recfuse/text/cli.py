"""``recfuse text``: encode a catalogue's item text, search it by free text, import item descriptions.

Bad input (unknown dataset, template field the data lacks, a model that is not
available offline) prints the message and exits with code 2, no traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
from recfuse.text.encoder import ENCODERS, MODEL_ENV, TextEncoder, default_model

app = typer.Typer(
    name="text",
    help="Encode item text with a sentence-transformer (cached) and search it.",
    no_args_is_help=True,
    add_completion=False,
)

_out = Console()
_err = Console(stderr=True)

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help=f"Sentence encoder: a registered name ({', '.join(ENCODERS)}; `recfuse text encoders` lists them), a "
        f"local sentence-transformers model directory, or a model in the local Hugging Face cache. Loaded offline. "
        f"Default: ${MODEL_ENV}, else minilm.",
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
    except (DataError, TextError, OSError) as err:
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
    model: ModelOpt = None,
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
    model: ModelOpt = None,
    template: TemplateOpt = None,
    batch_size: BatchOpt = 64,
    device: DeviceOpt = "cpu",
) -> None:
    """Items whose text is nearest to QUERY (cosine), encoded with the same model."""
    with _user_errors():
        data = _load(spec)
        encoder = TextEncoder(model, device=device, batch_size=batch_size, progress=True)
        vectors, stats = encode_items(data, encoder, template)
        q = encoder.encode_queries([query])[0]
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


@app.command("encoders")
def encoders_command() -> None:
    """List the registered sentence encoders, the package that ships each one's weights, and whether it is here."""
    table = Table(title=f"sentence encoders (default: {default_model()})", header_style="bold")
    for col in ("name", "dim", "languages", "package with the weights", "installed", "cache key"):
        table.add_column(col)
    for info in ENCODERS.values():
        enc = TextEncoder(info.name)
        table.add_row(info.name, str(info.dim), info.languages, info.package, "yes" if info.installed else "no",
                      enc.key)
    _out.print(table)
    _out.print("Any local sentence-transformers model directory works too: --model PATH", highlight=False)


def _default_out(spec: DatasetSpec, file: Path) -> Path:
    from recfuse.data.registry import data_root

    slug = lambda text: re.sub(r"[^\w.-]+", "_", text)
    return data_root() / "catalogues" / f"{slug(Path(spec.source).stem or spec.source)}+{slug(file.stem)}.parquet"


@app.command("import")
@dataset_options()
def import_command(
    file: Annotated[Path, typer.Argument(help="Descriptions: JSON ({id: text}, {id: {...}}, a list of objects, JSON "
                                              "Lines) or CSV/TSV/Parquet, keyed by item id or by title (+ year).")],
    spec: DatasetSpec,
    key: Annotated[str, typer.Option("--key", help="Match records by 'id', by normalised 'title' + year, or 'auto' "
                                                   "(ids when the titles agree with them, else titles).")] = "auto",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Catalogue file to write (.parquet or .csv): the "
                                             "dataset's item fields plus `description`. Default: under the data "
                                             "cache, catalogues/<dataset>+<file>.parquet.")] = None,
    id_field: Annotated[str | None, typer.Option("--id-field", help="The records' id field (default: item_id, id, "
                                                                   "movieId, ...).")] = None,
    text_field: Annotated[str | None, typer.Option("--text-field", help="The records' text field (default: "
                                                                       "description, text, overview, ...).")] = None,
    title_field: Annotated[str | None, typer.Option("--title-field", help="The records' title field (default: "
                                                    "title, name; else read from the start of the text).")] = None,
    show_misses: Annotated[int, typer.Option("--show-misses", min=0, help="How many unmatched items to print (all "
                                             "of them go to a .misses.csv beside the catalogue).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import item descriptions (by id, or matched by title + year) into a catalogue file that `--items` reads.

    The descriptions become the items' `description` field, so the item text every later command encodes
    (and caches by encoder + text hash) includes them: pass `--items OUT` with the same `--dataset`.
    """
    from recfuse.text.knowledge import apply_descriptions, import_descriptions, misses_table, write_catalogue

    with _user_errors():
        data = _load(spec)
        result = import_descriptions(data, file, key, id_field=id_field, text_field=text_field,
                                     title_field=title_field)
        merged = apply_descriptions(data, result.descriptions)
        assert merged.item_features is not None
        target = out if out is not None else _default_out(spec, file)
        written = write_catalogue(merged.item_features, target)
        misses_path = written.with_name(written.stem + ".misses.csv")
        misses_table(result.report.misses).write_csv(misses_path)
    report = result.report
    if as_json:
        typer.echo(json.dumps({**report.as_dict(), "catalogue": str(written), "misses_file": str(misses_path)},
                              indent=1, ensure_ascii=False))
        return
    _out.print(report.summary(), highlight=False, soft_wrap=True)
    if report.why:
        _out.print(f"matched by {report.key}: {report.why}", highlight=False, soft_wrap=True)
    if report.misses and show_misses:
        table = Table(title=f"items without a description ({len(report.misses)}; all in {misses_path.name})",
                      header_style="bold")
        for col in ("item", "title", "year"):
            table.add_column(col)
        for m in report.misses[:show_misses]:
            table.add_row(m.item_id, m.title or "", m.year or "")
        _out.print(table)
        if len(report.misses) > show_misses:
            _out.print(f"... and {len(report.misses) - show_misses} more in {misses_path}", highlight=False)
    _out.print(f"wrote {written} ({report.n_matched} descriptions) and {misses_path}", highlight=False,
               soft_wrap=True)
    _out.print(f"use it: recfuse train --dataset {spec.source} --items {written}  (same for benchmark, text encode, "
               "...)", highlight=False, soft_wrap=True)
