"""The HTTP API's bodies, requests and answers (pydantic), and the limits they enforce.

Request models validate strictly (a JSON string is not a number, ``"10"`` is
not an integer), so the OpenAPI document describes exactly what is accepted.
Answer models document what the routes send; the routes build their JSON by
hand (the hot path skips pydantic's serialisation), and the contract test
(``tests/test_serve_contract.py``) checks every answer against these models.

Text that reaches the store is checked here: ids are 1-128 characters with
no control character (C0 or DEL), and no text may hold a NUL or a lone UTF-16
surrogate (which no database can store).  Event timestamps are checked for
shape here and against the server's clock in
:meth:`recfuse.serve.service.Service.ingest` (:func:`timestamp_problem`).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

MAX_BODY = 5 * 2**20  # bytes in one request body (413 beyond)
MAX_EVENTS = 10_000  # events in one POST /v1/events batch (413 beyond)
MAX_K = 1_000  # largest k a recommendation or similar-items request may ask for (422 beyond)
MAX_ITEMS = 1_000  # items in one POST /v1/items batch (422 beyond)
ID_MAX = 128  # longest user, item or event id
FUTURE_SLACK = 86_400.0  # seconds an event's timestamp may be ahead of the server's clock
MAX_INT_ID = 2**53 - 1  # integer ids lie in [-MAX_INT_ID, MAX_INT_ID]: exact in every JSON parser
_Y2000 = 946_684_800.0  # 2000-01-01 in Unix seconds

ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # no C0 control character, no DEL
TEXT_PATTERN = r"^[^\x00]*$"  # no NUL
NON_BLANK = r"[^ \t\n\r]"  # holds something other than spaces, tabs and line breaks
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?"
)
_STRICT = ConfigDict(extra="forbid", strict=True)


# ------------------------------------------------------------------ text and ids
def text_problem(v: str) -> str | None:
    """Why ``v`` cannot be stored as text (``None`` when it can): a NUL or a lone surrogate.

    Examples
    --------
    >>> text_problem("fine"), text_problem("nul\\x00"), text_problem("x\\ud800")
    (None, 'holds a NUL character', 'is not valid Unicode (a lone surrogate, e.g. a JSON "\\\\ud800" escape)')
    """
    if "\x00" in v:
        return "holds a NUL character"
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return 'is not valid Unicode (a lone surrogate, e.g. a JSON "\\ud800" escape)'
    return None


def parse_id(v: Any) -> str:
    """An id from JSON: a string of 1-128 printable characters, or an integer (``7`` is ``"7"``).

    A number with no fractional part is an integer, as JSON Schema has it (``7.0`` is ``"7"``).

    Examples
    --------
    >>> parse_id("u1"), parse_id(7), parse_id(7.0)
    ('u1', '7', '7')
    """
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise PydanticCustomError("id_type", "must be a string or an integer")
    if isinstance(v, int):
        if not -MAX_INT_ID <= v <= MAX_INT_ID:
            raise PydanticCustomError("id_value", f"an integer id must lie within +-{MAX_INT_ID} (2^53 - 1)")
        return str(v)
    if not v:
        raise PydanticCustomError("id_value", "must not be empty")
    if len(v) > ID_MAX:
        raise PydanticCustomError("id_value", f"longer than {ID_MAX} characters")
    problem = text_problem(v)
    if problem is not None:
        raise PydanticCustomError("id_value", problem)
    if _CONTROL.search(v):
        raise PydanticCustomError("id_value", "holds a control character")
    return v


def _integral(v: Any) -> Any:
    """A JSON number with no fractional part as an ``int`` (JSON Schema counts ``10.0`` as an integer)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _text(v: Any) -> Any:
    """Text from JSON: no NUL, no lone surrogate (other checks: the field's constraints)."""
    if isinstance(v, str) and (problem := text_problem(v)) is not None:
        raise PydanticCustomError("text_value", problem)
    return v


_ID_SCHEMA = {"anyOf": [
    {"type": "string", "minLength": 1, "maxLength": ID_MAX, "pattern": ID_PATTERN},
    {"type": "integer", "minimum": -MAX_INT_ID, "maximum": MAX_INT_ID},
], "description": f"A string of 1-{ID_MAX} characters without control characters, or an integer (7 and \"7\" are the same id)."}

