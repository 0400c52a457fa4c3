"""Recommendations: for a known user (``GET /v1/users/{user_id}/recommendations``) and for an
anonymous session or free-text query (``POST /v1/recommendations``)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from recfuse.serve.auth import GuardedRoute, require_api
from recfuse.serve.engine import Engine, encode
from recfuse.serve.errors import error_responses
from recfuse.serve.schemas import MAX_K, AnonymousOut, AnonymousRequest, Explain, PathId, UserRecommendationsOut
from recfuse.serve.service import Service, ServiceDep
from recfuse.serve.state import Snapshot

router = APIRouter(route_class=GuardedRoute)

At = Annotated[float | None, Query(ge=0, le=4102444800, description=(
    "Score as if asked at this time (Unix seconds; default: now): e.g. now + 30 days shows how the "
    "answer and the gate change for a user who comes back after a month."))]
"""The ``at`` query parameter: the request time a user's answer is computed for."""


@router.get("/v1/users/{user_id}/recommendations", dependencies=[Depends(require_api)],
            summary="Top-k for a user: stored history plus live events", response_model=None,
            responses={200: {"model": UserRecommendationsOut}, **error_responses(422)})
async def user_recommendations(
    request: Request,
    user_id: Annotated[PathId, PathParam(description="The user's id (any id the events used).")],
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many items.")] = 10,
    exclude_seen: Annotated[bool, Query(description="Leave out items in the user's history.")] = True,
    explain: Annotated[Explain, Query(description=(
        "Attach why: `true` the gate, top history items and dominant dimension; `text` those plus "
        "`explanation.text`, one sentence in words from those facts (templates, or the service's text "
        "generator with a fact check; it never fails the request)."))] = False,
    at: At = None,
) -> JSONResponse:
    """``explain=text`` costs only when asked for: with the templates, string formatting; with a text
    generator, at most ``ServeConfig.llm_timeout`` seconds, off the event loop, the templates after it."""
    # The service straight from the app, not through ServiceDep: on the hottest route the dependency
    # machinery costs more than the lookup it wraps.
    service: Service = request.app.state.service
    engine = service.engine
    words = explain == "text"
    structured = words or explain is True
    hist = service.state.snapshot(user_id, engine.items, engine.token)
    if hist is None or len(hist) == 0:
        body = _popular(service, engine, k, set(), structured, "no history for this user yet: most popular items", words)
        return JSONResponse({"user_id": user_id, "history_length": 0, "model_version": engine.version, **body})
    res = await service.rank(engine, hist, k, exclude_seen, structured, time.time() if at is None else at, user_id)
    texts = await service.phraser.items(engine, res) if words else None
    return JSONResponse({
        "user_id": user_id, "history_length": len(hist), "model_version": engine.version, "cold_start": False,
        "gate": res["gate"], "items": _ranked(engine, res, structured, texts),
    })


@router.post("/v1/recommendations", dependencies=[Depends(require_api)],
             summary="Anonymous / new users: recent items and/or a free-text query", response_model=None,
             responses={200: {"model": AnonymousOut}, **error_responses(409, 413, 422)})
