"""The in-memory interaction log: id maps outside, dense ints inside.

``Interactions`` holds one event per row, sorted by user and then by time
(stable: events with the same timestamp keep their file order).  External ids
live only in the two :class:`IdMap` objects; every array speaks dense
``0..n-1`` indices, so models can use them as tensor indices directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from recfuse.columns import Columns


class DataError(ValueError):
    """Malformed input.  The message names the file, line and field."""


class IdMap:
    """Bidirectional map between external ids (strings) and dense indices.

    External ids are kept as strings so that ``"196"`` in a CSV, ``196`` in a
    JSON request and ``b"196"`` never disagree.

    Examples
    --------
    >>> m = IdMap(["b", "a"])
    >>> m.to_index(["a", "b"]).tolist()
    [1, 0]
    >>> m.to_external([0]).tolist()
    ['b']
    """

    def __init__(self, external_ids: Iterable[Any]) -> None:
        ids = np.asarray([str(x) for x in external_ids], dtype=object)
        self._ids = ids
        self._index: dict[str, int] = {x: i for i, x in enumerate(ids.tolist())}
        if len(self._index) != len(ids):
            raise DataError("IdMap: duplicate external ids")

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external_id: object) -> bool:
        return str(external_id) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids.tolist() == other._ids.tolist()

    @property
    def external_ids(self) -> np.ndarray:
        """External ids in index order (object array of ``str``)."""
        return self._ids

    def index(self, external_id: object) -> int:
        """Index of one external id; ``KeyError`` naming the id if unknown."""
        try:
            return self._index[str(external_id)]
        except KeyError:
            raise KeyError(f"unknown id {external_id!r}") from None

    def get(self, external_id: object, default: int = -1) -> int:
        """Index of one external id, or ``default`` if unknown."""
        return self._index.get(str(external_id), default)

    def to_index(self, external_ids: Iterable[Any], missing: int | None = None) -> np.ndarray:
        """Indices of many external ids.

        Unknown ids raise ``KeyError`` unless ``missing`` gives their value.
        """
        if missing is None:
            return np.fromiter((self.index(x) for x in external_ids), dtype=np.int64)
        return np.fromiter((self.get(x, missing) for x in external_ids), dtype=np.int64)

    def to_external(self, indices: Iterable[int] | np.ndarray) -> np.ndarray:
        """External ids of many indices."""
        return self._ids[np.asarray(indices, dtype=np.int64)]

    def extend(self, external_ids: Iterable[Any]) -> IdMap:
        """A new map with the unseen ``external_ids`` appended (old indices kept)."""
        new = [str(x) for x in external_ids if str(x) not in self._index]
        return IdMap([*self._ids.tolist(), *dict.fromkeys(new)])


@dataclass(frozen=True, eq=False)
class Interactions:
    """An interaction log, sorted by (user, time, file order).

    Attributes
    ----------
    users, items
        Id maps.  The item map may hold items that have no events (they came
        from the item catalogue): they are part of the ranking.
    user, item
        ``int64`` arrays, one entry per event.
    timestamp, rating
        Optional ``float64`` / ``float32`` arrays, one entry per event.
    event_type
        Optional array of strings, one entry per event.
    indptr
        ``(n_users + 1,)``: events of user ``u`` are ``indptr[u]:indptr[u+1]``.
    item_features, user_features
        Optional Polars frames with one row per item / user **in index order**;
        their first column is the external id.
    name
        A label for reports (dataset name).
    counts
        What loading did to the raw rows (rows read, duplicates seen or
        dropped, ...), so nothing is dropped without a count.
    """

    users: IdMap
    items: IdMap
    user: np.ndarray
    item: np.ndarray
    indptr: np.ndarray
    timestamp: np.ndarray | None = None
    rating: np.ndarray | None = None
    event_type: np.ndarray | None = None
    item_features: pl.DataFrame | None = None
    user_features: pl.DataFrame | None = None
    name: str = "dataset"
    counts: dict[str, int] = field(default_factory=dict)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_frame(
        cls,
        frame: pl.DataFrame,
        *,
        item_features: pl.DataFrame | None = None,
        user_features: pl.DataFrame | None = None,
        name: str = "dataset",
        drop_duplicates: bool = False,
        source: str = "<frame>",
        counts: dict[str, int] | None = None,
    ) -> Interactions:
        """Build from a frame with the canonical columns (see :class:`Columns`).

        Rows are taken in frame order; that order breaks timestamp ties.
        Duplicate ``(user, item, timestamp)`` rows are kept (and counted)
        unless ``drop_duplicates``.

        Examples
        --------
        >>> import polars as pl
        >>> df = pl.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "b", "a"],
        ...                    "timestamp": [2, 1, 5]})
        >>> data = Interactions.from_frame(df)
        >>> data.items.to_external(data.item).tolist()  # u's events in time order
        ['b', 'a', 'a']
        """
        for col in Columns.REQUIRED:
            if col not in frame.columns:
                raise DataError(f"{source}: missing required column {col!r} (have {frame.columns})")
        if frame.height == 0:
            raise DataError(f"{source}: no interactions (empty file)")
        counts = dict(counts or {})
        counts.setdefault("rows_read", frame.height)
        frame = frame.with_columns(
            pl.col(Columns.USER).cast(pl.String), pl.col(Columns.ITEM).cast(pl.String)
        ).with_row_index("_row")
        for col in Columns.REQUIRED:
            nulls = frame.filter(pl.col(col).is_null())
            if nulls.height:
                row = int(nulls["_row"][0])
                raise DataError(f"{source}: row {row + 1}: field {col!r} is empty")
        has_time = Columns.TIME in frame.columns
        if has_time:
            if not frame.schema[Columns.TIME].is_numeric():
                raise DataError(f"{source}: field {Columns.TIME!r} is not numeric")
            frame = frame.with_columns(pl.col(Columns.TIME).cast(pl.Float64))
            nulls = frame.filter(pl.col(Columns.TIME).is_null() | pl.col(Columns.TIME).is_nan())
            if nulls.height:
                row = int(nulls["_row"][0])
                raise DataError(f"{source}: row {row + 1}: field {Columns.TIME!r} is empty")
        key = [Columns.USER, Columns.ITEM] + ([Columns.TIME] if has_time else [])
        dup_mask = frame.select(pl.struct(key).is_duplicated()).to_series()
        # A duplicate "group" counts every row after the first one.
        n_dup = int(dup_mask.sum()) - int(frame.filter(dup_mask).select(key).unique().height)
        counts["duplicate_rows"] = n_dup
        if drop_duplicates and n_dup:
            frame = frame.unique(subset=key, keep="first", maintain_order=True)
            counts["duplicate_rows_dropped"] = n_dup

        users = IdMap(frame[Columns.USER].unique(maintain_order=True).to_list())
        item_ids = frame[Columns.ITEM].unique(maintain_order=True).to_list()
        if item_features is not None:
            item_features = item_features.with_columns(pl.col(item_features.columns[0]).cast(pl.String))
            item_ids = list(dict.fromkeys([*item_ids, *item_features[item_features.columns[0]].to_list()]))
        items = IdMap(item_ids)

        user = _codes(frame[Columns.USER], users)
        item = _codes(frame[Columns.ITEM], items)
        if has_time:
            ts = frame[Columns.TIME].to_numpy().astype(np.float64)
            order = _stable_order(user, ts)  # user, then time, then file order
        else:
            ts = None
            order = _stable_order(user, None)
        rating = None
        if Columns.RATING in frame.columns:
            if not frame.schema[Columns.RATING].is_numeric():
                raise DataError(f"{source}: field {Columns.RATING!r} is not numeric")
            rating = frame[Columns.RATING].cast(pl.Float32).fill_null(np.nan).to_numpy()[order]
        event_type = None
        if Columns.EVENT in frame.columns:
            event_type = np.asarray(frame[Columns.EVENT].cast(pl.String).to_list(), dtype=object)[order]
        user = user[order]
        indptr = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(np.bincount(user, minlength=len(users)), out=indptr[1:])
        return cls(
            users=users,
            items=items,
            user=user,
            item=item[order],
            indptr=indptr,
            timestamp=None if ts is None else ts[order],
            rating=rating,
            event_type=event_type,
            item_features=_align_features(item_features, items),
            user_features=_align_features(user_features, users),
            name=name,
            counts=counts,
        )

    @classmethod
    def from_sequences(
        cls, sequences: Sequence[tuple[str, Sequence[str]]], *, name: str = "dataset"
    ) -> Interactions:
        """Build from ``[(user, [item, item, ...]), ...]`` already in time order.

        Examples
        --------
        >>> d = Interactions.from_sequences([("u1", ["a", "b"]), ("u2", ["b"])])
        >>> d.n_users, d.n_items, d.n_events
        (2, 2, 3)
        """
        users = [u for u, seq in sequences for _ in seq]
        items = [i for _, seq in sequences for i in seq]
        frame = pl.DataFrame({Columns.USER: users, Columns.ITEM: items}, schema={
            Columns.USER: pl.String, Columns.ITEM: pl.String})
        return cls.from_frame(frame, name=name)

    # ------------------------------------------------------------- properties
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_events(self) -> int:
        return len(self.user)

    def lengths(self) -> np.ndarray:
        """Number of events per user, ``(n_users,)``."""
        return np.diff(self.indptr)

    def user_items(self, u: int) -> np.ndarray:
        """The items of user ``u`` in time order."""
        return self.item[self.indptr[u] : self.indptr[u + 1]]

    def item_counts(self) -> np.ndarray:
        """Number of events per item, ``(n_items,)``."""
        return np.bincount(self.item, minlength=self.n_items)

    def matrix(self, binary: bool = True) -> sp.csr_matrix:
        """User × item matrix in CSR form (1 per interacted pair if ``binary``)."""
        data = np.ones(self.n_events, dtype=np.float32)
        m = sp.csr_matrix((data, (self.user, self.item)), shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m

    # -------------------------------------------------------------- selection
    def select(self, mask: np.ndarray) -> Interactions:
        """Keep the events where ``mask`` is true; id maps (and indices) stay."""
        mask = np.asarray(mask, dtype=bool)
        user = self.user[mask]
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(user, minlength=self.n_users), out=indptr[1:])
        return replace(
            self,
            user=user,
            item=self.item[mask],
            indptr=indptr,
            timestamp=None if self.timestamp is None else self.timestamp[mask],
            rating=None if self.rating is None else self.rating[mask],
            event_type=None if self.event_type is None else self.event_type[mask],
        )

    def __repr__(self) -> str:
        return (
            f"Interactions(name={self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"events={self.n_events}, time={'yes' if self.timestamp is not None else 'no'}, "
            f"rating={'yes' if self.rating is not None else 'no'})"
        )


def _codes(values: pl.Series, ids: IdMap) -> np.ndarray:
    """Dense indices of ``values`` (all present in ``ids``) as ``int64``.

    Vectorised in Polars: a per-row Python lookup takes ~10 s per column on a
    25M-row log.
    """
    keys = pl.Series(ids.external_ids.tolist(), dtype=pl.String)
    codes = pl.int_range(len(ids), eager=True, dtype=pl.Int64)
    return values.cast(pl.String).replace_strict(keys, codes, return_dtype=pl.Int64).to_numpy()


def _stable_order(user: np.ndarray, ts: np.ndarray | None) -> np.ndarray:
    """Permutation sorting by user, then time; ties keep their input order.

    Polars' multi-threaded stable sort is ~3x faster than ``np.lexsort`` on
    25M rows and gives the same permutation.
    """
    cols: dict[str, np.ndarray] = {"u": user}
    if ts is not None:
        cols["t"] = ts
    frame = pl.DataFrame(cols).with_row_index("_row")
    return frame.sort(list(cols), maintain_order=True)["_row"].to_numpy().astype(np.int64)


def _align_features(features: pl.DataFrame | None, ids: IdMap) -> pl.DataFrame | None:
    """Reorder a feature frame (first column = external id) to index order.

    Ids without a row get nulls; rows for ids outside the map are dropped.
    """
    if features is None:
        return None
    key = features.columns[0]
    features = features.with_columns(pl.col(key).cast(pl.String)).unique(subset=key, keep="first", maintain_order=True)
    order = pl.DataFrame({key: ids.external_ids.tolist()}, schema={key: pl.String})
    return order.join(features, on=key, how="left", maintain_order="left")