Id = Annotated[str, BeforeValidator(parse_id), WithJsonSchema(_ID_SCHEMA)]
"""A user, item or event id in a request body."""


def _text_schema(min_length: int, max_length: int) -> WithJsonSchema:
    """The JSON schema of a text field: its length limits and no NUL."""
    return WithJsonSchema({"type": "string", "minLength": min_length, "maxLength": max_length, "pattern": TEXT_PATTERN})


# Text fields: no NUL, no lone surrogate (checked by _text), and a length limit.
ItemText = Annotated[str, BeforeValidator(_text), StringConstraints(min_length=1, max_length=20_000), _text_schema(1, 20_000)]
ShortText = Annotated[str, BeforeValidator(_text), StringConstraints(max_length=1000), _text_schema(0, 1000)]
QueryText = Annotated[str, BeforeValidator(_text), StringConstraints(max_length=2000), _text_schema(0, 2000)]
PathText = Annotated[str, BeforeValidator(_text), StringConstraints(max_length=4096), _text_schema(0, 4096)]

PathId = Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN)]
"""A user or item id in a URL path (the path is text, so integers need no special case)."""

_BOOL: TypeAdapter[bool] = TypeAdapter(bool)


def parse_explain(v: Any) -> bool | Literal["text"]:
    """The ``explain`` query parameter: ``"text"``, or a boolean as a query string reads one (``true``,
    ``false``, ``1``, ``0``, ``yes``, ``off``, ...).

    Examples
    --------
    >>> parse_explain("text"), parse_explain("1"), parse_explain("false")
    ('text', True, False)
    """
    if v == "text":
        return "text"
    try:
        return _BOOL.validate_python(v)
    except ValidationError:
        raise PydanticCustomError("explain_value", "must be false, true or text") from None


Explain = Annotated[bool | Literal["text"], PlainValidator(parse_explain),
                    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["text"]}]})]
"""``explain``: ``false`` / ``true`` (the booleans as before) or ``text``."""


# ------------------------------------------------------------------ timestamps
def parse_timestamp(v: Any) -> float:
    """Unix seconds from a JSON number (not negative) or an RFC 3339 / ISO 8601 date-time.

    A date-time without an offset is read as UTC.  Whether it is inside the
    accepted window is :func:`timestamp_problem`'s question.

    Examples
    --------
    >>> parse_timestamp(1.5), parse_timestamp("1970-01-01T00:01:00Z"), parse_timestamp("1970-01-01T01:00:00+01:00")
    (1.5, 60.0, 0.0)
    """
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise PydanticCustomError("timestamp_type", "must be a number (Unix seconds) or an ISO 8601 date-time string")
    if isinstance(v, str):
        return _date_time(v)
    if v < 0:
        raise PydanticCustomError("timestamp_value", "must not be negative (Unix seconds, 1970 or later)")
    try:
        return float(v)
    except OverflowError:  # a JSON integer beyond the float range: far outside the window
        return math.inf


def _date_time(v: str) -> float:
    m = _RFC3339.fullmatch(v)
    if m is None:
        raise PydanticCustomError("timestamp_value", "not an ISO 8601 date-time (e.g. 2026-05-01T12:00:00Z)")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, off = m.group(7), m.group(8)
    if off is None or off in "Zz":
        tz = UTC
    else:
        sign = 1 if off[0] == "+" else -1
        hh, mm = int(off[1:3]), int(off[4:6])
        if hh > 23 or mm > 59:
            raise PydanticCustomError("timestamp_value", f"offset {off} is out of range")
        tz = timezone(sign * timedelta(hours=hh, minutes=mm))
    if year == 0:  # valid RFC 3339, outside Python's datetime: long before the window in any case
        return -math.inf
    try:
        # A leap second (:60) is the next second's start.
        dt = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=tz)
    except ValueError as e:
        raise PydanticCustomError("timestamp_value", f"not a valid date-time ({e})") from None
    return dt.timestamp() + (second - 59 if second > 59 else 0) + (float(frac) if frac else 0.0)


