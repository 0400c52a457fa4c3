"""The facts a text generator may phrase, read from a model directory: per item and per user.

:func:`item_facts` turns a model's ``explain`` output into :class:`~recfuse.llm.phrase.ItemFacts` (the
gate, the history items with a positive contribution, the dominant dimension).  :func:`profile_facts`
reads the fusion model's two interest vectors for a user: the history items and the catalogue genres
nearest to the long-term vector and to the short-term one, and the gate.  A model without those vectors
gets facts from the history alone (all of it for the long term, the last events for the short term).

Examples
--------
>>> from recfuse.bundle import Bundle                                # doctest: +SKIP
>>> from recfuse.recommend import user_query                         # doctest: +SKIP
>>> bundle = Bundle.load("models/ml-100k-fusion")                    # doctest: +SKIP
>>> q, _ = user_query(bundle, "196")                                 # doctest: +SKIP
>>> explain_item(item_facts(bundle, bundle.model.explain(q, 5)[0])[0]).text  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from recfuse.llm.phrase import ItemFacts, ProfileFacts, TitleGuard
from recfuse.text.build import natural_title

if TYPE_CHECKING:
    from recfuse.bundle import Bundle
    from recfuse.data.split import Queries

N_HISTORY = 3  # history titles per item explanation
N_LONG, N_SHORT = 3, 2  # titles per interest in a summary
N_GENRES = 3  # genres per interest
N_NEIGHBOURS = 30  # catalogue items nearest an interest vector that vote on its genres
RECENT = 10  # the events the short-term titles are picked from


def display_title(bundle: Bundle, index: int) -> str:
    """Item ``index``'s title as people read it, with its year: ``"The Usual Suspects (1995)"``.

    Falls back to :meth:`recfuse.bundle.Bundle.title` (a text prefix or the id) without a title field.
    """
    row = bundle.item_table.row(int(index), named=True)
    title = next((str(row[k]) for k in ("title", "movie_title", "name") if row.get(k)), None)
    if title is None:
        return bundle.title(int(index))
    title = natural_title(title.strip())
    year = row.get("year")
    year = None if year is None else str(year).split(".")[0]
    if year and re.fullmatch(r"(1[89]|20)\d\d", year) and not title.endswith(f"({year})"):
        title = f"{title} ({year})"
    return title


def item_genres(bundle: Bundle) -> list[tuple[str, ...]]:
    """Each item's genres (the ``genres`` field split on ``|``), ``()`` where there are none."""
    if "genres" not in bundle.item_table.columns:
        return [()] * bundle.item_table.height
    return [tuple(g for g in str(v).split("|") if g and g != "unknown") if v else ()
            for v in bundle.item_table["genres"].to_list()]


def title_guard(bundle: Bundle) -> TitleGuard:
    """A :class:`~recfuse.llm.phrase.TitleGuard` over every title of the bundle's catalogue (build once)."""
    return TitleGuard(display_title(bundle, i) for i in range(bundle.item_table.height))


def item_facts(bundle: Bundle, explanation: dict[str, Any], n_history: int = N_HISTORY) -> list[ItemFacts]:
    """Facts per recommended item from one query's ``model.explain`` output (``{"gate", "items": [...]}``).

    Only history events with a positive contribution count as "because of" items.
    """
    gate = explanation.get("gate")
    out = []
    for entry in explanation.get("items", []):
        because: list[str] = []
        for j, weight in entry.get("history", []):
            title = display_title(bundle, int(j))
            if weight > 0 and title not in because:
                because.append(title)
        item = int(entry["item"])
        out.append(ItemFacts(
            title=display_title(bundle, item), gate=None if gate is None else float(gate),
            because=tuple(because[:n_history]), dimension=entry.get("dimension"),
            item_id=str(bundle.items.external_ids[item]),
        ))
    return out


def _top_genres(order: Sequence[int], genres: Sequence[tuple[str, ...]], n: int = N_GENRES) -> tuple[str, ...]:
    """Genres of the items in ``order`` (nearest first), weighted by 1 / rank."""
    votes: dict[str, float] = {}
    for rank, i in enumerate(order, start=1):
        for g in genres[i]:
            votes[g] = votes.get(g, 0.0) + 1.0 / rank
    return tuple(sorted(votes, key=lambda g: -votes[g])[:n])


def _interest_vectors(model: Any, queries: Queries) -> tuple[np.ndarray, np.ndarray, float, np.ndarray] | None:
    """(long, short, gate, item vectors) of the fusion model for the first query, or ``None`` for other models."""
    if not all(hasattr(model, a) for a in ("outputs", "inputs", "item_vectors", "module")):
        return None
    import torch

    module = model.module
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = model.outputs(model.inputs(queries), last_only=True)
            return (out.long[0, -1].float().cpu().numpy(), out.short[0, -1].float().cpu().numpy(),
                    float(out.gate[0, -1]), model.item_vectors().float().cpu().numpy())
    finally:
        module.train(was_training)


def profile_facts(bundle: Bundle, queries: Queries, user_id: str | None = None) -> ProfileFacts:
    """A user's interests from the model's two interest vectors (fusion) or from the history (others).

    ``queries`` holds one query (the user's history at request time, as
    :func:`recfuse.recommend.user_query` builds it).
    """
    history = [int(i) for i in queries.items[queries.indptr[0]: queries.indptr[1]]]
    if not history:
        return ProfileFacts(user_id=user_id)
    genres = item_genres(bundle)
    seen = list(dict.fromkeys(history))
    recent = list(dict.fromkeys(reversed(history)))[:RECENT]  # newest first
    vectors = _interest_vectors(bundle.model, queries)
    if vectors is None:
        long_titles = [display_title(bundle, i) for i in seen[-N_LONG:]]
        short_titles = [display_title(bundle, i) for i in recent[:N_SHORT]]
        return ProfileFacts(
            gate=None, long_titles=tuple(long_titles), long_genres=_top_genres(seen[::-1], genres),
            short_titles=tuple(short_titles), short_genres=_top_genres(recent[:5], genres),
            n_events=len(history), user_id=user_id,
        )
    long_vec, short_vec, gate, items = vectors  # items: (n_items, D)
    s_long, s_short = items @ long_vec, items @ short_vec  # (n_items,) each
    # What they are into now comes from the newest events; what they have loved over time from the
    # events before those (all of them when the history is no longer than the recent window).
    rec = np.array(recent)
    short_pick = rec[np.argsort(-s_short[rec], kind="stable")][:N_SHORT].tolist()
    newest = set(recent)
    past = np.array([i for i in seen if i not in newest] or [i for i in seen if i not in short_pick] or seen)
    long_pick = past[np.argsort(-s_long[past], kind="stable")][:N_LONG].tolist()
    near_long = np.argsort(-s_long, kind="stable")[:N_NEIGHBOURS].tolist()
    near_short = np.argsort(-s_short, kind="stable")[:N_NEIGHBOURS].tolist()
    return ProfileFacts(
        gate=gate,
        long_titles=tuple(display_title(bundle, i) for i in long_pick),
        long_genres=_top_genres(near_long, genres),
        short_titles=tuple(display_title(bundle, i) for i in short_pick),
        short_genres=_top_genres(near_short, genres),
        n_events=len(history), user_id=user_id,
    )


__all__ = ["display_title", "item_facts", "item_genres", "profile_facts", "title_guard"]
