"""A user: ``GET /v1/users/{user_id}/profile`` (their interests in words), ``GET
/v1/users/{user_id}/events`` (what the store holds about them) and ``DELETE /v1/users/{user_id}``
(admin: erase them)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from recfuse.serve.auth import GuardedRoute, require_admin, require_api
from recfuse.serve.errors import error_responses
from recfuse.serve.routes.recommendations import At
from recfuse.serve.schemas import ErasureOut, PathId, ProfileOut, UserEventsOut
from recfuse.serve.service import ServiceDep

router = APIRouter(route_class=GuardedRoute)

UserId = Annotated[PathId, PathParam(description="The user's id (any id the events used).")]


@router.get("/v1/users/{user_id}/profile", dependencies=[Depends(require_api)],
            summary="A user's interests in words: long-term tastes, what they are into now, the gate",
            response_model=None, responses={200: {"model": ProfileOut}, **error_responses(422)})
async def user_profile(service: ServiceDep, user_id: UserId, at: At = None) -> JSONResponse:
    """Two or three sentences from the model's two interest vectors: the history items and catalogue
    genres nearest to the long-term one and to the short-term one, and which leads at request time (the
    gate, as on the recommendations route), with those facts.  Phrased by the templates, or by the
    service's text generator when its text passes the fact check (``source`` says which; a generator's
    failure or timeout gives the template, never an error).

    A user with no history (never seen, or erased) gets 200 with ``cold_start`` true, empty facts and a
    summary that says there is not enough history yet, as the recommendations route answers them 200
    with the most popular items."""
    engine = service.engine
    hist = service.state.snapshot(user_id, engine.items, engine.token)
    n = 0 if hist is None else len(hist)
    body = await service.phraser.profile(engine, hist, time.time() if at is None else at, user_id)
    return JSONResponse({"user_id": user_id, "history_length": n, "model_version": engine.version,
                         "cold_start": n == 0, **body})


@router.get("/v1/users/{user_id}/events", dependencies=[Depends(require_api)],
            summary="Everything stored about a user (their events)", response_model=None,
            responses={200: {"model": UserEventsOut}, **error_responses(422)})
async def user_events(service: ServiceDep, user_id: UserId) -> JSONResponse:
    """The user's stored events, oldest first: the data a right-of-access request asks for.  A user
    with nothing stored (never seen, or erased) gets an empty list."""
    events = await run_in_threadpool(service.user_events, user_id)
    return JSONResponse({"user_id": user_id, "n_events": len(events), "events": events})


@router.delete("/v1/users/{user_id}", dependencies=[Depends(require_admin)],
               summary="Erase a user (admin): their events, live state and vectors", response_model=None,
               responses={200: {"model": ErasureOut}, **error_responses(422)})
async def erase_user(service: ServiceDep, user_id: UserId) -> JSONResponse:
    """The right to erasure.  The user's events leave the store (one transaction, which also records
    the erasure), the live state and the cached user vectors; from then on they are served as a new
    user, also by a model trained before now; ``recfuse train --from-db`` never sees the erased
    events.  Erasing a user with nothing stored succeeds too (0 events)."""
    n = await run_in_threadpool(service.erase_user, user_id)
    return JSONResponse({"user_id": user_id, "status": "erased", "events_deleted": n})
