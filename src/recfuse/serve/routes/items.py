"""Items: similar items (``GET /v1/items/{item_id}/similar``) and adding items by text
(``POST /v1/items``, admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from recfuse.serve.auth import GuardedRoute, require_admin, require_api
from recfuse.serve.errors import error_responses
from recfuse.serve.schemas import MAX_K, ItemBatch, ItemsOut, PathId, SimilarOut
from recfuse.serve.service import ServiceDep

router = APIRouter(route_class=GuardedRoute)


@router.get("/v1/items/{item_id}/similar", dependencies=[Depends(require_api)],
            summary="Item-to-item by the model's item vectors", response_model=None,
            responses={200: {"model": SimilarOut}, **error_responses(404, 409, 422)})
async def similar(
    service: ServiceDep,
    item_id: Annotated[PathId, PathParam(description="An item of the catalogue.")],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
) -> JSONResponse:
    engine = service.engine
    idx = engine.items.get(item_id, -1)
    if idx < 0:
        raise HTTPException(404, f"unknown item_id {item_id!r}")
    top, sims = await run_in_threadpool(engine.similar, idx, k)
    items = [{"rank": r, **engine.describe(int(i)), "similarity": round(float(s), 6)}
             for r, (i, s) in enumerate(zip(top, sims, strict=True), 1)]
    return JSONResponse({"item": engine.describe(idx), "model_version": engine.version, "items": items})


@router.post("/v1/items", dependencies=[Depends(require_admin)], summary="Add or update items by text (admin)",
             response_model=None, responses={200: {"model": ItemsOut}, **error_responses(409, 413, 422)})
async def post_items(service: ServiceDep, body: ItemBatch) -> JSONResponse:
    """New items get a text-only vector and are recommendable at once; known items get their
    text (and text vector) replaced.  Stored, so a restart or reload keeps them."""
    added, updated = await service.add_items(body.items)
    return JSONResponse({"added": added, "updated": updated, "n_items": service.engine.n_items})
