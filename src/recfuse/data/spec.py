"""How to read a dataset, in one object: a registered name or a path, a column mapping and a catalogue.

Every command that reads data takes the same options (:mod:`recfuse.data.options`) and turns them into a
:class:`DatasetSpec`; a ``recfuse.toml`` beside the data can hold the same mapping so it is typed once::

    # shop/recfuse.toml, next to shop/events.csv
    [dataset]
    user = "customer"
    item = "sku"
    timestamp = "ts"
    event_type = "event"
    items = "items.csv"          # relative to this file
    item_id = "sku"
    text_columns = ["title", "description"]

Options given on the command line win over the file.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recfuse.columns import Columns
from recfuse.data.dataset import DataError, Interactions

CONFIG_FILE = "recfuse.toml"
MAPPING = ("user", "item", "timestamp", "rating", "event_type", "sep", "items", "item_id", "text_columns")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset to read: ``source`` (registered name or path) plus how to read a generic log.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "events.csv").write_text("customer,sku\\nc1,a\\nc1,b\\nc2,a\\n")
    >>> _ = (d / "recfuse.toml").write_text('[dataset]\\nuser = "customer"\\nitem = "sku"\\n')
    >>> DatasetSpec(str(d / "events.csv")).load().n_events
    3
    """

    source: str
    """Registered dataset name (``recfuse data list``) or a file/folder path."""
    user: str | None = None
    """User id column of a generic log."""
    item: str | None = None
    """Item id column of a generic log."""
    timestamp: str | None = None
    """Time column (epoch seconds or ISO-8601)."""
    rating: str | None = None
    """Rating column."""
    event_type: str | None = None
    """Event-type column (view, cart, purchase, ...)."""
    sep: str | None = None
    """Field separator of a text log (default: by file extension)."""
    items: str | None = None
    """Item catalogue file (CSV/Parquet) whose other columns are item text."""
    item_id: str | None = None
    """Id column of the catalogue (default: the log's item column)."""
    text_columns: tuple[str, ...] = ()
    """Catalogue columns that make up the item text (default: all of them)."""
    drop_duplicates: bool = False
    """Drop repeated (user, item, time) rows (they are counted)."""

    @property
    def config_file(self) -> Path | None:
        """The ``recfuse.toml`` that applies to ``source``, if there is one."""
        path = Path(self.source)
        if not path.exists():
            return None
        folder = path if path.is_dir() else path.parent
        found = folder / CONFIG_FILE
        return found if found.is_file() else None

    def resolved(self) -> DatasetSpec:
        """This spec with the unset mapping fields filled from ``recfuse.toml`` (paths relative to that file)."""
        cfg = self.config_file
        if cfg is None:
            return self
        try:
            table = tomllib.loads(cfg.read_text()).get("dataset", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{cfg}: {err}") from None
        unknown = sorted(set(table) - set(MAPPING) - {"drop_duplicates"})
        if unknown:
            raise DataError(f"{cfg}: [dataset] has unknown keys {unknown}; known: {list(MAPPING)}")
        fill: dict[str, Any] = {}
        for key, value in table.items():
            if key == "text_columns":
                if not self.text_columns:
                    fill[key] = tuple(value) if isinstance(value, list) else (str(value),)
            elif key == "items" and self.items is None:
                fill[key] = str(cfg.parent / str(value))
            elif key == "drop_duplicates":
                fill[key] = self.drop_duplicates or bool(value)
            elif getattr(self, key) is None:
                fill[key] = str(value)
        return dataclasses.replace(self, **fill)

    def reader_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`recfuse.data.registry.load_dataset`."""
        kw = {"user": self.user, "item": self.item, "timestamp": self.timestamp, "rating": self.rating,
              "event_type": self.event_type, "items_path": self.items, "item_id": self.item_id, "sep": self.sep}
        return {k: v for k, v in kw.items() if v is not None}

    def merges_catalogue(self) -> bool:
        """Whether ``items`` is added to the dataset's own item fields by item id (a registered dataset, a
        MovieLens or atomic folder), rather than read as the whole catalogue of a generic log.

        Examples
        --------
        >>> DatasetSpec("ml-100k", items="extra.parquet").merges_catalogue(), DatasetSpec("ml-100k").merges_catalogue()
        (True, False)
        """
        spec = self.resolved()
        return spec.items is not None and not _reads_catalogue(spec.source, spec.reader_options())

    def load(self) -> Interactions:
        """Read the dataset (fetching a registered one if needed); only ``text_columns`` stay as item text.

        Raises :class:`~recfuse.data.dataset.DataError` naming the file, line or column at fault.
        """
        from recfuse.data.readers import read_catalogue
        from recfuse.data.registry import load_dataset

        spec = self.resolved()
        options = spec.reader_options()
        catalogue = None
        if spec.items is not None and not _reads_catalogue(spec.source, options):
            # The dataset's own reader has its item fields (ml-100k, MovieLens, atomic files): the
            # catalogue adds to them by item id instead of replacing them.
            options.pop("items_path")
            catalogue = read_catalogue(spec.items, options.pop("item_id", Columns.ITEM), options.pop("sep", None))
        data = load_dataset(spec.source, drop_duplicates=spec.drop_duplicates, **options)
        if catalogue is not None:
            data = merge_catalogue(data, catalogue, origin=str(spec.items))
        if spec.text_columns:
            feats = data.item_features
            if feats is None:
                raise DataError(f"{spec.source}: --text-columns given, but the dataset has no item catalogue "
                                "(give one with --items FILE)")
            missing = [c for c in spec.text_columns if c not in feats.columns[1:]]
            if missing:
                raise DataError(f"{spec.items or spec.source}: no text column {', '.join(map(repr, missing))} "
                                f"(have: {', '.join(feats.columns[1:])})")
            data = dataclasses.replace(data, item_features=feats.select([feats.columns[0], *spec.text_columns]))
        return data


def _reads_catalogue(source: str, options: dict[str, Any]) -> bool:
    """Whether ``source`` is read as a generic log, whose reader takes the catalogue itself."""
    from recfuse.data.readers import detect_format
    from recfuse.data.registry import DATASETS

    path = Path(source)
    if not path.exists():
        return source in DATASETS and DATASETS[source].format == "log"
    return path.is_file() or "user" in options or "item" in options or detect_format(path) == "log"


def merge_catalogue(data: Interactions, catalogue: pl.DataFrame, origin: str = "catalogue") -> Interactions:
    """``data`` with the item fields of ``catalogue`` (first column: the item id) joined on by item id.

    A catalogue value replaces the dataset's own value of the same field where the catalogue has one;
    new fields are added.  Catalogue rows for items the dataset does not hold are left out and counted
    (``counts["catalogue_rows_unused"]``).  ``--items FILE`` on a registered dataset goes through this.

    Raises
    ------
    DataError
        No catalogue id is an item id of the dataset.

    Examples
    --------
    >>> data = Interactions.from_frame(pl.DataFrame({"user_id": ["u", "u"], "item_id": ["1", "2"]}),
    ...                                item_features=pl.DataFrame({"item_id": ["1", "2"], "title": ["Heat", "Up"]}))
    >>> extra = pl.DataFrame({"item_id": ["2", "9"], "description": ["A flying house.", "Not in the log."]})
    >>> merged = merge_catalogue(data, extra)
    >>> merged.item_features.rows(), merged.counts["catalogue_rows_unused"]
    ([('1', 'Heat', None), ('2', 'Up', 'A flying house.')], 1)
    """
    key = catalogue.columns[0]
    cat = catalogue.rename({key: Columns.ITEM}) if key != Columns.ITEM else catalogue
    cat = cat.with_columns(pl.col(Columns.ITEM).cast(pl.String)).unique(subset=Columns.ITEM, keep="first",
                                                                       maintain_order=True)
    ids = data.items.external_ids.astype(str).tolist()
    if data.item_features is None:
        base = pl.DataFrame({Columns.ITEM: ids}, schema={Columns.ITEM: pl.String})
    else:
        base = data.item_features.rename({data.item_features.columns[0]: Columns.ITEM})
    used = int(cat[Columns.ITEM].is_in(ids).sum())
    if used == 0:
        sample = ", ".join(map(repr, cat[Columns.ITEM].head(3).to_list()))
        raise DataError(f"{origin}: none of its {cat.height} item ids ({sample}, ...) is an item of dataset "
                        f"{data.name!r} (ids like {', '.join(map(repr, ids[:3]))})")
    suffix = "__catalogue"
    joined = base.join(cat, on=Columns.ITEM, how="left", suffix=suffix, maintain_order="left")
    for col in cat.columns[1:]:
        if col in base.columns:
            new, old = pl.col(f"{col}{suffix}"), pl.col(col)
            if joined.schema[f"{col}{suffix}"] != joined.schema[col]:
                new, old = new.cast(pl.String), old.cast(pl.String)
            joined = joined.with_columns(pl.coalesce(new, old).alias(col)).drop(f"{col}{suffix}")
    counts = {**data.counts, "catalogue_rows_unused": cat.height - used}
    return dataclasses.replace(data, item_features=joined, counts=counts)
