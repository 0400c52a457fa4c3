"""Operations, no key needed: ``GET /health`` (liveness and what is loaded) and ``GET /metrics``
(Prometheus text).  Neither names a user, a file path or the database URL."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from recfuse.serve.auth import GuardedRoute
from recfuse.serve.schemas import HealthOut
from recfuse.serve.service import ServiceDep

router = APIRouter(route_class=GuardedRoute)


@router.get("/health", summary="Liveness and what is loaded", response_model=None,
            responses={200: {"model": HealthOut}})
async def health(service: ServiceDep) -> JSONResponse:
    return JSONResponse({
        "status": "ok", "model": service.engine.info(public=True),
        "store": {"backend": service.store.dialect, "schema_version": service.schema_version,
                  "events": service.state.n_events},
        "users": service.state.n_users,
    })


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format 0.0.4."}})
async def metrics(service: ServiceDep) -> PlainTextResponse:
    return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")
