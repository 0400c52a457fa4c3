"""Readers: raw interaction files in, :class:`Interactions` out.

One function per format, and :func:`load`, which looks at a path and picks
the right one.  Every reader

* maps the file's column names onto :class:`~recfuse.columns.Columns`;
* keeps external ids as strings;
* returns item text (``title``, ``year``, ``genres``, ``tags``, ...) as an
  ``item_features`` frame whose first column is the item id (``genres`` and
  ``tags`` are ``|``-separated, the MovieLens convention);
* raises :class:`DataError` naming the file, the 1-based line and the field
  on malformed input, and counts whatever it skips in ``counts``.

Large logs (the 25M-row ``ratings.csv``) are read with lazy Polars scans that
materialise only the needed columns; the per-line Python code paths run only
on small files (catalogues, sequence files) or after an error, to find the
exact line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from recfuse.columns import Columns
from recfuse.data.dataset import DataError, Interactions

#: File written by the registry into a dataset folder: records format and provenance.
MARKER = ".recfuse.json"

#: Format names understood by :func:`load` (``format=``).
FORMATS = ("atomic", "ml-100k", "ml-dat", "movielens-csv", "sequence", "log")

#: Genre names of ml-100k's 19 flag columns, in file order (``u.genre``).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip

#: ml-1m ``users.dat`` occupation codes (from the dataset's README).
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip

# RecBole field names that mean the same thing as recfuse's item text columns.
_ATOMIC_RENAME = {"movie_title": "title", "release_year": "year", "class": "genres", "genre": "genres"}
_ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
# Files that sit next to a data file but are documentation, not data.
_DOC_STEMS = ("license", "readme", "source", "notice", "changelog", "copying", "authors", "citation")
_YEAR_RE = r"\s*\((\d{4})(?:\s*[-\u2013]\s*\d{0,4})?\)\s*$"
_PARQUET = (".parquet", ".pq")
_DELIMITED = (".csv", ".tsv", ".tab")


# ============================================================== file access
def _require_file(path: Path, what: str = "file") -> Path:
    if not path.exists():
        raise DataError(f"{path}: {what} not found")
    if not path.is_file():
        raise DataError(f"{path}: expected a {what}, found a directory")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes)")
    return path


def _encoding_error(path: Path, data: bytes, err: UnicodeDecodeError) -> DataError:
    line = data.count(b"\n", 0, err.start) + 1
    column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
    return DataError(
        f"{path}: line {line}, column {column}: byte 0x{data[err.start]:02x} is not valid {err.encoding} "
        f"(unreadable encoding; re-save the file as UTF-8)"
    )


def _decode(path: Path, encodings: Sequence[str] = ("utf-8",)) -> str:
    """Whole file as text, trying ``encodings`` in order; errors name the line."""
    data = _require_file(path).read_bytes()
    first: UnicodeDecodeError | None = None
    for enc in encodings:
        try:
            return data.decode(enc).removeprefix("\ufeff")
        except UnicodeDecodeError as err:
            first = first or err
    assert first is not None
    raise _encoding_error(path, data, first)


def _find_utf8_error(path: Path) -> DataError | None:
    """Stream a (large) file and report its first invalid UTF-8 line, if any."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return DataError(
                    f"{path}: line {n}, column {err.start + 1}: byte 0x{raw[err.start]:02x} is not valid utf-8 "
                    f"(unreadable encoding; re-save the file as UTF-8)"
                )
    return None


def _read_header(path: Path, sep: str, quote_char: str | None) -> list[str]:
    """Column names on line 1 of a delimited file."""
    _require_file(path)
    with open(path, "rb") as f:
        raw = f.readline()
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise _encoding_error(path, raw, err) from None
    if quote_char is None:
        return [c.strip() for c in text.split(sep)]
    return [c.strip() for c in next(csv.reader([text], delimiter=sep, quotechar=quote_char))]


SEPARATORS = (";", "\t", "|", ",")  # field separators a header is checked for when columns are missing


def _sep_hint(have: Sequence[str]) -> str:
    """``"; the file looks ';'-separated: give --sep ';' (sep=';')"`` when one header field holds a separator.

    >>> _sep_hint(["customer;sku;ts"])
    "; the file looks ';'-separated: give --sep ';' (Python: sep=';')"
    >>> _sep_hint(["customer", "sku"])
    ''
    """
    if len(have) != 1:
        return ""
    for sep in SEPARATORS:
        if sep in have[0]:
            shown = "\\t" if sep == "\t" else sep
            return f"; the file looks {shown!r}-separated: give --sep {shown!r} (Python: sep={shown!r})"
    return ""


def _missing_columns(path: Path, wanted: Sequence[str], have: Sequence[str]) -> None:
    missing = [c for c in wanted if c not in have]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataError(
            f"{path}: line 1: missing column{'s' if len(missing) > 1 else ''} {names} (have: {', '.join(have)})"
            + _sep_hint(have)
        )


# ==================================================================== tables
@dataclass
class _Table:
    """Raw string columns of one file, plus how to turn a row back into a line."""

    frame: pl.DataFrame  # "_row" (0-based data row) + string columns
    path: Path
    header_lines: int = 0
    sep: str = ","
    quote_char: str | None = None
    parquet: bool = False
    notes: dict[str, int] = field(default_factory=dict)  # what reading skipped, for Interactions.counts

    def where(self, row: int) -> str:
        """``"file: line N"`` for data row ``row`` (0-based)."""
        if self.parquet:
            return f"{self.path}: row {row + 1}"
        if self.quote_char is None:
            return f"{self.path}: line {row + self.header_lines + 1}"
        return f"{self.path}: line {_line_of_record(self, row)}"

    def first(self, mask: pl.Series) -> tuple[int, dict[str, Any]] | None:
        """Data row index and values of the first row where ``mask`` holds."""
        hit = self.frame.filter(mask)
        if hit.height == 0:
            return None
        return int(hit["_row"][0]), hit.row(0, named=True)


