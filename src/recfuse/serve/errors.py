"""Error answers shared by the routes: the 422 body, the documented error statuses, the exception handlers.

A validation error is ``{"detail": [{"loc", "msg", "type"}, ...], "message": "..."}``,
whether FastAPI found it or a route did (``POST /v1/events`` validates by
hand); any other refusal is ``{"detail": "..."}``.  An
:class:`~recfuse.serve.engine.EngineError` is a 409; anything unexpected is
a 500 with a JSON body that says nothing about the request (the traceback
goes to the server's log).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from recfuse.serve.engine import EngineError
from recfuse.serve.schemas import ErrorOut, ValidationErrorOut

log = logging.getLogger(__name__)

_DESCRIPTIONS = {
    404: "Not found.",
    409: "The loaded model cannot do this (e.g. add items without a text tower).",
    413: "Body over 5 MB, or a batch over 10,000 events.",
    422: "Invalid request: each failing field named in `detail[].loc`.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route answers (their models and meaning).

    Examples
    --------
    >>> sorted(error_responses(404, 422))
    [404, 422]
    """
    return {c: {"model": ValidationErrorOut if c == 422 else ErrorOut, "description": _DESCRIPTIONS[c]} for c in codes}


def validation_response(errors: list[dict[str, Any]]) -> JSONResponse:
    """A 422 naming each failing field (``detail[].loc``), the first five summarised in ``message``.

    Examples
    --------
    >>> r = validation_response([{"loc": ("body", "k"), "msg": "too big", "type": "less_than_equal"}])
    >>> r.status_code, r.body
    (422, b'{"detail":[{"loc":["body","k"],"msg":"too big","type":"less_than_equal"}],"message":"body.k: too big"}')
    """
    clean = [
        {"loc": [x if isinstance(x, int) else str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", "")),
         "type": str(e.get("type", ""))}
        for e in errors
    ]
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in clean[:5])
    return JSONResponse({"detail": clean, "message": summary}, status_code=422)


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    return validation_response(list(exc.errors()))


async def _on_engine(request: Request, exc: EngineError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.scope.get("route", None) and
              getattr(request.scope["route"], "path", "?"))
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def add_handlers(app: FastAPI) -> None:
    """Answer validation errors with :func:`validation_response`, engine errors with 409, anything
    unexpected with a JSON 500."""
    app.exception_handler(RequestValidationError)(_on_validation)
    app.exception_handler(EngineError)(_on_engine)
    app.exception_handler(Exception)(_on_unexpected)
