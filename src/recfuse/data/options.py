"""The dataset options every data-reading command shares, declared once.

:func:`dataset_options` adds ``--dataset`` and the generic-log mapping (``--user --item --timestamp
--rating --event-type --sep --items --item-id --text-columns --drop-duplicates``) to a Typer command
and hands the command one :class:`~recfuse.data.spec.DatasetSpec` as its ``spec`` parameter::

    @dataset_options()
    def describe(spec: DatasetSpec, as_json: bool = False) -> None:
        data = spec.load()
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from recfuse.data.spec import DatasetSpec

F = TypeVar("F", bound=Callable[..., Any])

_HELP = "Dataset: a registered name (recfuse data list) or a file/folder path"
#: (parameter, flag, help) of the generic-log mapping; all are optional strings.
MAPPING_OPTIONS = (
    ("user", "--user", "Generic log: the user id column."),
    ("item", "--item", "Generic log: the item id column."),
    ("timestamp", "--timestamp", "Generic log: the time column (epoch seconds or ISO-8601)."),
    ("rating", "--rating", "Generic log: the rating column."),
    ("event_type", "--event-type", "Generic log: the event-type column (view, cart, purchase, ...)."),
    ("sep", "--sep", "Generic log: the field separator, e.g. ';' (default: by file extension)."),
    ("items", "--items", "Item catalogue file (CSV/Parquet): its other columns become item text."),
    ("item_id", "--item-id", "The catalogue's item id column (default: the log's --item name)."),
    ("text_columns", "--text-columns", "Comma-separated catalogue columns that make up the item text (default: all)."),
)


def _parameters(required: bool, argument: bool, mapping: bool) -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    if argument:
        source = typer.Argument(help=f"{_HELP}.") if required else typer.Argument(None, help=f"{_HELP}.")
    else:
        hint = "." if required else "; optional here."
        source = typer.Option("--dataset", "-d", help=f"{_HELP}{hint} A recfuse.toml beside it can hold the mapping.")
    params = [inspect.Parameter("dataset", kw, default=... if required else None,
                                annotation=Annotated[str if required else str | None, source])]
    for name, flag, text in MAPPING_OPTIONS if mapping else ():
        params.append(inspect.Parameter(name, kw, default=None, annotation=Annotated[str | None, typer.Option(flag, help=text)]))
    if mapping:
        params.append(inspect.Parameter("drop_duplicates", kw, default=False, annotation=Annotated[
            bool, typer.Option("--drop-duplicates", help="Drop repeated (user, item, time) rows (they are counted).")]))
    if required:  # Typer passes ``...`` through as "required"; give it a real default-less parameter
        params[0] = params[0].replace(default=inspect.Parameter.empty)
    return params


def spec_of(values: dict[str, Any]) -> DatasetSpec | None:
    """The :class:`DatasetSpec` of the shared options' values (``None`` when no dataset was named)."""
    if values.get("dataset") is None:
        return None
    cols = values.get("text_columns")
    return DatasetSpec(
        str(values["dataset"]), **{m[0]: values.get(m[0]) for m in MAPPING_OPTIONS if m[0] != "text_columns"},
        text_columns=tuple(c.strip() for c in cols.split(",") if c.strip()) if cols else (),
        drop_duplicates=bool(values.get("drop_duplicates")),
    )


def dataset_options(required: bool = True, argument: bool = False, mapping: bool = True) -> Callable[[F], F]:
    """Decorate a command taking ``spec: DatasetSpec`` (or ``DatasetSpec | None`` with ``required=False``)
    so that it takes the shared dataset options instead; ``argument``: the dataset is positional;
    ``mapping=False``: ``--dataset`` alone, its column mapping from a ``recfuse.toml`` beside the data (for
    commands whose own ``--user`` names a user, not a column)."""

    def wrap(func: F) -> F:
        sig = inspect.signature(func)
        hints = typing.get_type_hints(func, include_extras=True)  # string annotations resolved in func's module
        own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values() if p.name != "spec"]
        added = _parameters(required, argument, mapping)

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            values = {p.name: kwargs.pop(p.name, None) for p in added}
            return func(**kwargs, spec=spec_of(values))

        ordered = sorted(own + added, key=lambda p: p.default is not inspect.Parameter.empty)
        command.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in ordered])
        command.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
        del command.__wrapped__  # Typer must read the new signature, not the function's own
        return command  # type: ignore[return-value]

    return wrap