def _line_of_record(table: _Table, row: int) -> int:
    # Quoted fields may span lines, so count records the way a CSV parser does.
    target = row + table.header_lines
    with open(table.path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter=table.sep, quotechar=table.quote_char or '"')
        start = 1
        for k, _ in enumerate(reader):
            if k == target:
                return start
            start = reader.line_num + 1
    return start


def _polars_error(path: Path, err: Exception, sep: str, quote_char: str | None, n_fields: int | None) -> DataError:
    """Turn a Polars parse error into a DataError that names the line."""
    msg = str(err)
    if "utf-8" in msg.lower() or "utf8" in msg.lower():
        found = _find_utf8_error(path)
        if found is not None:
            return found
    if n_fields is not None and "more fields" in msg:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            reader = csv.reader(
                f,
                delimiter=sep,
                quotechar=quote_char or '"',
                quoting=csv.QUOTE_MINIMAL if quote_char else csv.QUOTE_NONE,
            )
            start = 1
            for fields in reader:
                if len(fields) > n_fields:
                    return DataError(f"{path}: line {start}: expected {n_fields} fields, found {len(fields)}")
                start = reader.line_num + 1
    return DataError(f"{path}: cannot parse: {msg.strip().splitlines()[0]}")


def _read_delimited(path: Path, columns: Sequence[str], *, sep: str, quote_char: str | None = '"') -> _Table:
    """Read ``columns`` of a delimited file with a header, as strings.

    The scan is lazy: other columns are never materialised.
    """
    have = _read_header(path, sep, quote_char)
    _missing_columns(path, columns, have)
    scan = pl.scan_csv(
        path,
        separator=sep,
        has_header=True,
        infer_schema=False,
        quote_char=quote_char,
        row_index_name="_row",
        raise_if_empty=False,
    )
    try:
        frame = scan.select("_row", *columns).collect()
    except pl.exceptions.PolarsError as err:
        raise _polars_error(path, err, sep, quote_char, len(have)) from None
    frame.columns = ["_row", *columns]  # a BOM or stray spaces in the header are not part of the name
    return _Table(frame, path, header_lines=1, sep=sep, quote_char=quote_char)


def _read_split(path: Path, sep: str, names: Sequence[str], encodings: Sequence[str] = ("utf-8",)) -> _Table:
    """Read a file whose fields are separated by a (multi-character) ``sep``, no quoting.

    Every non-blank line must have ``len(names)`` fields.
    """
    _require_file(path)
    source: Path | bytes = path
    if tuple(encodings) != ("utf-8",):  # small catalogue files in latin-1: decode here
        source = _decode(path, encodings).encode("utf-8")
    try:
        lines = pl.scan_lines(source, name="_line", row_index_name="_row").collect()
    except pl.exceptions.PolarsError as err:
        raise _polars_error(path, err, sep, None, None) from None
    parts = lines["_line"].str.strip_chars_end("\r").str.split(sep)
    n = parts.list.len()
    blank = lines["_line"].str.strip_chars() == ""
    bad = lines.filter((n != len(names)) & ~blank)
    if bad.height:
        row = int(bad["_row"][0])
        found = len(bad["_line"][0].split(sep))
        raise DataError(f"{path}: line {row + 1}: expected {len(names)} fields separated by {sep!r}, found {found}")
    frame = pl.DataFrame({"_row": lines["_row"], "_parts": parts}).filter(~blank)
    if frame.height == 0:
        raise DataError(f"{path}: no data lines (the file is blank)")
    frame = frame.select(
        "_row", *[pl.col("_parts").list.get(i).replace("", None).alias(c) for i, c in enumerate(names)]
    )
    table = _Table(frame, path, sep=sep)
    if n_blank := int(blank.sum()):
        table.notes["blank_lines_skipped"] = n_blank
    return table


def _drop_blank_rows(table: _Table) -> None:
    """Drop rows where every read column is empty (blank lines), counting them."""
    cols = [c for c in table.frame.columns if c != "_row"]
    blank = pl.all_horizontal(pl.col(c).is_null() for c in cols)
    n = int(table.frame.select(blank.sum()).item())
    if n:
        table.frame = table.frame.filter(~blank)
        table.notes["blank_lines_skipped"] = n


# ================================================================ conversions
def _require_values(table: _Table, column: str, field: str | None = None) -> None:
    """Error on the first empty value of ``column``."""
    hit = table.first(table.frame[column].is_null())
    if hit is not None:
        raise DataError(f"{table.where(hit[0])}: field {field or column!r} is empty")


def _to_number(table: _Table, column: str, field: str | None = None, *, allow_empty: bool = False) -> pl.Series:
    """``column`` as ``Float64``; the first non-numeric value raises DataError."""
    raw = table.frame[column]
    if raw.dtype.is_numeric():
        values = raw.cast(pl.Float64)
    else:
        values = raw.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
        hit = table.first(values.is_null() & raw.is_not_null())
        if hit is not None:
            value = hit[1][column]
            raise DataError(f"{table.where(hit[0])}: field {field or column!r}: {value!r} is not a number")
    if not allow_empty:
        hit = table.first(values.is_null())
        if hit is not None:
            raise DataError(f"{table.where(hit[0])}: field {field or column!r} is empty")
    return values


