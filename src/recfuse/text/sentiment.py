"""Sentiment signals: review-text polarity (VADER) and per-user rating deviation.

Both feed the fusion model's sentiment dimension: how much a user liked an
item relative to how they usually rate, or what their review says.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from recfuse.data.dataset import Interactions
from recfuse.text.build import TextError


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise TextError("text polarity needs vaderSentiment: pip install 'recfuse[text]'") from None
    return SentimentIntensityAnalyzer()


def text_polarity(texts: Sequence[str | None]) -> np.ndarray:
    """VADER compound polarity of each text, in ``[-1, 1]`` (0 for empty/None).

    Examples
    --------
    >>> [round(float(x), 2) for x in text_polarity(["great, loved it", "awful, hated it", ""])]
    [0.84, -0.8, 0.0]
    """
    analyzer = _analyzer()
    out = np.zeros(len(texts), dtype=np.float32)
    for i, text in enumerate(texts):
        if text:
            out[i] = analyzer.polarity_scores(text)["compound"]
    return out


def normalised_ratings(data: Interactions, std_floor: float | None = None) -> np.ndarray | None:
    """Per-event rating as a deviation from the user's own habit.

    ``(rating - user mean) / max(user std, floor)``: a 4 from a user who
    gives everything 5 is a mild dislike.  The floor keeps users whose
    ratings barely vary (or who rated once) from blowing up; by default it is
    half the global rating std, so it follows the rating scale.  Missing
    ratings (NaN) give 0 and do not count toward the user's statistics.

    Parameters
    ----------
    data
        Interactions, possibly with ``rating``.
    std_floor
        Smallest divisor; default ``0.5 * std(all ratings)``.

    Returns
    -------
    np.ndarray | None
        ``(n_events,)`` float32 in event order, or ``None`` when the data has
        no ratings.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"user_id": ["a", "a", "b", "b"], "item_id": ["x", "y", "x", "y"],
    ...                    "rating": [5.0, 3.0, 4.0, 4.0]})
    >>> normalised_ratings(Interactions.from_frame(df)).tolist()
    [1.0, -1.0, 0.0, 0.0]
    """
    if data.rating is None:
        return None
    rating = np.asarray(data.rating, dtype=np.float64)
    valid = ~np.isnan(rating)
    if not valid.any():
        return None
    users = data.user
    n = np.bincount(users, weights=valid, minlength=data.n_users)
    r = np.where(valid, rating, 0.0)
    mean = np.bincount(users, weights=r, minlength=data.n_users) / np.maximum(n, 1)
    dev = np.where(valid, rating - mean[users], 0.0)
    var = np.bincount(users, weights=dev**2, minlength=data.n_users) / np.maximum(n, 1)
    if std_floor is None:
        std_floor = 0.5 * float(np.std(rating[valid]))
    std = np.maximum(np.sqrt(var), max(std_floor, 1e-6))
    return (dev / std[users]).astype(np.float32)
