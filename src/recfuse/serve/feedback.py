"""The feedback loop: the events the service stored become the next training set.

``recfuse train --from-db URL --warm-start DIR --out NEW`` reads every stored
event (the seed log plus live ones: new users and new items included) and the
catalogue (``DIR``'s items plus the items added through ``POST /v1/items``,
whose posted text becomes their description), fits the model starting from
``DIR``'s weights where they still fit (item rows matched by external id),
and writes a model directory that ``POST /v1/admin/reload`` can load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from recfuse.bundle import Bundle
from recfuse.data.dataset import DataError, IdMap, Interactions
from recfuse.serve.store import EventStore


@dataclass(frozen=True)
class WarmStart:
    """A previous model's weights and the item ids its item rows belong to."""

    state: dict[str, np.ndarray]
    items: IdMap

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> WarmStart:
        return cls(bundle.model.state(), bundle.items)


def catalogue(base: Bundle, store: EventStore) -> pl.DataFrame:
    """Item features for training: ``base``'s item fields, then the API items.

    An API item's text is its ``description`` and its other fields are left
    empty, so the text built for training is exactly the text it was served
    with; an API update of a base item replaces that item's row.
    """
    fields = base.item_table.drop([c for c in ("text",) if c in base.item_table.columns])
    fields = fields.with_columns(pl.col("item_id").cast(pl.String))
    api = store.load_items()
    if not api:
        return fields
    added = pl.DataFrame({"item_id": [r.item_id for r in api], "description": [r.text for r in api]})
    fields = fields.filter(~pl.col("item_id").is_in(added["item_id"].to_list()))
    return pl.concat([fields, added], how="diagonal_relaxed")


def load_from_db(url: str, base: Bundle, table_prefix: str = "", name: str | None = None) -> Interactions:
    """Every stored event as an :class:`Interactions`, with the catalogue of :func:`catalogue`.

    Examples
    --------
    >>> load_from_db("sqlite://", None)  # doctest: +SKIP
    """
    store = EventStore(url, table_prefix)
    try:
        if store.schema_version() == 0:
            raise DataError(f"--from-db {url}: no recfuse event store there (run `recfuse serve --db {url}` first)")
        users: list[str] = []
        items: list[str] = []
        ts: list[float] = []
        ratings: list[float] = []
        types: list[str] = []
        for chunk in store.iter_events():
            for u, i, t, r, kind in chunk:
                users.append(u)
                items.append(i)
                ts.append(t)
                ratings.append(math.nan if r is None else r)
                types.append(kind)
        if not users:
            raise DataError(f"--from-db {url}: the store has no events")
        frame = pl.DataFrame(
            {"user_id": users, "item_id": items, "timestamp": ts, "rating": ratings, "event_type": types},
            schema={"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Float64, "rating": pl.Float32,
                    "event_type": pl.String},
        )
        features = catalogue(base, store)
    finally:
        store.close()
    label = name or f"{base.meta.get('dataset', 'dataset')}+db"
    return Interactions.from_frame(frame, item_features=features, name=label, source=url)


def warm_config(base: Bundle) -> dict[str, Any]:
    """The warm-start model's hyperparameters (``--set`` overrides them)."""
    import dataclasses

    return dataclasses.asdict(base.model.config)  # type: ignore[call-overload,no-any-return]