def timestamp_problem(t: float, now: float) -> str | None:
    """Why an event at Unix time ``t`` is refused at server time ``now`` (``None``: accepted).

    The window is from 1970-01-01 to one day ahead of the server's clock
    (clocks drift; a later timestamp would make its user look active for
    ever).  A timestamp that fits the window once divided by 1,000, 10^6 or
    10^9 (and then falls in this century) is named as milliseconds,
    microseconds or nanoseconds.

    Examples
    --------
    >>> timestamp_problem(1.7e9, 1.8e9) is None
    True
    >>> timestamp_problem(1.7e12, 1.8e9)
    'timestamp 1.7e+12 is more than a day ahead of the server clock (1.8e+09): it looks like milliseconds; send Unix seconds'
    """
    if 0 <= t <= now + FUTURE_SLACK:
        return None
    if t < 0:
        return f"timestamp {t:.6g} is before 1970-01-01 (Unix seconds must not be negative)"
    msg = f"timestamp {t:.6g} is more than a day ahead of the server clock ({now:.6g})"
    for factor, unit in ((1e3, "milliseconds"), (1e6, "microseconds"), (1e9, "nanoseconds")):
        if _Y2000 <= t / factor <= now + FUTURE_SLACK:  # a clock of this century, in a finer unit
            return f"{msg}: it looks like {unit}; send Unix seconds"
    return msg


_TIMESTAMP_SCHEMA = {
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "format": "date-time"}],
    "description": (
        "When it happened: Unix seconds, or an ISO 8601 date-time (UTC when it has no offset).  Accepted from "
        "1970-01-01 to one day ahead of the server's clock; an event outside that window is rejected with the "
        "reason (milliseconds sent as seconds are named as such)."
    ),
}
Timestamp = Annotated[float, BeforeValidator(parse_timestamp), WithJsonSchema(_TIMESTAMP_SCHEMA)]


# ------------------------------------------------------------------ requests
class EventIn(BaseModel):
    """One interaction."""

    model_config = _STRICT
    event_id: Id = Field(description="Unique id; a retry with the same id is acknowledged, not stored twice.")
    user_id: Id
    item_id: Id
    timestamp: Timestamp
    type: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.:-]+$")] = Field(
        description="Event type, e.g. view, click, purchase, rating."
    )
    rating: float | None = None

    @field_validator("rating")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise PydanticCustomError("rating_value", "must be a finite number")
        return v


# The shape of one event inside a batch: JSON types only.  An event of this shape whose values fail
# EventIn (an id with a control character, a negative timestamp, ...) is rejected on its own, with the
# reason, and the rest of the batch is stored; a batch with an event of another shape is a 422.
_BATCH_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "BatchEvent",
    "description": (
        "One event of a batch: the fields of EventIn with their JSON types.  An event whose values break "
        "EventIn's rules (id characters or length, timestamp window, unknown item, ...) is answered "
        "`rejected` with the reason; the other events are stored."
    ),
    "required": ["event_id", "user_id", "item_id", "timestamp", "type"],
    "additionalProperties": False,
    "properties": {
        "event_id": {"type": ["string", "integer"]},
        "user_id": {"type": ["string", "integer"]},
        "item_id": {"type": ["string", "integer"]},
        "timestamp": {"type": ["number", "string"]},
        "type": {"type": "string"},
        "rating": {"type": ["number", "null"]},
    },
}
SHAPE_ERRORS = frozenset({"missing", "extra_forbidden", "model_type", "model_attributes_type", "dict_type"})


def is_shape_error(error_type: str) -> bool:
    """Whether a validation error is about a body's shape (a missing or unknown field, a wrong JSON
    type) rather than a value: within a batch, the first is a 422, the second rejects one event.

    Examples
    --------
    >>> is_shape_error("missing"), is_shape_error("id_type"), is_shape_error("id_value")
    (True, True, False)
    """
    return error_type in SHAPE_ERRORS or error_type.endswith("_type")


class ItemIn(BaseModel):
    model_config = _STRICT
    item_id: Id
    text: ItemText = Field(description="What the item is about; encoded by the service's language model.")
    title: ShortText | None = None
    genres: ShortText | None = None


class ItemBatch(BaseModel):
    """Items to add or update (a repeated ``item_id``: the last copy wins)."""

    model_config = _STRICT
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=MAX_ITEMS)]


