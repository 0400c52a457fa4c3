"""Column names used across recfuse, declared once.

Readers map whatever a file calls its columns onto these names; everything
downstream (splits, models, the service) speaks only these.
"""

from __future__ import annotations


class Columns:
    """Canonical column names of an interaction log."""

    USER = "user_id"
    ITEM = "item_id"
    TIME = "timestamp"
    RATING = "rating"
    EVENT = "event_type"

    REQUIRED = (USER, ITEM)
    OPTIONAL = (TIME, RATING, EVENT)
