"""``POST /v1/events``: one event or a batch, stored durably and idempotently."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from recfuse.serve.auth import GuardedRoute, require_api
from recfuse.serve.errors import error_responses, validation_response
from recfuse.serve.schemas import MAX_EVENTS, EventIn, EventsOut, is_shape_error, parse_id, parse_json
from recfuse.serve.service import Rejected, Service, ServiceDep

router = APIRouter(route_class=GuardedRoute)

# The body is read by hand (one event or a batch), so its schema is declared here; the app adds the
# models to the OpenAPI components.
_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "anyOf": [{"$ref": "#/components/schemas/EventBatch"}, {"$ref": "#/components/schemas/EventIn"}]}}}}}
_EVENTS = TypeAdapter(list[EventIn])
# Work done in one C call (validating, encoding) holds the GIL, and with it the event loop, until it
# returns: big batches go through in chunks of this many events.
_CHUNK = 500


@router.post(
    "/v1/events",
    dependencies=[Depends(require_api)],
    openapi_extra=_BODY,
    summary="Store one event or a batch (durably, idempotently)",
    response_model=None,
    responses={200: {"model": EventsOut, "description": "What became of each event."},
               **error_responses(413, 422)},
)
async def post_events(request: Request, service: ServiceDep) -> Response:
    """One event object, or ``{"events": [...]}`` (at most 10,000).

    Committed before the answer.  Per event: ``stored``, ``duplicate``
    (its ``event_id`` was seen before: acknowledged, not stored twice) or
    ``rejected`` with a reason; the rest of the batch is kept.  In a batch,
    an event whose values break the rules of ``EventIn`` (an id with a
    control character or over 128 characters, a negative timestamp, ...),
    whose timestamp is outside the window, or whose item is unknown is
    rejected on its own; a batch that is not of the ``EventBatch`` shape is a
    422 and stores nothing.  A single event is validated whole (422), then
    checked against the window and the catalogue like a batch's.

    Timestamps: Unix seconds or ISO 8601, from 1970-01-01 to one day ahead of
    the server's clock; milliseconds sent as seconds are rejected as such.
    """
    body = await request.body()
    # Parsing, validation, the commit and encoding the answer all run in a worker thread: a 10,000-event
    # batch takes the event loop for no more than these awaits, so reads keep being answered meanwhile.
    status, content = await run_in_threadpool(_handle, service, body)
    return Response(content, status_code=status, media_type="application/json")


def _handle(service: Service, body: bytes) -> tuple[int, bytes]:
    """Status and JSON bytes of the answer to one ``POST /v1/events`` body (blocking)."""
    try:
        raw = parse_json(body)
    except ValueError as e:
        return _encode(validation_response([{"loc": ["body"], "msg": str(e), "type": "json_invalid"}]))
    if isinstance(raw, dict) and "events" in raw:
        batch = raw["events"]
        if isinstance(batch, list) and len(batch) > MAX_EVENTS:
            return 413, _dumps({"detail": f"batch of {len(batch):,} events; at most {MAX_EVENTS:,} per request"})
        extra = sorted(k for k in raw if k != "events")
        if extra or not isinstance(batch, list):
            loc = ["body", extra[0]] if extra else ["body", "events"]
            msg = "extra inputs are not permitted" if extra else "must be a list of events"
            return _encode(validation_response([{"loc": loc, "msg": msg, "type": "extra_forbidden" if extra else "list_type"}]))
        entries = _batch_entries(batch)
        if isinstance(entries, JSONResponse):
            return _encode(entries)
    else:
        try:
            entries = [EventIn.model_validate(raw)]
        except ValidationError as err:
            return _encode(validation_response([{**x, "loc": ["body", *x["loc"]]} for x in err.errors()]))
    answer = service.ingest(entries)
    results = answer.pop("results")
    head = _dumps(answer)[:-1] + b',"results":['
    parts = [_dumps(results[i : i + _CHUNK])[1:-1] for i in range(0, len(results), _CHUNK)]
    return 200, head + b",".join(p for p in parts if p) + b"]}"


def _batch_entries(batch: list[Any]) -> list[EventIn | Rejected] | JSONResponse:
    """The batch's events validated one by one: an event with a value problem becomes a rejection,
    a shape problem anywhere makes the whole batch a 422."""
    try:  # the common case: every event valid, one call per chunk
        return [e for i in range(0, len(batch), _CHUNK) for e in _EVENTS.validate_python(batch[i : i + _CHUNK])]
    except ValidationError:
        pass
    entries: list[EventIn | Rejected] = []
    shape: list[dict[str, Any]] = []
    for n, raw in enumerate(batch):
        try:
            entries.append(EventIn.model_validate(raw))
        except ValidationError as err:
            errors = err.errors()
            shape += [{**x, "loc": ["body", "events", n, *x["loc"]]} for x in errors if is_shape_error(x["type"])]
            reason = "; ".join(f"{'.'.join(map(str, x['loc'])) or 'event'}: {x['msg']}" for x in errors)
            entries.append((_usable_id(raw), reason))
    return validation_response(shape) if shape else entries


def _usable_id(raw: Any) -> str | None:
    """A rejected event's id when it is one the answer can repeat, else ``None``."""
    try:
        return parse_id(raw.get("event_id")) if isinstance(raw, dict) else None
    except ValueError:
        return None


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _encode(response: JSONResponse) -> tuple[int, bytes]:
    return response.status_code, bytes(response.body)