class AnonymousRequest(BaseModel):
    """An anonymous session and/or a free-text query (either or both)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"anyOf": [
        {"required": ["recent_items"], "properties": {"recent_items": {"minItems": 1}}},
        {"required": ["query"], "properties": {"query": {"type": "string", "pattern": NON_BLANK}}},
    ]})
    recent_items: Annotated[list[Id], Field(max_length=MAX_EVENTS)] = Field(
        default_factory=list, description="The session's items, oldest first."
    )
    query: QueryText | None = Field(
        default=None, description="Free text, matched against item text by the same language model."
    )
    k: Annotated[int, BeforeValidator(_integral)] = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = True
    explain: bool = Field(False, description="Attach why each item is there (off by default, as on the per-user route).")

    @model_validator(mode="after")
    def _something(self) -> AnonymousRequest:
        if not self.recent_items and not self.query_text:
            raise PydanticCustomError("value_error", "give recent_items or query (or both)")
        return self

    @property
    def query_text(self) -> str:
        """The query without surrounding spaces, tabs and line breaks ("" when there is none)."""
        return (self.query or "").strip(" \t\n\r")


class ReloadRequest(BaseModel):
    model_config = _STRICT
    model_dir: PathText | None = Field(
        None, description="Model directory to load; default: the one loaded now (re-read)."
    )


# ------------------------------------------------------------------ answers
class ErrorOut(BaseModel):
    """A refusal: what went wrong, in words."""

    detail: str


class FieldError(BaseModel):
    loc: list[str | int] = Field(description='Where: e.g. ["body", "events", 3, "timestamp"].')
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """A 422: each failing field, the first five summarised in ``message``."""

    detail: list[FieldError]
    message: str


class EventResult(BaseModel):
    event_id: str | None = Field(description="The event's id (null when a rejected event had none usable).")
    status: Literal["stored", "duplicate", "rejected"]
    reason: str | None = Field(None, description="Why a rejected event was refused.")


class EventsOut(BaseModel):
    stored: int
    duplicates: int
    rejected: int
    results: list[EventResult] = Field(description="One per event, in the order sent.")


class ItemRef(BaseModel):
    item_id: str
    title: str
    genres: str | None


class Because(ItemRef):
    contribution: float | None = Field(None, description="How much this history item drove the score.")


Source = Literal["template", "llm"]
Fallback = Literal["fact_check", "error", "timeout", "busy"]
_SOURCE = "llm: the generator's phrasing, which passed the fact check; template: the deterministic sentence."
_GENERATOR = 'The text generator the service was started with ("template" when none).'
_FALLBACK = (
    "Why the template was used although a generator is configured: its text failed the fact check "
    "(fact_check), it failed (error), the request's deadline passed (timeout), or every generation slot was "
    "taken (busy); null when the generator's text was used or no generator is configured."
)


class Words(BaseModel):
    """One explanation in words, grounded in the explanation's facts, and who phrased it."""

    text: str
    source: Source = Field(description=_SOURCE)
    generator: str = Field(description=_GENERATOR)
    fallback: Fallback | None = Field(description=_FALLBACK)


class Explanation(BaseModel):
    gate: float | None = Field(description="Short-term share of the user vector (null: no model gate).")
    dimension: str = Field(description="What drove it most: content, rating, recency, popularity, ...")
    dimensions: dict[str, float] | None = None
    because: list[Because]
    reason: str | None = None
    query_similarity: float | None = None
    model_score: float | None = None
    text: Words | None = Field(None, description="With explain=text only: the explanation in one sentence.")


class RankedItem(ItemRef):
    rank: int
    score: float | None = Field(description="The model's score (null for the popularity fallback).")
    explanation: Explanation | None = None


class UserRecommendationsOut(BaseModel):
    user_id: str
    history_length: int
    model_version: int
    cold_start: bool
    reason: str | None = None
    gate: float | None
    items: list[RankedItem]


class Interest(BaseModel):
    titles: list[str] = Field(description="History items nearest to this interest vector, nearest first.")
    genres: list[str] = Field(description="Genres of the catalogue items nearest to it, most weight first.")