async def anonymous_recommendations(service: ServiceDep, body: AnonymousRequest) -> JSONResponse:
    """``recent_items`` rank through the model (as a session without timestamps); ``query`` is
    encoded by the same language model and matched to item text by cosine.  With both, the two
    score lists are standardised and added."""
    engine = service.engine
    known = [i for i in body.recent_items if i in engine.items]
    unknown = [i for i in body.recent_items if i not in engine.items]
    query = body.query_text
    out: dict[str, Any] = {"model_version": engine.version, "unknown_items": unknown, "cold_start": False}
    idx = engine.items.to_index(known)
    hist = Snapshot(idx, np.zeros(len(idx)), np.full(len(idx), np.nan, np.float32))
    if not query:
        if not known:
            reason = "none of recent_items is in the catalogue: most popular items"
            return JSONResponse({**out, **_popular(service, engine, body.k, set(), body.explain, reason)})
        res = await service.rank(engine, hist, body.k, body.exclude_seen, body.explain, None)
        return JSONResponse({**out, "gate": res["gate"], "items": _ranked(engine, res, body.explain)})
    qvec = (await run_in_threadpool(encode, [query]))[0]
    text = engine.text_scores(qvec)  # (n_items,)
    combined = text.astype(np.float64)
    gate = None
    model_scores = None
    if known:
        res = await service.rank(engine, hist, engine.n_items, body.exclude_seen, False, None)
        model_scores = np.zeros(engine.n_items)
        model_scores[res["items"]] = res["scores"]
        combined = _standardised(combined) + _standardised(model_scores)
        gate = res["gate"]
    if body.exclude_seen and len(idx):
        combined[idx] = -np.inf
    top = np.argsort(-combined, kind="stable")[: body.k]
    top = top[np.isfinite(combined[top])]  # seen items left out: fewer than k when k is most of the catalogue
    items = []
    for rank, i in enumerate(top.tolist(), 1):
        row = {"rank": rank, **engine.describe(i), "score": round(float(combined[i]), 6)}
        if body.explain:
            sim, ms = float(text[i]), None if model_scores is None else float(model_scores[i])
            row["explanation"] = {
                "gate": gate, "dimension": "content", "query_similarity": round(sim, 6),
                "model_score": None if ms is None else round(ms, 6),
                "because": [{**engine.describe(j)} for j in idx[-3:][::-1].tolist()] if known else [],
            }
        items.append(row)
    return JSONResponse({**out, "gate": gate, "items": items})


def _standardised(a: np.ndarray) -> np.ndarray:
    """``a`` shifted to mean 0 and scaled to standard deviation 1, so two score lists can be added."""
    return (a - a.mean()) / (a.std() + 1e-9)  # type: ignore[no-any-return]


def _explanation(engine: Engine, gate: float | None, entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``explanation`` of one ranked item from the engine's explanation entry."""
    if entry is None:
        return None
    return {
        "gate": gate,
        "dimension": entry["dimension"],
        "dimensions": {k: round(v, 6) for k, v in entry["dimensions"].items()},
        "because": [
            {**engine.describe(i), "contribution": round(c, 6)} for i, c in entry["history"]
        ],
    }


def _ranked(engine: Engine, res: dict[str, Any], explain: bool,
            texts: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The ``items`` rows of a ranking answer: rank, display fields, score, explanation on request
    (with its ``text`` from ``texts``, by item index, for ``explain=text``)."""
    exps = res.get("explanations") if explain else None
    out = []
    for rank, (i, s) in enumerate(zip(res["items"], res["scores"], strict=True), 1):
        row = {"rank": rank, **engine.describe(i), "score": round(s, 6)}
        if exps is not None:
            row["explanation"] = exp = _explanation(engine, exps["gate"], exps["items"].get(i))
            if exp is not None and texts is not None and i in texts:
                exp["text"] = texts[i]
        out.append(row)
    return out


def _popular(service: Service, engine: Engine, k: int, exclude: set[str], explain: bool, reason: str,
             words: bool = False) -> dict[str, Any]:
    """The cold-start answer: the live state's most popular items that ``engine`` knows (``words``: each
    explanation with its sentence)."""
    ids = [i for i in service.state.popular(k + len(exclude), exclude) if i in engine.items][:k]
    indices = [engine.items.index(item) for item in ids]
    texts = service.phraser.popular(engine, indices) if words else None
    items = []
    for rank, i in enumerate(indices, 1):
        row = {"rank": rank, **engine.describe(i), "score": None}
        if explain:
            row["explanation"] = {"gate": None, "dimension": "popularity", "because": [], "reason": reason}
            if texts is not None:
                row["explanation"]["text"] = texts[rank - 1]
        items.append(row)
    return {"cold_start": True, "reason": reason, "gate": None, "items": items}
