"""API keys: which routes need which key, checked before the request body is read.

Keys come in ``X-API-Key: KEY`` or ``Authorization: Bearer KEY`` and are
compared in constant time.  :func:`require_api` guards the event,
recommendation, similar-items and user-data routes when ``RECFUSE_API_KEY``
is set (the admin key works there too); :func:`require_admin` guards the
admin routes, which answer 403 when no ``RECFUSE_ADMIN_KEY`` is configured.

Mark a route with ``dependencies=[Depends(require_api)]`` on a router whose
``route_class`` is :class:`GuardedRoute`: the route then checks the key
first, before FastAPI parses the body (an unauthenticated caller learns
nothing about the body's validity and costs no parsing), parses JSON bodies
with the limits of :func:`recfuse.serve.schemas.parse_json`, and documents
its 401/403 answers and its security requirement in the OpenAPI document.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from recfuse.serve.errors import validation_response
from recfuse.serve.schemas import ErrorOut, parse_json

API_KEY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "The same key as `Authorization: Bearer KEY`."},
}
"""The OpenAPI security schemes: the key in ``X-API-Key`` or as a Bearer token (either works)."""
SECURITY: list[dict[str, list[str]]] = [{"ApiKey": []}, {"Bearer": []}]


def _presented_key(request: Request) -> str | None:
    """The key the request carries, from ``X-API-Key`` or a Bearer ``Authorization`` header."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def _matches(given: str, *keys: str | None) -> bool:
    """Whether ``given`` equals one of the configured ``keys`` (constant-time comparison)."""
    return any(k is not None and hmac.compare_digest(given.encode(), k.encode()) for k in keys)


def _config(request: Request) -> Any:
    return request.app.state.service.config


# async: FastAPI runs a plain `def` dependency in its thread pool, a hop that costs more than the check.
async def require_admin(request: Request) -> None:
    """Let the request through only with the admin key (401 without a key, 403 with a wrong one).

    Raises
    ------
    HTTPException
        403 when the service has no admin key, 401 when none is presented, 403 when it is wrong.
    """
    cfg = _config(request)
    if not cfg.admin_key:
        raise HTTPException(403, "admin routes are disabled: start the service with RECFUSE_ADMIN_KEY set")
    given = _presented_key(request)
    if given is None:
        raise HTTPException(401, "admin key required (X-API-Key or Authorization: Bearer)", {"WWW-Authenticate": "Bearer"})
    if not _matches(given, cfg.admin_key):
        raise HTTPException(403, "wrong admin key")


async def require_api(request: Request) -> None:
    """Let the request through when no API key is configured, or with the API or admin key.

    Raises
    ------
    HTTPException
        401 when a key is required and none is presented, 403 when it is wrong.
    """
    cfg = _config(request)
    if not cfg.api_key:
        return
    given = _presented_key(request)
    if given is None:
        raise HTTPException(401, "API key required (X-API-Key or Authorization: Bearer)", {"WWW-Authenticate": "Bearer"})
    if not _matches(given, cfg.api_key, cfg.admin_key):
        raise HTTPException(403, "wrong API key")


GUARDS: dict[Callable[..., Awaitable[None]], str] = {require_api: "api", require_admin: "admin"}
GUARD_KEY = "x-recfuse-key"  # OpenAPI extension naming a route's guard; the app turns it into `security`


def _is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


class GuardedRoute(APIRoute):
    """An :class:`~fastapi.routing.APIRoute` that checks its key before the body is read.

    The guard is the route's ``Depends(require_api)`` or ``Depends(require_admin)``
    (taken out of the dependencies, so it runs once, first).  A JSON body is
    then parsed with :func:`~recfuse.serve.schemas.parse_json` (a 422 naming
    the problem when it fails) and handed to FastAPI already parsed.

    Examples
    --------
    >>> from fastapi import APIRouter, Depends
    >>> router = APIRouter(route_class=GuardedRoute)
    >>> @router.get("/x", dependencies=[Depends(require_api)])
    ... async def x() -> dict: return {}
    >>> router.routes[0].guard is require_api, sorted(router.routes[0].responses)
    (True, [401, 403])
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        deps = list(kwargs.pop("dependencies", None) or [])
        guards = [d.dependency for d in deps if d.dependency in GUARDS]
        self.guard: Callable[[Request], Awaitable[None]] | None = guards[0] if guards else None
        kwargs["dependencies"] = [d for d in deps if d.dependency not in GUARDS]
        if self.guard is not None:
            responses = dict(kwargs.pop("responses", None) or {})
            responses.setdefault(401, {"model": ErrorOut, "description": "No key presented."})
            responses.setdefault(403, {"model": ErrorOut, "description": "Wrong key (or admin routes disabled)."})
            kwargs["responses"] = responses
            kwargs["openapi_extra"] = {**(kwargs.get("openapi_extra") or {}), GUARD_KEY: GUARDS[self.guard]}
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guard = self.guard
        parses_body = self.body_field is not None

        async def guarded(request: Request) -> Response:
            if guard is not None:
                await guard(request)
            if parses_body and _is_json(request):
                body = await request.body()
                if body:
                    try:
                        # FastAPI reads the body through Request.json(), which returns this cached value.
                        request._json = parse_json(body)
                    except ValueError as e:
                        return validation_response([{"loc": ["body"], "msg": str(e), "type": "json_invalid"}])
            return await handler(request)

        return guarded