_ISO_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d",
)  # fmt: skip


def _iso_seconds(text: str) -> float | None:
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)  # noqa: UP017 (datetime.UTC needs Python 3.11)
    return dt.timestamp()


def _to_epoch_seconds(table: _Table, column: str, field: str | None = None) -> pl.Series:
    """Timestamps as epoch seconds (``Float64``).

    Numbers are taken as epoch seconds; ISO-8601 strings and date/datetime
    columns are converted (naive times are read as UTC).
    """
    raw = table.frame[column]
    field = field or column
    if raw.dtype == pl.Date:
        raw = raw.cast(pl.Datetime("us"))
    if isinstance(raw.dtype, pl.Datetime):
        if raw.dtype.time_zone is None:  # type: ignore[union-attr]
            raw = raw.dt.replace_time_zone("UTC")
        values = raw.dt.epoch("us").cast(pl.Float64) / 1e6
    elif raw.dtype.is_numeric():
        values = raw.cast(pl.Float64)
    else:
        text = raw.cast(pl.String).str.strip_chars()
        numeric = text.cast(pl.Float64, strict=False)
        n_text = int((numeric.is_null() & text.is_not_null()).sum())
        n_values = int(text.is_not_null().sum())
        if n_text == 0:
            values = numeric
        elif n_text < n_values:  # mostly numbers: the odd one out is an error
            hit = table.first(numeric.is_null() & text.is_not_null())
            assert hit is not None
            raise DataError(f"{table.where(hit[0])}: field {field!r}: {hit[1][column]!r} is not a number")
        else:
            values = _parse_iso(table, column, text, field)
    hit = table.first(values.is_null() | values.is_nan())
    if hit is not None:
        raise DataError(f"{table.where(hit[0])}: field {field!r} is empty")
    return values


