"""The FastAPI application: events in, recommendations out, explanations on request.

Routes (versioned under ``/v1``; OpenAPI docs at ``/docs``):

=========================================  =====  ===========================================
``POST /v1/events``                        key*   one event or ``{"events": [...]}``; durable before 2xx
``GET  /v1/users/{user_id}/recommendations``  key*   top-k from the stored history + live events
``POST /v1/recommendations``               key*   anonymous: ``recent_items`` and/or a free-text ``query``
``GET  /v1/items/{item_id}/similar``       key*   item-to-item by the model's item vectors
``POST /v1/items``                         admin  add or update items by text (no retraining)
``POST /v1/admin/reload``                  admin  swap in a newly trained model directory
``GET  /health``, ``GET /metrics``         open   liveness + what is loaded; Prometheus text
=========================================  =====  ===========================================

``key*``: required when ``RECFUSE_API_KEY`` is set (the admin key works too).
``admin``: requires ``RECFUSE_ADMIN_KEY``; without it configured, admin routes
answer 403 and change nothing.  Keys go in ``X-API-Key: KEY`` or
``Authorization: Bearer KEY``.

Limits: a request body over 5 MB or an events batch over 10,000 gets 413;
``k`` over 1,000 gets 422.  Validation errors are 422 and name the field
(``detail[].loc``, summarised in ``message``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import os
import sys
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from recfuse.bundle import Bundle
from recfuse.serve.engine import Batcher, Engine, EngineError, Job, encode, text_encoder
from recfuse.serve.metrics import Metrics, MetricsMiddleware
from recfuse.serve.state import LiveState, Snapshot
from recfuse.serve.store import DEFAULT_URL, Event, EventStore, ItemRecord

MAX_BODY = 5 * 2**20
MAX_EVENTS = 10_000
MAX_K = 1_000
MAX_ITEMS = 1_000


# ------------------------------------------------------------------ request schemas
def _as_str(v: Any) -> Any:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


Id = Annotated[str, BeforeValidator(_as_str), StringConstraints(min_length=1, max_length=128)]


class EventIn(BaseModel):
    """One interaction.  ``timestamp``: Unix seconds or ISO 8601."""

    model_config = ConfigDict(extra="forbid")
    event_id: Id = Field(description="Unique id; a retry with the same id is acknowledged, not stored twice.")
    user_id: Id
    item_id: Id
    timestamp: float | datetime = Field(description="When it happened: Unix seconds or ISO 8601.")
    type: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.:-]+$")] = Field(
        description="Event type, e.g. view, click, purchase, rating."
    )
    rating: float | None = None

    @field_validator("timestamp")
    @classmethod
    def _seconds(cls, v: float | datetime) -> float:
        t = v.timestamp() if isinstance(v, datetime) else float(v)
        if not math.isfinite(t) or t < 0:
            raise ValueError("must be a finite, non-negative number of seconds (or ISO 8601)")
        return t

    @field_validator("rating")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(description=f"At most {MAX_EVENTS:,} events (413 beyond).")


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: Id
    text: Annotated[str, StringConstraints(min_length=1, max_length=20_000)] = Field(
        description="What the item is about; encoded by the service's language model."
    )
    title: Annotated[str, StringConstraints(max_length=1000)] | None = None
    genres: Annotated[str, StringConstraints(max_length=1000)] | None = None


class ItemBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=MAX_ITEMS)]


class AnonymousRequest(BaseModel):
    """An anonymous session and/or a free-text query (either or both)."""

    model_config = ConfigDict(extra="forbid")
    recent_items: Annotated[list[Id], Field(max_length=MAX_EVENTS)] = Field(
        default_factory=list, description="The session's items, oldest first."
    )
    query: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        default=None, description="Free text, matched against item text by the same language model."
    )
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = True
    explain: bool = True

    @model_validator(mode="after")
    def _something(self) -> AnonymousRequest:
        if not self.recent_items and not (self.query and self.query.strip()):
            raise ValueError("give recent_items or query (or both)")
        return self


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_dir: str | None = Field(None, description="Model directory to load; default: the one loaded now (re-read).")


# ------------------------------------------------------------------ the service
@dataclass
class ServeConfig:
    """Everything ``recfuse serve`` can set.

    ``admin_key`` / ``api_key`` default to ``RECFUSE_ADMIN_KEY`` /
    ``RECFUSE_API_KEY`` from the environment.
    """

    model_dir: Path
    db: str = DEFAULT_URL
    table_prefix: str = ""
    admin_key: str | None = None
    api_key: str | None = None
    preload_text: bool = True
    threads: int | None = None  # torch threads; None leaves torch's setting alone
    max_batch: int = 64
    max_wait_ms: float = 0.0
    seed: bool = True
    switch_interval_ms: float = 5.0
    user_cache: int = 100_000  # user vectors kept between requests (0: none)

    def __post_init__(self) -> None:
        self.admin_key = self.admin_key if self.admin_key is not None else (os.environ.get("RECFUSE_ADMIN_KEY") or None)
        self.api_key = self.api_key if self.api_key is not None else (os.environ.get("RECFUSE_API_KEY") or None)


class Service:
    """Store + live state + engine + batcher; what the routes talk to."""

    def __init__(self, config: ServeConfig) -> None:
        import torch

        self.config = config
        self.metrics = Metrics()
        if config.threads is not None:
            torch.set_num_threads(max(1, config.threads))
        # The batcher thread and the HTTP event loop share one interpreter; the GIL switch interval
        # decides how long one may hold it while the other waits.  Python's 5 ms measured as well as
        # 0.1-20 ms here (benchmarks/serve_load.py; differences within run-to-run noise), so it stays.
        sys.setswitchinterval(config.switch_interval_ms / 1000)
        self.store = EventStore(config.db, config.table_prefix)
        self.schema_version = self.store.migrate()
        bundle = Bundle.load(config.model_dir)
        if config.seed:
            self.store.seed(_seed_events(bundle), source=str(config.model_dir))
        self.engine = Engine(bundle, config.model_dir, version=1, cache_size=config.user_cache)
        self._replay_items(self.engine)
        self.state = LiveState()
        for chunk in self.store.iter_events():
            self.state.add((u, i, ts, r) for u, i, ts, r, _ in chunk)
        self.batcher = Batcher(config.max_batch, config.max_wait_ms / 1000)
        self._reload_lock = threading.Lock()
        m = self.metrics
        m.gauges["recfuse_events_in_memory"] = lambda: self.state.n_events
        m.gauges["recfuse_users"] = lambda: self.state.n_users
        m.gauges["recfuse_items"] = lambda: self.engine.n_items
        m.gauges["recfuse_model_version"] = lambda: self.engine.version
        m.gauges["recfuse_model_batches"] = lambda: self.batcher.batches
        m.gauges["recfuse_model_batched_requests"] = lambda: self.batcher.jobs
        m.gauges["recfuse_user_cache_hits"] = lambda: self.engine.cache_hits
        m.gauges["recfuse_user_cache_misses"] = lambda: self.engine.cache_misses
        if config.preload_text and self.engine.text_vectors is not None:
            threading.Thread(target=text_encoder, name="recfuse-text-preload", daemon=True).start()

    def _replay_items(self, engine: Engine) -> None:
        records = [r for r in self.store.load_items() if r.vector is not None]
        if records and engine.can_add:
            engine.add_items(records)

    def close(self) -> None:
        self.batcher.close()
        self.store.close()

    def reload(self, model_dir: str | None) -> Engine:
        path = Path(model_dir) if model_dir else Path(self.engine.path)
        with self._reload_lock:
            engine = Engine(Bundle.load(path), path, version=self.engine.version + 1, cache_size=self.config.user_cache)
            self._replay_items(engine)
            self.engine = engine  # one reference swap: in-flight jobs finish on the engine they started with
        self.metrics.inc("recfuse_model_reloads_total")
        return engine


def _seed_events(bundle: Bundle) -> Any:
    ev = bundle.events
    has_rating = "rating" in ev.columns
    cols = [ev["user_id"].to_list(), ev["item_id"].to_list(), ev["timestamp"].to_list()]
    ratings = ev["rating"].to_list() if has_rating else [None] * ev.height
    for n, (u, i, t, r) in enumerate(zip(*cols, ratings, strict=True)):
        ok = r is not None and not (isinstance(r, float) and math.isnan(r))
        yield Event(f"seed-{n}", str(u), str(i), float(t), "rating" if ok else "view", float(r) if ok else None)


# ------------------------------------------------------------------ auth
def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def _matches(given: str, *keys: str | None) -> bool:
    return any(k is not None and hmac.compare_digest(given.encode(), k.encode()) for k in keys)


# async: FastAPI runs a plain `def` dependency in its thread pool, a hop that cost more than the check.
async def require_admin(request: Request) -> None:
    cfg: ServeConfig = request.app.state.service.config
    if not cfg.admin_key:
        raise HTTPException(403, "admin routes are disabled: start the service with RECFUSE_ADMIN_KEY set")
    given = _presented_key(request)
    if given is None:
        raise HTTPException(401, "admin key required (X-API-Key or Authorization: Bearer)", {"WWW-Authenticate": "Bearer"})
    if not _matches(given, cfg.admin_key):
        raise HTTPException(403, "wrong admin key")


async def require_api(request: Request) -> None:
    cfg: ServeConfig = request.app.state.service.config
    if not cfg.api_key:
        return
    given = _presented_key(request)
    if given is None:
        raise HTTPException(401, "API key required (X-API-Key or Authorization: Bearer)", {"WWW-Authenticate": "Bearer"})
    if not _matches(given, cfg.api_key, cfg.admin_key):
        raise HTTPException(403, "wrong API key")


# ------------------------------------------------------------------ helpers
def _validation_response(errors: list[dict[str, Any]]) -> JSONResponse:
    clean = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors
    ]
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in clean[:5])
    return JSONResponse({"detail": clean, "message": summary}, status_code=422)


def _explanation(engine: Engine, gate: float | None, entry: dict[str, Any] | None) -> dict[str, Any] | None:
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


def _ranked(engine: Engine, res: dict[str, Any], explain: bool) -> list[dict[str, Any]]:
    exps = res.get("explanations") if explain else None
    out = []
    for rank, (i, s) in enumerate(zip(res["items"], res["scores"], strict=True), 1):
        row = {"rank": rank, **engine.describe(i), "score": round(s, 6)}
        if exps is not None:
            row["explanation"] = _explanation(engine, exps["gate"], exps["items"].get(i))
        out.append(row)
    return out


def _popular(service: Service, engine: Engine, k: int, exclude: set[str], explain: bool, reason: str) -> dict[str, Any]:
    ids = [i for i in service.state.popular(k + len(exclude), exclude) if i in engine.items][:k]
    items = []
    for rank, item in enumerate(ids, 1):
        row = {"rank": rank, **engine.describe(engine.items.index(item)), "score": None}
        if explain:
            row["explanation"] = {"gate": None, "dimension": "popularity", "because": [], "reason": reason}
        items.append(row)
    return {"cold_start": True, "reason": reason, "gate": None, "items": items}


# ------------------------------------------------------------------ the app
def create_app(config: ServeConfig) -> FastAPI:
    """The FastAPI app; the model, store and state load in its lifespan (at server start).

    Examples
    --------
    >>> app = create_app(ServeConfig(Path("models/ml-100k-fusion")))  # nothing loads until the server starts
    >>> sorted(r.path for r in app.routes if r.path.startswith("/v1"))[:2]
    ['/v1/admin/reload', '/v1/events']
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
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
    app.add_middleware(_Metrics)

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(list(exc.errors()))

    @app.exception_handler(EngineError)
    async def _on_engine(request: Request, exc: EngineError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    def svc(request: Request) -> Service:
        return request.app.state.service  # type: ignore[no-any-return]

    # -------------------------------------------------------------- events
    @app.post(
        "/v1/events",
        dependencies=[Depends(require_api)],
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
            "anyOf": [{"$ref": "#/components/schemas/EventBatch"}, {"$ref": "#/components/schemas/EventIn"}]}}}}},
        summary="Store one event or a batch (durably, idempotently)",
    )
    async def post_events(request: Request) -> JSONResponse:
        """One event object, or ``{"events": [...]}`` (at most 10,000).

        Committed before the answer.  Per event: ``stored``, ``duplicate``
        (its ``event_id`` was seen before: acknowledged, not stored twice) or
        ``rejected`` with a reason (e.g. unknown item); the rest of the batch
        is kept.
        """
        service = svc(request)
        try:
            raw = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return _validation_response([{"loc": ["body"], "msg": f"invalid JSON: {e}", "type": "json_invalid"}])
        if isinstance(raw, dict) and isinstance(raw.get("events"), list) and len(raw["events"]) > MAX_EVENTS:
            return JSONResponse(
                {"detail": f"batch of {len(raw['events']):,} events; at most {MAX_EVENTS:,} per request"}, status_code=413
            )
        try:  # a batch when it has "events", else one event: errors then name the field plainly
            events = EventBatch.model_validate(raw).events if isinstance(raw, dict) and "events" in raw else [EventIn.model_validate(raw)]
        except ValidationError as err:
            return _validation_response([{**x, "loc": ["body", *x["loc"]]} for x in err.errors()])
        engine = service.engine
        results: list[dict[str, Any]] = []
        accepted: list[Event] = []
        for ev in events:
            if ev.item_id not in engine.items:
                results.append({"event_id": ev.event_id, "status": "rejected",
                                "reason": f"unknown item_id {ev.item_id!r} (add it first with POST /v1/items)"})
            else:
                assert isinstance(ev.timestamp, float)
                accepted.append(Event(ev.event_id, ev.user_id, ev.item_id, ev.timestamp, ev.type, ev.rating))
                results.append({"event_id": ev.event_id, "status": None})
        added = await run_in_threadpool(service.store.add_events, accepted)  # committed when this returns
        stored = set(added.stored)
        fresh = set(stored)
        first: list[tuple[str, str, float, float | None]] = []
        for a in accepted:  # the first copy of each newly stored id (a batch may repeat one)
            if a.event_id in fresh:
                fresh.discard(a.event_id)
                first.append((a.user_id, a.item_id, a.timestamp, a.rating))
        service.state.add(first)
        n_stored = n_dup = 0
        for r in results:
            if r["status"] is None:
                if r["event_id"] in stored:
                    r["status"] = "stored"
                    stored.discard(r["event_id"])  # a second copy in the same batch is a duplicate
                    n_stored += 1
                else:
                    r["status"] = "duplicate"
                    n_dup += 1
        n_rej = len(results) - n_stored - n_dup
        service.metrics.inc("recfuse_events_stored_total", n_stored)
        service.metrics.inc("recfuse_events_duplicate_total", n_dup)
        service.metrics.inc("recfuse_events_rejected_total", n_rej)
        return JSONResponse({"stored": n_stored, "duplicates": n_dup, "rejected": n_rej, "results": results})

    # -------------------------------------------------------------- recommendations
    async def _rank(service: Service, engine: Engine, hist: Snapshot, k: int, exclude: bool, explain: bool,
                    now: float | None, user: str | None = None) -> dict[str, Any]:
        job = Job(hist, k, exclude, explain, now, engine, user)
        hit = engine.try_cached(job)  # a known user with nothing new: answered here, no thread hand-off
        if hit is not None:
            return hit
        return await asyncio.wrap_future(service.batcher.submit(job))

    @app.get("/v1/users/{user_id}/recommendations", dependencies=[Depends(require_api)],
             summary="Top-k for a user: stored history plus live events")
    async def user_recommendations(
        request: Request,
        user_id: Annotated[str, PathParam(min_length=1, max_length=128)],
        k: Annotated[int, Query(ge=1, le=MAX_K, description="How many items.")] = 10,
        exclude_seen: Annotated[bool, Query(description="Leave out items in the user's history.")] = True,
        explain: Annotated[bool, Query(description="Attach why: gate, top history items, dominant dimension.")] = False,
    ) -> JSONResponse:
        service = svc(request)
        engine = service.engine
        hist = service.state.snapshot(user_id, engine.items, engine.token)
        if hist is None or len(hist) == 0:
            body = _popular(service, engine, k, set(), explain, "no history for this user yet: most popular items")
            return JSONResponse({"user_id": user_id, "history_length": 0, "model_version": engine.version, **body})
        res = await _rank(service, engine, hist, k, exclude_seen, explain, time.time(), user_id)
        return JSONResponse({
            "user_id": user_id, "history_length": len(hist), "model_version": engine.version, "cold_start": False,
            "gate": res["gate"], "items": _ranked(engine, res, explain),
        })

    @app.post("/v1/recommendations", dependencies=[Depends(require_api)],
              summary="Anonymous / new users: recent items and/or a free-text query")
    async def anonymous_recommendations(request: Request, body: AnonymousRequest) -> JSONResponse:
        """``recent_items`` rank through the model (as a session without timestamps); ``query`` is
        encoded by the same language model and matched to item text by cosine.  With both, the two
        score lists are standardised and added."""
        service = svc(request)
        engine = service.engine
        known = [i for i in body.recent_items if i in engine.items]
        unknown = [i for i in body.recent_items if i not in engine.items]
        query = (body.query or "").strip()
        out: dict[str, Any] = {"model_version": engine.version, "unknown_items": unknown, "cold_start": False}
        idx = engine.items.to_index(known)
        hist = Snapshot(idx, np.zeros(len(idx)), np.full(len(idx), np.nan, np.float32))
        if not query:
            if not known:
                reason = "none of recent_items is in the catalogue: most popular items"
                return JSONResponse({**out, **_popular(service, engine, body.k, set(), body.explain, reason)})
            res = await _rank(service, engine, hist, body.k, body.exclude_seen, body.explain, None)
            return JSONResponse({**out, "gate": res["gate"], "items": _ranked(engine, res, body.explain)})
        qvec = (await run_in_threadpool(encode, [query]))[0]
        text = engine.text_scores(qvec)  # (n_items,)
        combined = text.astype(np.float64)
        gate = None
        model_scores = None
        if known:
            res = await _rank(service, engine, hist, engine.n_items, body.exclude_seen, False, None)
            model_scores = np.zeros(engine.n_items)
            model_scores[res["items"]] = res["scores"]
            z = lambda a: (a - a.mean()) / (a.std() + 1e-9)
            combined = z(combined) + z(model_scores)
            gate = res["gate"]
        if body.exclude_seen and len(idx):
            combined[idx] = -np.inf
        top = np.argsort(-combined, kind="stable")[: body.k]
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

    # -------------------------------------------------------------- items
    @app.get("/v1/items/{item_id}/similar", dependencies=[Depends(require_api)],
             summary="Item-to-item by the model's item vectors")
    async def similar(
        request: Request,
        item_id: Annotated[str, PathParam(min_length=1, max_length=128)],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    ) -> JSONResponse:
        engine = svc(request).engine
        idx = engine.items.get(item_id, -1)
        if idx < 0:
            raise HTTPException(404, f"unknown item_id {item_id!r}")
        top, sims = await run_in_threadpool(engine.similar, idx, k)
        items = [{"rank": r, **engine.describe(int(i)), "similarity": round(float(s), 6)}
                 for r, (i, s) in enumerate(zip(top, sims, strict=True), 1)]
        return JSONResponse({"item": engine.describe(idx), "model_version": engine.version, "items": items})

    @app.post("/v1/items", dependencies=[Depends(require_admin)], summary="Add or update items by text (admin)")
    async def post_items(request: Request, body: ItemBatch) -> JSONResponse:
        """New items get a text-only vector and are recommendable at once; known items get their
        text (and text vector) replaced.  Stored, so a restart or reload keeps them."""
        service = svc(request)
        engine = service.engine
        if not engine.can_add:
            raise EngineError(f"model {engine.model.name!r} cannot take new items (needs a fusion model trained with text)")
        vectors = await run_in_threadpool(encode, [it.text for it in body.items])
        records = [ItemRecord(it.item_id, it.text, it.title, it.genres, v) for it, v in zip(body.items, vectors, strict=True)]
        await run_in_threadpool(service.store.upsert_items, records)  # durable first
        added, updated = await run_in_threadpool(service.engine.add_items, records)
        service.metrics.inc("recfuse_items_added_total", len(records))
        return JSONResponse({"added": added, "updated": updated, "n_items": service.engine.n_items})

    @app.post("/v1/admin/reload", dependencies=[Depends(require_admin)], summary="Load a model directory (admin)")
    async def reload(request: Request, body: ReloadRequest | None = None) -> JSONResponse:
        """Loads in the background while requests keep being served by the current model, then swaps."""
        service = svc(request)
        path = body.model_dir if body else None
        if path is not None and not (Path(path) / "bundle.json").is_file():
            return _validation_response([{"loc": ["body", "model_dir"], "msg": f"{path}: not a recfuse model directory (no bundle.json)", "type": "value_error"}])
        engine = await run_in_threadpool(service.reload, path)
        return JSONResponse({"status": "reloaded", "model": engine.info()})

    # -------------------------------------------------------------- ops
    @app.get("/health", summary="Liveness and what is loaded")
    async def health(request: Request) -> JSONResponse:
        service = svc(request)
        url = sa.engine.make_url(service.store.url).render_as_string(hide_password=True)
        return JSONResponse({
            "status": "ok", "model": service.engine.info(),
            "store": {"url": url, "schema_version": service.schema_version, "events": service.state.n_events},
            "users": service.state.n_users,
        })

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics(request: Request) -> PlainTextResponse:
        return PlainTextResponse(svc(request).metrics.render(), media_type="text/plain; version=0.0.4")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        defs = TypeAdapter(EventBatch | EventIn).json_schema(ref_template="#/components/schemas/{model}")
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


class _Metrics(MetricsMiddleware):
    """Finds the service's metrics once the lifespan has created it."""

    def __init__(self, app: Any) -> None:
        super().__init__(app, Metrics(), MAX_BODY)
        self._bound = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not self._bound and scope["type"] == "http":
            service = getattr(scope["app"].state, "service", None)
            if service is not None:
                self.metrics = service.metrics
                self._bound = True
        await super().__call__(scope, receive, send)
