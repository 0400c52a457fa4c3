"""A self-contained model directory: what ``recfuse train`` writes and ``recfuse serve`` loads.

Layout::

    DIR/bundle.json          {"format": 1, "model": NAME, "dataset": ..., "created": ..., "text_model": ...,
                              "fit_info": {...}, "n_users": ..., "n_items": ...}
    DIR/model/               config.json + state.safetensors (Recommender.save)
    DIR/items.parquet        one row per item in index order: item_id, text, then the dataset's item fields
    DIR/users.parquet        one row per user in index order: user_id
    DIR/events.parquet       the interaction log the model was built from (user_id, item_id, timestamp, rating)
    DIR/item_text.npy        (n_items, d) float32 text embeddings, when the model reads text

Ids inside the model are dense indices; the two parquet tables map them back
to the external ids a caller uses.  Nothing is pickled.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recfuse.data.dataset import IdMap, Interactions
from recfuse.models.base import Recommender

FORMAT = 1


class BundleError(ValueError):
    """A model directory is missing a file or is of an unknown format."""


@dataclass
class Bundle:
    model: Recommender
    users: IdMap
    items: IdMap
    item_table: pl.DataFrame  # item_id, text, item fields, in index order
    events: pl.DataFrame  # user_id, item_id, timestamp, rating
    text_vectors: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_fit(
        cls, model: Recommender, data: Interactions, meta: dict[str, Any] | None = None,
        text_vectors: np.ndarray | None = None,
    ) -> Bundle:
        """Bundle a model fitted on (a split of) ``data``; ``data`` is the full log it came from.

        ``text_vectors``: the item text vectors the model was fitted with (rows in item order); when the
        data has item text and none are given, they are encoded here (from the on-disk cache after the
        first time).  The service ranks free-text queries and new items with them.
        """
        texts = [""] * data.n_items
        vectors = None
        text_model = None
        if data.item_features is not None and data.item_features.width >= 2:
            from recfuse.text.build import build_item_texts
            from recfuse.text.encoder import TextEncoder

            texts = build_item_texts(data).texts
            if text_vectors is None:
                from recfuse.text.cache import encode_items

                text_vectors = encode_items(data)[0]
            vectors = np.asarray(text_vectors, np.float32)
            text_model = TextEncoder().key
        table = pl.DataFrame({"item_id": data.items.external_ids.astype(str), "text": texts})
        if data.item_features is not None:
            feats = data.item_features.drop(data.item_features.columns[0])
            feats = feats.select([c for c in feats.columns if c not in ("item_id", "text")])
            table = pl.concat([table, feats], how="horizontal")
        events = events_frame(data)
        info = {
            "format": FORMAT,
            "model": model.name,
            "dataset": data.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "text_model": text_model,
            "n_users": data.n_users,
            "n_items": data.n_items,
            "fit_info": {k: v for k, v in model.fit_info.items() if k != "history"},
            **(meta or {}),
        }
        return cls(model, data.users, data.items, table, events, vectors, info)

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(path / "model")
        self.item_table.write_parquet(path / "items.parquet")
        pl.DataFrame({"user_id": self.users.external_ids.astype(str)}).write_parquet(path / "users.parquet")
        self.events.write_parquet(path / "events.parquet")
        if self.text_vectors is not None:
            np.save(path / "item_text.npy", np.ascontiguousarray(self.text_vectors, np.float32))
        (path / "bundle.json").write_text(json.dumps(self.meta, indent=2, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Bundle:
        path = Path(path)
        meta_file = path / "bundle.json"
        if not meta_file.is_file():
            raise BundleError(f"{path}: not a recfuse model directory (no bundle.json); make one with `recfuse train`")
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != FORMAT:
            raise BundleError(f"{meta_file}: format {meta.get('format')!r}, this recfuse reads format {FORMAT}")
        for name in ("model/config.json", "model/state.safetensors", "items.parquet", "users.parquet", "events.parquet"):
            if not (path / name).is_file():
                raise BundleError(f"{path}: missing {name}")
        model = Recommender.load(path / "model")
        items = pl.read_parquet(path / "items.parquet")
        users = pl.read_parquet(path / "users.parquet")
        vectors = np.load(path / "item_text.npy", allow_pickle=False) if (path / "item_text.npy").is_file() else None
        return cls(
            model=model,
            users=IdMap(users["user_id"].to_list()),
            items=IdMap(items["item_id"].to_list()),
            item_table=items,
            events=pl.read_parquet(path / "events.parquet"),
            text_vectors=vectors,
            meta=meta,
        )

    def title(self, index: int) -> str:
        """A readable label for item ``index``: its title (or text), else its id."""
        row = self.item_table.row(int(index), named=True)
        for key in ("title", "movie_title", "name"):
            if row.get(key):
                return str(row[key])
        text = row.get("text") or ""
        return text[:60] if text else str(row["item_id"])


def events_frame(data: Interactions) -> pl.DataFrame:
    """The log as a frame of external ids (the store's seed)."""
    cols: dict[str, Any] = {
        "user_id": data.users.to_external(data.user).astype(str),
        "item_id": data.items.to_external(data.item).astype(str),
    }
    cols["timestamp"] = data.timestamp if data.timestamp is not None else np.arange(data.n_events, dtype=np.float64)
    cols["rating"] = data.rating if data.rating is not None else np.full(data.n_events, np.nan, np.float32)
    return pl.DataFrame(cols)