def _parse_iso(table: _Table, column: str, text: pl.Series, field: str) -> pl.Series:
    parsed = [text.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC") for fmt in _ISO_FORMATS]
    stamp = pl.select(pl.coalesce(parsed)).to_series()
    seconds = stamp.dt.epoch("us").cast(pl.Float64) / 1e6
    left = text.filter(seconds.is_null() & text.is_not_null()).unique()
    if left.len():  # rarer ISO spellings: let Python try the few distinct leftovers
        fixes = {s: _iso_seconds(s) for s in left.to_list()}
        bad = [s for s, v in fixes.items() if v is None]
        if bad:
            hit = table.first(text.is_in(bad))
            assert hit is not None
            raise DataError(
                f"{table.where(hit[0])}: field {field!r}: {hit[1][column]!r} "
                "is neither a number (epoch seconds) nor an ISO-8601 date/time"
            )
        extra = text.replace_strict(list(fixes), list(fixes.values()), default=None, return_dtype=pl.Float64)
        seconds = seconds.fill_null(extra)
    return seconds


# ==================================================================== helpers
def _canonical(
    table: _Table,
    *,
    user: str,
    item: str,
    timestamp: str | None = None,
    rating: str | None = None,
    event_type: str | None = None,
    allow_empty_rating: bool = False,
) -> pl.DataFrame:
    """Validated canonical-column frame from a raw table."""
    _require_values(table, user)
    _require_values(table, item)
    cols: dict[str, pl.Series] = {
        Columns.USER: table.frame[user].cast(pl.String).str.strip_chars(),
        Columns.ITEM: table.frame[item].cast(pl.String).str.strip_chars(),
    }
    if timestamp is not None:
        cols[Columns.TIME] = _to_epoch_seconds(table, timestamp)
    if rating is not None:
        cols[Columns.RATING] = _to_number(table, rating, allow_empty=allow_empty_rating).cast(pl.Float32)
    if event_type is not None:
        cols[Columns.EVENT] = table.frame[event_type].cast(pl.String)
    return pl.DataFrame(cols)


def _build(
    table: _Table,
    frame: pl.DataFrame,
    *,
    name: str,
    drop_duplicates: bool,
    item_features: pl.DataFrame | None = None,
    user_features: pl.DataFrame | None = None,
    counts: Mapping[str, int] | None = None,
) -> Interactions:
    if frame.height == 0:
        raise DataError(f"{table.path}: no interactions (the file has a header but no data lines)")
    all_counts = {"rows_read": frame.height, **table.notes, **(counts or {})}
    if Columns.RATING in frame.columns:
        missing = int(frame[Columns.RATING].is_null().sum())
        if missing:
            all_counts["missing_ratings"] = missing
    return Interactions.from_frame(
        frame,
        item_features=item_features,
        user_features=user_features,
        name=name,
        drop_duplicates=drop_duplicates,
        source=str(table.path),
        counts=all_counts,
    )


def _split_title(titles: pl.Expr) -> list[pl.Expr]:
    """``"Toy Story (1995)"`` -> ``title="Toy Story"``, ``year="1995"``."""
    return [
        titles.str.replace(_YEAR_RE, "").str.strip_chars().alias("title"),
        titles.str.extract(_YEAR_RE, 1).alias("year"),
    ]


def _clean_genres(genres: pl.Expr) -> pl.Expr:
    return pl.when(genres.is_in(["(no genres listed)", ""])).then(None).otherwise(genres).alias("genres")


def _aggregate_tags(frame: pl.DataFrame, item_col: str, tag_col: str) -> pl.DataFrame:
    """One ``|``-joined ``tags`` string per item, most frequent first.

    Tags are matched case-insensitively; the first spelling seen is kept.
    """
    tags = (
        frame.select(
            pl.col(item_col).cast(pl.String).alias(Columns.ITEM), pl.col(tag_col).str.strip_chars().alias("tag")
        )
        .filter(pl.col("tag").is_not_null() & (pl.col("tag") != ""))
        .with_row_index("_order")
        .with_columns(pl.col("tag").str.to_lowercase().alias("_key"))
    )
    return (
        tags.group_by(Columns.ITEM, "_key")
        .agg(pl.len().alias("_n"), pl.col("_order").min(), pl.col("tag").first())
        .sort([Columns.ITEM, "_n", "_order"], descending=[False, True, False])
        .group_by(Columns.ITEM, maintain_order=True)
        .agg(pl.col("tag").str.join("|").alias("tags"))
    )


def _with_tags(items: pl.DataFrame, tags: pl.DataFrame | None) -> pl.DataFrame:
    if tags is None:
        return items
    return items.join(tags, on=Columns.ITEM, how="left", maintain_order="left")


# =================================================================== readers
def read_atomic(
    path: str | Path,
    *,
    name: str | None = None,
    drop_duplicates: bool = False,
) -> Interactions:
    """Read RecBole atomic files: ``NAME.inter`` (+ ``NAME.item``, ``NAME.user``).

    Headers are typed (``field:type`` with ``token``, ``token_seq``, ``float``,
    ``float_seq``), fields tab-separated.  ``user_id``, ``item_id``, ``rating``
    and ``timestamp`` map onto :class:`Columns`; ml-100k's ``movie_title``,
    ``release_year`` and ``class`` become ``title``, ``year`` and ``genres``.

    Parameters
    ----------
    path
        A folder holding one ``*.inter`` file, or the ``.inter`` file itself.
    name
        Dataset name (default: the file stem).
    drop_duplicates
        Drop repeated ``(user, item, timestamp)`` rows (always counted).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "toy.inter").write_text("user_id:token\\titem_id:token\\ttimestamp:float\\nu\\ta\\t2\\nu\\tb\\t1\\n")
    >>> data = read_atomic(d)
    >>> data.items.to_external(data.item).tolist()
    ['b', 'a']
    """
    path = Path(path)
    inter = _find_inter(path)
    stem = inter.name[: -len(".inter")]
    header = _read_header(inter, "\t", None)
    fields = _atomic_fields(inter, header)
    _missing_columns(inter, ["user_id", "item_id"], list(fields))
    present = [f for f in ("user_id", "item_id", "rating", "timestamp") if f in fields]
    table = _read_delimited(inter, [fields[f] for f in present], sep="\t", quote_char=None)
    table.frame.columns = ["_row", *present]
    _drop_blank_rows(table)
    frame = _canonical(
        table,
        user="user_id",
        item="item_id",
        timestamp="timestamp" if "timestamp" in fields else None,
        rating="rating" if "rating" in fields else None,
    )
    item_path, user_path = inter.with_name(f"{stem}.item"), inter.with_name(f"{stem}.user")
    items = _read_atomic_features(item_path, "item_id", Columns.ITEM) if item_path.exists() else None
    users = _read_atomic_features(user_path, "user_id", Columns.USER) if user_path.exists() else None
    return _build(
        table, frame, name=name or stem, drop_duplicates=drop_duplicates, item_features=items, user_features=users
    )


def _find_inter(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{path}: not found")
    inters = sorted(path.glob("*.inter"))
    if not inters:
        raise DataError(f"{path}: no *.inter file (have: {', '.join(p.name for p in sorted(path.iterdir()))})")
    if len(inters) > 1:
        same = [p for p in inters if p.stem == path.name]
        if len(same) == 1:
            return same[0]
        raise DataError(f"{path}: several .inter files ({', '.join(p.name for p in inters)}); pass one of them")
    return inters[0]


def _atomic_fields(path: Path, header: list[str]) -> dict[str, str]:
    """``{field: header cell}`` from a typed atomic header; checks the types."""
    fields: dict[str, str] = {}
    for cell in header:
        fname, _, ftype = cell.partition(":")
        if not ftype:
            raise DataError(f"{path}: line 1: column {cell!r} has no ':type' suffix (RecBole atomic header)")
        if ftype not in _ATOMIC_TYPES:
            raise DataError(f"{path}: line 1: column {fname!r} has unknown type {ftype!r} (use {_ATOMIC_TYPES})")
        fields[fname] = cell
    return fields


def _read_atomic_features(path: Path, id_field: str, id_column: str) -> pl.DataFrame:
    header = _read_header(path, "\t", None)
    fields = _atomic_fields(path, header)
    _missing_columns(path, [id_field], list(fields))
    table = _read_delimited(path, header, sep="\t", quote_char=None)
    table.frame.columns = ["_row", *fields]
    _drop_blank_rows(table)
    _require_values(table, id_field)
    cols: list[pl.Series] = [table.frame[id_field].alias(id_column)]
    for fname, cell in fields.items():
        if fname == id_field:
            continue
        ftype = cell.partition(":")[2]
        out = _ATOMIC_RENAME.get(fname, fname)
        if ftype == "float":
            cols.append(_to_number(table, fname, allow_empty=True).alias(out))
        elif out == "genres":  # token_seq: space-separated tokens
            cols.append(table.frame[fname].str.strip_chars().str.replace_all(r"\s+", "|").alias(out))
        else:
            cols.append(table.frame[fname].alias(out))
    return pl.DataFrame(cols)


def read_ml100k(
    path: str | Path,
    *,
    name: str | None = None,
    drop_duplicates: bool = False,
) -> Interactions:
    """Read the original MovieLens 100K files: ``u.data``, ``u.item``, ``u.user``.

    ``u.data`` is tab-separated ``user item rating timestamp``; ``u.item`` is
    ``|``-separated (latin-1) with the year in the title and 19 genre flags;
    ``u.user`` is ``user|age|gender|occupation|zip``.

    Parameters
    ----------
    path
        The folder (``ml-100k/``) or its ``u.data`` file.
    name
        Dataset name (default ``"ml-100k"``).
    drop_duplicates
        Drop repeated ``(user, item, timestamp)`` rows (always counted).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "u.data").write_text("1\\t10\\t4\\t880000000\\n2\\t10\\t3\\t880000001\\n")
    >>> read_ml100k(d).n_events
    2
    """
    path = Path(path)
    folder = path.parent if path.is_file() else path
    table = _read_split(folder / "u.data", "\t", ["user", "item", "rating", "timestamp"])
    frame = _canonical(table, user="user", item="item", timestamp="timestamp", rating="rating")
    items = users = None
    if (folder / "u.item").exists():
        genres = ML100K_GENRES
        if (folder / "u.genre").exists():
            genre_table = _read_split(folder / "u.genre", "|", ["genre", "index"], encodings=("utf-8", "latin-1"))
            genres = tuple(genre_table.frame["genre"].to_list())
        names = ["item", "title", "release_date", "video_date", "url", *[f"g{i}" for i in range(len(genres))]]
        t = _read_split(folder / "u.item", "|", names, encodings=("utf-8", "latin-1"))
        _require_values(t, "item", "movie id")
        flags = [pl.when(pl.col(f"g{i}") == "1").then(pl.lit(g)) for i, g in enumerate(genres)]
        items = t.frame.select(
            pl.col("item").alias(Columns.ITEM),
            *_split_title(pl.col("title")),
            pl.concat_str(flags, separator="|", ignore_nulls=True).alias("genres"),
            pl.col("release_date").str.extract(r"(\d{4})$", 1).alias("_year2"),
        )
        items = items.with_columns(pl.coalesce("year", "_year2").alias("year"), _clean_genres(pl.col("genres")))
        items = items.drop("_year2")
    if (folder / "u.user").exists():
        t = _read_split(
            folder / "u.user", "|", ["user", "age", "gender", "occupation", "zip_code"], encodings=("utf-8", "latin-1")
        )
        _require_values(t, "user", "user id")
        users = t.frame.drop("_row").rename({"user": Columns.USER})
    return _build(
        table, frame, name=name or "ml-100k", drop_duplicates=drop_duplicates, item_features=items, user_features=users
    )


def read_movielens_dat(
    path: str | Path,
    *,
    name: str | None = None,
    drop_duplicates: bool = False,
) -> Interactions:
    """Read MovieLens 1M / 10M ``::``-separated files.

    ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``), ``movies.dat``
    (``MovieID::Title::Genres``, latin-1 in ml-1m), optional ``users.dat``
    (``UserID::Gender::Age::Occupation::Zip-code``) and ``tags.dat``
    (``UserID::MovieID::Tag::Timestamp``, aggregated per movie into ``tags``).

    Parameters
    ----------
    path
        The folder (``ml-1m/``) or its ``ratings.dat`` file.
    name
        Dataset name (default: the folder name).
    drop_duplicates
        Drop repeated ``(user, item, timestamp)`` rows (always counted).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "ratings.dat").write_text("1::1193::5::978300760\\n")
    >>> _ = (d / "movies.dat").write_text("1193::One Flew Over the Cuckoo's Nest (1975)::Drama\\n")
    >>> read_movielens_dat(d).item_features.row(0)
    ('1193', "One Flew Over the Cuckoo's Nest", '1975', 'Drama')
    """
    path = Path(path)
    folder = path.parent if path.is_file() else path
    table = _read_split(folder / "ratings.dat", "::", ["user", "item", "rating", "timestamp"])
    frame = _canonical(table, user="user", item="item", timestamp="timestamp", rating="rating")
    items = users = tags = None
    if (folder / "tags.dat").exists():
        t = _read_split(folder / "tags.dat", "::", ["user", "item", "tag", "timestamp"], encodings=("utf-8", "latin-1"))
        tags = _aggregate_tags(t.frame, "item", "tag")
    if (folder / "movies.dat").exists():
        t = _read_split(folder / "movies.dat", "::", ["item", "title", "genres"], encodings=("utf-8", "latin-1"))
        _require_values(t, "item", "MovieID")
        items = t.frame.select(
            pl.col("item").alias(Columns.ITEM), *_split_title(pl.col("title")), _clean_genres(pl.col("genres"))
        )
        items = _with_tags(items, tags)
    if (folder / "users.dat").exists():
        t = _read_split(
            folder / "users.dat",
            "::",
            ["user", "gender", "age", "occupation", "zip_code"],
            encodings=("utf-8", "latin-1"),
        )
        _require_values(t, "user", "UserID")
        occupations = {str(i): o for i, o in enumerate(ML1M_OCCUPATIONS)}
        users = t.frame.select(
            pl.col("user").alias(Columns.USER),
            "gender",
            "age",
            pl.col("occupation").replace(occupations),
            "zip_code",
        )
    return _build(
        table,
        frame,
        name=name or folder.name,
        drop_duplicates=drop_duplicates,
        item_features=items,
        user_features=users,
    )


def read_movielens_csv(
    path: str | Path,
    *,
    name: str | None = None,
    drop_duplicates: bool = False,
) -> Interactions:
    """Read MovieLens CSV releases (ml-latest, ml-latest-small, 20m, 25m, 32m).

    ``ratings.csv`` (``userId,movieId,rating,timestamp``), ``movies.csv``
    (``movieId,title,genres``) and, if present, ``tags.csv``
    (``userId,movieId,tag,timestamp``; tags are aggregated per movie into a
    ``|``-joined ``tags`` field, most frequent first).  ``ratings.csv`` is
    scanned lazily, reading only the four needed columns.

    Parameters
    ----------
    path
        The folder (``ml-25m/``) or its ``ratings.csv`` file.
    name
        Dataset name (default: the folder name).
    drop_duplicates
        Drop repeated ``(user, item, timestamp)`` rows (always counted).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\\n1,1,4.0,964982703\\n")
    >>> _ = (d / "movies.csv").write_text('movieId,title,genres\\n1,"Toy Story (1995)",Animation|Comedy\\n')
    >>> read_movielens_csv(d).item_features.row(0)
    ('1', 'Toy Story', '1995', 'Animation|Comedy')
    """
    path = Path(path)
    folder = path.parent if path.is_file() else path
    table = _read_delimited(folder / "ratings.csv", ["userId", "movieId", "rating", "timestamp"], sep=",")
    _drop_blank_rows(table)
    frame = _canonical(table, user="userId", item="movieId", timestamp="timestamp", rating="rating")
    items = tags = None
    if (folder / "tags.csv").exists():
        t = _read_delimited(folder / "tags.csv", ["movieId", "tag"], sep=",")
        _drop_blank_rows(t)
        _require_values(t, "movieId")
        tags = _aggregate_tags(t.frame, "movieId", "tag")
    if (folder / "movies.csv").exists():
        t = _read_delimited(folder / "movies.csv", ["movieId", "title", "genres"], sep=",")
        _drop_blank_rows(t)
        _require_values(t, "movieId")
        items = t.frame.select(
            pl.col("movieId").alias(Columns.ITEM), *_split_title(pl.col("title")), _clean_genres(pl.col("genres"))
        )
        items = _with_tags(items, tags)
    return _build(table, frame, name=name or folder.name, drop_duplicates=drop_duplicates, item_features=items)


def read_sequences(
    path: str | Path,
    *,
    name: str | None = None,
    drop_duplicates: bool = False,
) -> Interactions:
    """Read the S3-Rec / SASRec sequence format: ``user item item ...`` per line.

    Items are already in time order; there are no timestamps or ratings.  A
    user may appear on one line only.  Blank lines are skipped (and counted).

    Parameters
    ----------
    path
        The ``.txt`` file (or a folder holding exactly one data ``.txt``).
    name
        Dataset name (default: the file stem).
    drop_duplicates
        Drop repeated ``(user, item)`` pairs (always counted).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "toy.txt"
    >>> _ = f.write_text("1 5 6 7\\n2 6\\n")
    >>> data = read_sequences(f)
    >>> data.n_users, data.n_items, data.items.to_external(data.user_items(0)).tolist()
    (2, 3, ['5', '6', '7'])
    """
    path = Path(path)
    if path.is_dir():
        path = _single_data_file(path, (".txt",))
    text = _decode(path)
    users: list[str] = []
    items: list[str] = []
    first_line: dict[str, int] = {}
    blank = 0
    # split("\n"), not splitlines(): the latter also breaks at \x1c, \u2028, ... and would shift line numbers.
    lines = text.split("\n")
    if lines[-1] == "":  # the newline that ends the last line does not start a blank one
        lines.pop()
    for n, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            blank += 1
            continue
        if len(fields) < 2:
            raise DataError(f"{path}: line {n}: expected a user id followed by at least one item, found 1 field")
        user = fields[0]
        if user in first_line:
            raise DataError(f"{path}: line {n}: user {user!r} already has a sequence on line {first_line[user]}")
        first_line[user] = n
        users.extend([user] * (len(fields) - 1))
        items.extend(fields[1:])
    if not users:
        raise DataError(f"{path}: no sequences (only blank lines)")
    frame = pl.DataFrame(
        {Columns.USER: users, Columns.ITEM: items}, schema={Columns.USER: pl.String, Columns.ITEM: pl.String}
    )
    counts = {"rows_read": frame.height, "sequences": len(first_line)}
    if blank:
        counts["blank_lines_skipped"] = blank
    return Interactions.from_frame(
        frame, name=name or path.stem, drop_duplicates=drop_duplicates, source=str(path), counts=counts
    )


def read_log(
    path: str | Path,
    user: str = Columns.USER,
    item: str = Columns.ITEM,
    timestamp: str | None = None,
    rating: str | None = None,
    event_type: str | None = None,
    items_path: str | Path | None = None,
    item_id: str | None = None,
    sep: str | None = None,
    *,
    name: str | None = None,
    drop_duplicates: bool = False,
) -> Interactions:
    """Read a generic CSV / TSV / Parquet interaction log with a column mapping.

    Parameters
    ----------
    path
        The log file (``.csv``, ``.tsv``, ``.parquet``, ...).
    user, item
        Names of the user and item id columns in the file.
    timestamp
        Time column: numbers are epoch seconds; ISO-8601 strings
        (``2024-05-01T12:00:00Z``, ``2024-05-01``) and Parquet datetimes are
        converted to epoch seconds (naive times are UTC).  ``None``: no time,
        file order is the event order.
    rating, event_type
        Optional rating (numeric; empty cells become NaN, counted as
        ``missing_ratings``) and event-type columns.
    items_path
        Optional item catalogue (CSV / Parquet): every other column of it is
        kept as an item feature (text) column.
    item_id
        Name of the id column in ``items_path`` (default: ``item``).
    sep
        Field separator of text files (default: tab for ``.tsv``/``.tab``,
        comma otherwise).
    name
        Dataset name (default: the file stem).
    drop_duplicates
        Drop repeated ``(user, item, timestamp)`` rows (always counted).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = f.write_text("who,what,when\\nu,a,2024-01-02\\nu,b,2024-01-01T00:00:00Z\\n")
    >>> data = read_log(f, user="who", item="what", timestamp="when")
    >>> data.items.to_external(data.item).tolist(), data.timestamp.tolist()
    (['b', 'a'], [1704067200.0, 1704153600.0])
    """
    path = Path(path)
    wanted = [c for c in (user, item, timestamp, rating, event_type) if c is not None]
    table = _read_any(path, list(dict.fromkeys(wanted)), sep)
    _drop_blank_rows(table)
    frame = _canonical(
        table, user=user, item=item, timestamp=timestamp, rating=rating, event_type=event_type, allow_empty_rating=True
    )
    items = None if items_path is None else read_catalogue(items_path, item_id or item, sep)
    return _build(table, frame, name=name or path.stem, drop_duplicates=drop_duplicates, item_features=items)


def read_catalogue(path: str | Path, item_id: str = Columns.ITEM, sep: str | None = None) -> pl.DataFrame:
    """Read an item catalogue (CSV / TSV / Parquet): the id column first, renamed ``item_id``, then every other column.

    Use it for the ``--items FILE`` of any dataset; :func:`read_log` reads its catalogue with it.

    Parameters
    ----------
    path
        The catalogue file.
    item_id
        Name of its item id column.
    sep
        Field separator of a text file (default: by file extension).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "items.csv"
    >>> _ = f.write_text("title,sku\\nMatcha,tea-4\\n")
    >>> read_catalogue(f, "sku").columns
    ['item_id', 'title']
    """
    ipath = Path(path)
    if ipath.suffix.lower() in _PARQUET:
        try:
            have = pl.scan_parquet(_require_file(ipath)).collect_schema().names()
        except pl.exceptions.PolarsError as err:
            raise DataError(f"{ipath}: cannot read Parquet: {str(err).strip().splitlines()[0]}") from None
    else:
        have = _read_header(ipath, _sep_for(ipath, sep), '"')
    _missing_columns(ipath, [item_id], have)
    t = _read_any(ipath, [item_id, *[c for c in have if c != item_id]], sep)
    _drop_blank_rows(t)
    _require_values(t, item_id)
    items = t.frame.drop("_row").rename({item_id: Columns.ITEM})
    return items.with_columns(pl.col(Columns.ITEM).cast(pl.String).str.strip_chars())


def _sep_for(path: Path, sep: str | None) -> str:
    if sep is not None:
        return sep
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def _read_any(path: Path, columns: list[str], sep: str | None) -> _Table:
    if path.suffix.lower() in _PARQUET:
        _require_file(path)
        try:
            scan = pl.scan_parquet(path)
            have = scan.collect_schema().names()
            _missing_columns(path, columns, have)
            frame = scan.select(columns).with_row_index("_row").collect()
        except pl.exceptions.PolarsError as err:
            raise DataError(f"{path}: cannot read Parquet: {str(err).strip().splitlines()[0]}") from None
        return _Table(frame, path, parquet=True)
    return _read_delimited(path, columns, sep=_sep_for(path, sep))


# ======================================================================= load
def _single_data_file(folder: Path, suffixes: Sequence[str]) -> Path:
    found = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in suffixes and not p.stem.lower().startswith(_DOC_STEMS)
    ]
    if len(found) != 1:
        have = ", ".join(p.name for p in sorted(folder.iterdir())) or "nothing"
        raise DataError(f"{folder}: expected exactly one data file ({'/'.join(suffixes)}), have: {have}")
    return found[0]


def detect_format(path: str | Path) -> str:
    """Name the format of a file or folder (one of :data:`FORMATS`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "ratings.dat").write_text("1::1::5::1\\n")
    >>> detect_format(d)
    'ml-dat'
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".inter":
            return "atomic"
        if path.name == "u.data":
            return "ml-100k"
        if path.name == "ratings.dat":
            return "ml-dat"
        if path.name == "ratings.csv" and {"userId", "movieId"} <= set(_read_header(path, ",", '"')):
            return "movielens-csv"
        if suffix == ".txt":
            return "sequence"
        if suffix in _DELIMITED + _PARQUET:
            return "log"
        raise DataError(f"{path}: unknown file type {suffix!r} (expected .inter, .txt, .csv, .tsv, .parquet)")
    marker = path / MARKER
    if marker.exists():
        try:
            fmt = json.loads(marker.read_text())["format"]
        except (ValueError, KeyError) as err:
            raise DataError(f"{marker}: unreadable registry marker ({err})") from None
        if fmt in FORMATS:
            return str(fmt)
    names = {p.name for p in path.iterdir()}
    if any(n.endswith(".inter") for n in names):
        return "atomic"
    if "u.data" in names:
        return "ml-100k"
    if "ratings.dat" in names:
        return "ml-dat"
    if "ratings.csv" in names:
        return "movielens-csv"
    data_files = [
        p
        for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.stem.lower().startswith(_DOC_STEMS)
    ]
    suffixes = {p.suffix.lower() for p in data_files}
    if len(data_files) == 1 and suffixes <= {".txt"}:
        return "sequence"
    if len(data_files) == 1 and suffixes <= set(_DELIMITED + _PARQUET):
        return "log"
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not data_files and len(subdirs) == 1:  # an unpacked archive: ml-1m/ml-1m/
        return detect_format(subdirs[0])
    raise DataError(
        f"{path}: cannot tell the format (have: {', '.join(sorted(names)) or 'nothing'}); expected *.inter, "
        "u.data, ratings.dat, ratings.csv, one sequence .txt or one .csv/.parquet log"
    )


READERS: dict[str, Callable[..., Interactions]] = {
    "atomic": read_atomic,
    "ml-100k": read_ml100k,
    "ml-dat": read_movielens_dat,
    "movielens-csv": read_movielens_csv,
    "sequence": read_sequences,
    "log": read_log,
}


def load(
    path_or_name: str | Path,
    *,
    format: str | None = None,
    name: str | None = None,
    drop_duplicates: bool = False,
    **kw: Any,
) -> Interactions:
    """Load any supported dataset: a file, a folder, or a registered name.

    The format is detected from the files (see :func:`detect_format`) unless
    ``format`` names one of :data:`FORMATS`.  A path that does not exist but
    is a registered dataset name (``"ml-100k"``) goes through
    :func:`recfuse.data.registry.load_dataset` (download and cache).

    Parameters
    ----------
    path_or_name
        File, folder or registered dataset name.
    format
        Force a reader (one of :data:`FORMATS`).
    name
        Dataset name recorded in the result.
    drop_duplicates
        Drop repeated ``(user, item, timestamp)`` rows (always counted).
    **kw
        Column mapping for generic logs (see :func:`read_log`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "Toy.txt"
    >>> _ = f.write_text("1 10 11\\n2 11 12\\n")
    >>> load(f)
    Interactions(name='Toy', users=2, items=3, events=4, time=no, rating=no)
    """
    path = Path(path_or_name)
    if not path.exists():
        from recfuse.data import registry  # late import: the registry uses this module

        if str(path_or_name) in registry.DATASETS:
            return registry.load_dataset(str(path_or_name), drop_duplicates=drop_duplicates, **kw)
        raise DataError(
            f"{path_or_name}: no such file or directory, and not a registered dataset "
            f"(registered: {', '.join(registry.DATASETS)})"
        )
    if kw and format is None and (path.is_file() or "user" in kw or "item" in kw):
        format = "log"
    if format is None:
        format = detect_format(path)
    if format not in READERS:
        raise DataError(f"unknown format {format!r} (known: {', '.join(FORMATS)})")
    if path.is_dir() and format in ("sequence", "log"):
        path = _single_data_file(path, (".txt",) if format == "sequence" else _DELIMITED + _PARQUET)
    if format == "log" and not kw:
        kw = _canonical_mapping(path, kw)
    elif path.is_dir() and format != "atomic":
        sub = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
        markers = {"ml-100k": "u.data", "ml-dat": "ratings.dat", "movielens-csv": "ratings.csv"}
        if not (path / markers[format]).exists() and len(sub) == 1:
            path = sub[0]
    if name is None and path.is_dir():
        name = _marker_name(path)  # else the reader's default (file stem or folder name)
    return READERS[format](path, name=name, drop_duplicates=drop_duplicates, **kw)


def _canonical_mapping(path: Path, kw: dict[str, Any]) -> dict[str, Any]:
    """Map a log that already uses the canonical column names; otherwise ask for a mapping."""
    if path.suffix.lower() in _PARQUET:
        try:
            have = pl.scan_parquet(path).collect_schema().names()
        except pl.exceptions.PolarsError as err:
            raise DataError(f"{path}: cannot read Parquet: {str(err).strip().splitlines()[0]}") from None
    else:
        have = _read_header(path, _sep_for(path, kw.get("sep")), '"')
    if Columns.USER not in have or Columns.ITEM not in have:
        raise DataError(
            f"{path}: line 1: no {Columns.USER!r}/{Columns.ITEM!r} columns (have: {', '.join(have)}); "
            "name the columns: user=..., item=... (CLI: --user/--item)" + _sep_hint(have)
        )
    optional = {"timestamp": Columns.TIME, "rating": Columns.RATING, "event_type": Columns.EVENT}
    return {**kw, **{arg: col for arg, col in optional.items() if col in have}}


def _marker_name(folder: Path) -> str | None:
    marker = folder / MARKER
    if not marker.exists():
        return None
    try:
        return str(json.loads(marker.read_text()).get("name")) or None
    except ValueError:
        return None


__all__ = [
    "FORMATS",
    "MARKER",
    "READERS",
    "detect_format",
    "load",
    "read_atomic",
    "read_catalogue",
    "read_log",
    "read_ml100k",
    "read_movielens_csv",
    "read_movielens_dat",
    "read_sequences",
]
