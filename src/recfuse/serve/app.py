"""The FastAPI application: events in, recommendations out, explanations on request.

Routes (versioned under ``/v1``; OpenAPI docs at ``/docs``), one module each
under :mod:`recfuse.serve.routes`:

=========================================  =====  ===========================================
``POST /v1/events``                        key*   one event or ``{"events": [...]}``; durable before 2xx
``GET  /v1/users/{user_id}/recommendations``  key*   top-k from the stored history + live events;
                                                  ``explain=true`` why (facts), ``explain=text`` also in words
``POST /v1/recommendations``               key*   anonymous: ``recent_items`` and/or a free-text ``query``
``GET  /v1/users/{user_id}/profile``       key*   the user's interests in words, with the facts; no
                                                  history: 200, ``cold_start`` true
``GET  /v1/users/{user_id}/events``        key*   everything stored about a user (right of access)
``DELETE /v1/users/{user_id}``             admin  erase a user: store, live state, vectors (right to erasure)
``GET  /v1/items/{item_id}/similar``       key*   item-to-item by the model's item vectors
``POST /v1/items``                         admin  add or update items by text (no retraining)
``POST /v1/admin/reload``                  admin  swap in a newly trained model directory
``GET  /health``, ``GET /metrics``         open   liveness + what is loaded; Prometheus text
=========================================  =====  ===========================================

``key*``: required when ``RECFUSE_API_KEY`` is set (the admin key works too).
``admin``: requires ``RECFUSE_ADMIN_KEY``; without it configured, admin routes
answer 403 and change nothing.  Keys go in ``X-API-Key: KEY`` or
``Authorization: Bearer KEY`` and are checked before the body is read
(:mod:`recfuse.serve.auth`); the OpenAPI document declares both schemes.

Words (``explain=text``, the profile; :mod:`recfuse.serve.words`): the templates, or the text
generator chosen at start (``recfuse serve --llm``, else ``RECFUSE_LLM_URL`` / ``RECFUSE_LLM``), whose
text is kept only when it passes the fact check; a failure, a timeout or a full set of generation slots
gives the template sentence, never an error.  Nothing is generated for a request that does not ask.

Limits: a request body over 5 MB or an events batch over 10,000 gets 413;
``k`` over 1,000 gets 422; a body that is not JSON, nested deeper than the
parser's recursion limit or holding an integer over 4,300 digits gets 422.
Validation errors are 422 and name the field (``detail[].loc``, summarised
in ``message``; :mod:`recfuse.serve.errors`); nothing answers a 500 with a
plain-text body.  Every route documents its answers (models in
:mod:`recfuse.serve.schemas`) and every status it can send.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi

from recfuse.serve.auth import API_KEY_SCHEMES, GUARD_KEY, SECURITY
from recfuse.serve.errors import add_handlers
from recfuse.serve.metrics import ServiceMetricsMiddleware
from recfuse.serve.routes import ROUTERS
from recfuse.serve.schemas import MAX_BODY, event_body_schemas
from recfuse.serve.service import ServeConfig, Service

__all__ = ["ServeConfig", "app_from_environment", "create_app"]

CONFIG_ENV = "RECFUSE_SERVE_CONFIG"
"""How ``recfuse serve --workers N`` hands its configuration to each worker process (JSON, no keys)."""


def app_from_environment() -> FastAPI:
    """The app of one ``recfuse serve --workers N`` worker: the configuration its parent left in
    :data:`CONFIG_ENV` (the keys come from the environment, as for any ``recfuse serve``)."""
    import os

    return create_app(ServeConfig.from_json(os.environ[CONFIG_ENV]))


def create_app(config: ServeConfig) -> FastAPI:
    """The FastAPI app; the model, store and state load in its lifespan (at server start).

    Examples
    --------
    >>> from pathlib import Path
    >>> app = create_app(ServeConfig(Path("models/ml-100k-fusion")))  # nothing loads until the server starts
    >>> sorted(p for p in app.openapi()["paths"] if p.startswith("/v1"))[:2]
    ['/v1/admin/reload', '/v1/events']
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await run_in_threadpool(Service, config)
        app.state.service = service
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    app = FastAPI(
        title="recfuse",
        version="1",
        description=(__doc__ or "").split("\n\n")[0]
        + " Long/short-term interest fusion recommender with item text; see the README's Serving section.",
        lifespan=lifespan,
    )
    app.add_middleware(ServiceMetricsMiddleware, max_body=MAX_BODY)
    add_handlers(app)
    for router in ROUTERS:
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {}).update(event_body_schemas())
        components["securitySchemes"] = API_KEY_SCHEMES
        for ops in schema["paths"].values():
            for op in ops.values():
                guard = op.pop(GUARD_KEY, None)
                # API routes are open when no API key is configured; admin routes always need the admin key.
                if guard == "admin" or (guard == "api" and config.api_key):
                    op["security"] = SECURITY
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
