"""The feedback loop: the events the service stored become the next training set.

``recfuse train --from-db URL --warm-start DIR --out NEW`` reads every stored
event (the seed log plus live ones: new users and new items included) and the
catalogue (``DIR``'s items plus the items added through ``POST /v1/items``,
whose posted text becomes their description), fits the model starting from
``DIR``'s weights where they still fit (item rows matched by external id),
and writes a model directory that ``POST /v1/admin/reload`` can load.

The database is read through :mod:`recfuse.data.eventdb`, so training never
imports the service.  Users erased through ``DELETE /v1/users/{id}`` are not in
the training set: their events left the store with the erasure, and
:func:`~recfuse.data.eventdb.events_frame` also leaves out any event of theirs
received before it (a write that raced the erasure).  What such a user did
afterwards is new data and is trained on.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import polars as pl

from recfuse.bundle import Bundle
from recfuse.data.dataset import DataError, Interactions
from recfuse.data.eventdb import EventReader, events_frame
from recfuse.models.sequential import WarmStart


def warm_start(bundle: Bundle) -> WarmStart:
    """The weights and item ids of a loaded model directory, to start the next fit from.

    Set it as ``model.warm_start`` before ``fit``; the sequential models copy the rows that still fit
    (matched by item id) into their fresh module.
    """
    return WarmStart(bundle.model.state(), bundle.items)


def warm_config(base: Bundle) -> dict[str, Any]:
    """The warm-start model's hyperparameters (``--set`` overrides them)."""
    return dataclasses.asdict(base.model.config)  # type: ignore[call-overload,no-any-return]


def catalogue(base: Bundle, db: EventReader) -> pl.DataFrame:
    """Item features for training: ``base``'s item fields, then the API items.

    An API item's text is its ``description`` and its other fields are left
    empty, so the text built for training is exactly the text it was served
    with; an API update of a base item replaces that item's row.
    """
    fields = base.item_table.drop([c for c in ("text",) if c in base.item_table.columns])
    fields = fields.with_columns(pl.col("item_id").cast(pl.String))
    api = db.load_items()
    if not api:
        return fields
    added = pl.DataFrame({"item_id": [r.item_id for r in api], "description": [r.text for r in api]})
    fields = fields.filter(~pl.col("item_id").is_in(added["item_id"].to_list()))
    return pl.concat([fields, added], how="diagonal_relaxed")


def load_from_db(url: str, base: Bundle, table_prefix: str = "", name: str | None = None) -> Interactions:
    """Every stored event as an :class:`Interactions` (erased users' data left out), with the
    catalogue of :func:`catalogue`.

    Parameters
    ----------
    url
        The store's SQLAlchemy URL (as given to ``recfuse serve --db``).
    base
        Model directory whose item catalogue the API items are added to.
    table_prefix
        The store's table prefix.
    name
        Dataset name; default ``<base's dataset>+db``.

    Raises
    ------
    recfuse.data.eventdb.StoreError
        The URL cannot be opened.
    DataError
        No recfuse store at ``url``, or it holds no events.

    Examples
    --------
    >>> data = load_from_db("sqlite:///recfuse.db", Bundle.load("models/ml-100k-fusion"))  # doctest: +SKIP
    """
    db = EventReader(url, table_prefix)
    try:
        if db.schema_version() == 0:
            raise DataError(f"--from-db {url}: no recfuse event store there (run `recfuse serve --db {url}` first)")
        frame = events_frame(db)
        if frame.height == 0:
            raise DataError(f"--from-db {url}: the store has no events")
        features = catalogue(base, db)
    finally:
        db.close()
    label = name or f"{base.meta.get('dataset', 'dataset')}+db"
    return Interactions.from_frame(frame, item_features=features, name=label, source=url)
