"""Admin: ``POST /v1/admin/reload`` swaps in a newly trained model directory."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from recfuse.serve.auth import GuardedRoute, require_admin
from recfuse.serve.engine import ModelLoadError
from recfuse.serve.errors import error_responses, validation_response
from recfuse.serve.schemas import ReloadOut, ReloadRequest
from recfuse.serve.service import ServiceDep

router = APIRouter(route_class=GuardedRoute)


@router.post("/v1/admin/reload", dependencies=[Depends(require_admin)], summary="Load a model directory (admin)",
             response_model=None, responses={200: {"model": ReloadOut}, **error_responses(413, 422)})
async def reload(service: ServiceDep, body: ReloadRequest | None = None) -> JSONResponse:
    """Loads in the background while requests keep being served by the current model, then swaps.

    A directory that cannot be served (not a model directory, a missing, truncated or garbled file, a
    model name this recfuse does not know) is a 422 naming the problem; the current model goes on
    serving.
    """
    path = body.model_dir if body else None
    try:
        engine = await run_in_threadpool(service.reload, path)
    except ModelLoadError as e:
        return validation_response([{"loc": ["body", "model_dir"], "msg": str(e), "type": "model_dir"}])
    return JSONResponse({"status": "reloaded", "model": engine.info()})