class ProfileFactsOut(BaseModel):
    """What the summary was phrased from: the model's two interest vectors and the gate."""

    gate: float | None = Field(description="Short-term share at request time (null: no model gate, or no history).")
    lean: Literal["long-term", "short-term"] | None = Field(description="Which interest leads (from the gate).")
    long_term: Interest
    short_term: Interest


class ProfileOut(BaseModel):
    """A user's interests in words.  A user with no history gets 200, ``cold_start`` true and a
    summary that says so."""

    user_id: str
    history_length: int
    model_version: int
    cold_start: bool
    summary: str = Field(description="Two or three sentences: long-term tastes, what the user is into now, the gate.")
    source: Source = Field(description=_SOURCE)
    generator: str = Field(description=_GENERATOR)
    fallback: Fallback | None = Field(description=_FALLBACK)
    facts: ProfileFactsOut


class AnonymousOut(BaseModel):
    model_version: int
    unknown_items: list[str] = Field(description="recent_items the catalogue does not hold (ignored).")
    cold_start: bool
    reason: str | None = None
    gate: float | None
    items: list[RankedItem]


class SimilarItem(ItemRef):
    rank: int
    similarity: float


class SimilarOut(BaseModel):
    item: ItemRef
    model_version: int
    items: list[SimilarItem]


class ItemsOut(BaseModel):
    added: list[str]
    updated: list[str]
    n_items: int


class ModelInfo(BaseModel):
    version: int
    model: str
    dataset: str | None
    n_items: int
    created: str | None
    dir: str | None = Field(None, description="Where the model was loaded from (admin answers only).")


class ReloadOut(BaseModel):
    status: Literal["reloaded"]
    model: ModelInfo


class StoreInfo(BaseModel):
    backend: Literal["sqlite", "postgresql"]
    schema_version: int
    events: int = Field(description="Events in the live state.")


class HealthOut(BaseModel):
    status: Literal["ok"]
    model: ModelInfo
    store: StoreInfo
    users: int


class StoredEvent(BaseModel):
    event_id: str
    item_id: str
    timestamp: float
    type: str
    rating: float | None
    received_at: float = Field(description="When the service stored it (Unix seconds).")


class UserEventsOut(BaseModel):
    user_id: str
    n_events: int
    events: list[StoredEvent] = Field(description="Everything stored about this user, oldest first.")


class ErasureOut(BaseModel):
    user_id: str
    status: Literal["erased"]
    events_deleted: int


def event_body_schemas() -> dict[str, Any]:
    """JSON schemas of the ``POST /v1/events`` bodies for the OpenAPI components.

    ``POST /v1/events`` reads its body by hand (one event or a batch), so
    FastAPI does not list these models itself; the app adds them.

    Examples
    --------
    >>> sorted(event_body_schemas())
    ['BatchEvent', 'EventBatch', 'EventIn']
    """
    defs = dict(TypeAdapter(EventIn).json_schema(ref_template="#/components/schemas/{model}").get("$defs", {}))
    defs["EventIn"] = TypeAdapter(EventIn).json_schema(ref_template="#/components/schemas/{model}")
    defs["EventBatch"] = {
        "type": "object", "title": "EventBatch", "description": "A batch, stored in one transaction.",
        "required": ["events"], "additionalProperties": False,
        "properties": {"events": {
            "type": "array", "maxItems": MAX_EVENTS, "items": {"$ref": "#/components/schemas/BatchEvent"},
            "description": f"At most {MAX_EVENTS:,} events (413 beyond).",
        }},
    }
    defs["BatchEvent"] = _BATCH_EVENT_SCHEMA
    return defs


def parse_json(body: bytes) -> Any:
    """A request body as JSON, with the limits that keep a hostile body from costing more than its size.

    Raises :class:`ValueError` naming the problem for: invalid UTF-8 or JSON,
    ``NaN``/``Infinity`` (not JSON), nesting deeper than the parser's recursion
    limit, and integers longer than Python's 4,300-digit limit.

    Examples
    --------
    >>> parse_json(b'{"a": [1, 2]}')
    {'a': [1, 2]}
    >>> parse_json(b"[" * 100_000)
    Traceback (most recent call last):
    ...
    ValueError: JSON nested too deeply
    """
    try:
        return json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"body is not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    except ValueError as e:  # e.g. an integer beyond the digit limit
        raise ValueError(f"invalid JSON: {e}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
