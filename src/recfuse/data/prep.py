"""Preparation of big logs with Polars' lazy engine: scan, validate, map ids, sort, split.

:meth:`Interactions.from_frame` reads a whole frame eagerly and checks it row
by row in places; for logs of tens of millions of events use :func:`prepare`
instead.  It scans Parquet files (one file, a folder or a glob) lazily, runs
each check as one streaming aggregate, maps external ids to dense indices
with a join (item ids from an optional catalogue file are kept even without
events), sorts by (user, time, file order) and returns the same
:class:`Interactions` the rest of recfuse takes; :func:`prepare_split` adds
the leave-one-out split.  Only the columns the models use are read
(user, item, timestamp).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recfuse.columns import Columns
from recfuse.data.dataset import DataError, IdMap, Interactions
from recfuse.data.split import Split, leave_one_out


def scan_events(path: str | Path) -> pl.LazyFrame:
    """A lazy frame over the Parquet event files at ``path`` (a file, a folder of ``*.parquet`` or a glob)."""
    p = Path(path)
    if p.is_dir():
        inner = p / "events" if (p / "events").is_dir() else p
        files = sorted(inner.glob("*.parquet"))
        if not files:
            raise DataError(f"{p}: no .parquet files")
        return pl.scan_parquet(files)
    return pl.scan_parquet(str(p))


def prepare(path: str | Path, items: str | Path | None = None, name: str | None = None) -> Interactions:
    """Read, validate, map ids and sort a big Parquet log, lazily; ``items``: an optional catalogue file.

    A folder written by ``recfuse data synth`` is read whole (``events/`` and
    its ``items.parquet``).  Raises :class:`DataError` naming the problem:
    a missing column, an empty log, empty ids or timestamps.

    Examples
    --------
    >>> import tempfile
    >>> from recfuse.data.synth import SynthConfig, synthesize
    >>> d = prepare(synthesize(tempfile.mkdtemp(), SynthConfig(users=10, items=20, events=100)))
    >>> d.n_users, d.n_items, d.n_events
    (10, 20, 100)
    """
    p = Path(path)
    if items is None and p.is_dir() and (p / "items.parquet").is_file():
        items = p / "items.parquet"
    lf = scan_events(p)
    have = lf.collect_schema()
    for col in Columns.REQUIRED:
        if col not in have:
            raise DataError(f"{p}: missing required column {col!r} (have {have.names()})")
    cols = [c for c in (Columns.USER, Columns.ITEM, Columns.TIME) if c in have]
    has_time = Columns.TIME in have
    if has_time and not have[Columns.TIME].is_numeric():
        raise DataError(f"{p}: field {Columns.TIME!r} is not numeric")
    lf = lf.select(cols)
    checks = [pl.len().alias("rows")] + [pl.col(c).null_count().alias(f"null_{c}") for c in cols]
    if has_time:
        checks.append(pl.col(Columns.TIME).cast(pl.Float64).is_nan().sum().alias(f"nan_{Columns.TIME}"))
    found = lf.select(checks).collect(engine="streaming").row(0, named=True)
    if found["rows"] == 0:
        raise DataError(f"{p}: no interactions (empty log)")
    for key, value in found.items():
        if key != "rows" and value:
            raise DataError(f"{p}: {value} rows with an empty field {key.split('_', 1)[1]!r}")

    # Dense ids: users in order of first appearance in the files, items likewise with the catalogue's new ones after.
    users = lf.select(pl.col(Columns.USER).unique(maintain_order=True)).collect(engine="streaming")[Columns.USER]
    item_ids = lf.select(pl.col(Columns.ITEM).unique(maintain_order=True)).collect(engine="streaming")[Columns.ITEM]
    if items is not None:
        catalogue = pl.scan_parquet(str(items)).select(pl.col(Columns.ITEM).cast(item_ids.dtype)).collect()[Columns.ITEM]
        item_ids = pl.concat([item_ids, catalogue.filter(~catalogue.is_in(item_ids.implode()))])
    ucode = pl.DataFrame({Columns.USER: users, "_u": pl.int_range(len(users), eager=True, dtype=pl.Int64)}).lazy()
    icode = pl.DataFrame({Columns.ITEM: item_ids, "_i": pl.int_range(len(item_ids), eager=True, dtype=pl.Int64)}).lazy()
    coded = (lf.with_row_index("_row")
             .join(ucode, on=Columns.USER, how="left")
             .join(icode, on=Columns.ITEM, how="left")
             .sort(["_u", Columns.TIME, "_row"] if has_time else ["_u", "_row"])
             .select(["_u", "_i"] + ([pl.col(Columns.TIME).cast(pl.Float64)] if has_time else [])))
    frame = coded.collect()
    user = frame["_u"].to_numpy()
    item = frame["_i"].to_numpy()
    ts = frame[Columns.TIME].to_numpy() if has_time else None
    del frame
    indptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=len(users)), out=indptr[1:])
    return Interactions(users=IdMap(users.cast(pl.String).to_list()), items=IdMap(item_ids.cast(pl.String).to_list()),
                        user=user, item=item, indptr=indptr, timestamp=ts, name=name or p.name,
                        counts={"rows_read": int(found["rows"])})


def prepare_split(path: str | Path, items: str | Path | None = None) -> Split:
    """:func:`prepare` then the leave-one-out split (last event test, second-to-last valid).

    Examples
    --------
    >>> import tempfile
    >>> from recfuse.data.synth import SynthConfig, synthesize
    >>> s = prepare_split(synthesize(tempfile.mkdtemp(), SynthConfig(users=10, items=20, events=100)))
    >>> len(s.test), s.train.n_events
    (10, 80)
    """
    return leave_one_out(prepare(path, items))
