"""Prometheus text exposition, by hand (no client library needed for a few series).

An ASGI middleware counts requests by method, route template and status and
observes their latency in a histogram; the service adds its own counters
(events stored, duplicates, rejections, erasures) and gauges.  Labels are
route templates (``/v1/users/{user_id}/events``), never the path itself, so
no series names a user.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, ClassVar

BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters, gauges and one latency histogram per route.

    Examples
    --------
    >>> m = Metrics()
    >>> m.inc("recfuse_events_stored_total", 3)
    >>> m.observe("GET", "/health", 200, 0.002)
    >>> text = m.render()
    >>> "recfuse_events_stored_total 3" in text and 'le="0.0025"} 1' in text
    True
    """

    HELP: ClassVar[dict[str, str]] = {
        "recfuse_events_stored_total": "Events committed to the store by this process (duplicates not counted).",
        "recfuse_events_duplicate_total": "Events acknowledged as already stored (retries).",
        "recfuse_events_rejected_total": "Events rejected (unknown item, ...).",
        "recfuse_items_added_total": "Items added or updated through POST /v1/items.",
        "recfuse_model_reloads_total": "Successful model reloads.",
        "recfuse_users_erased_total": "Users erased through DELETE /v1/users/{id}.",
        "recfuse_model_batches_total": "Forward passes of the recommendation batcher.",
        "recfuse_model_batched_requests_total": "Requests answered by those forward passes.",
        "recfuse_texts_llm_total": "Sentences in words (explain=text, profile) phrased by the text generator.",
        "recfuse_texts_template_total": "Sentences in words from the templates (no generator, or a fallback).",
        "recfuse_text_fallbacks_total": "Template sentences sent although a generator is configured (failed check, error, timeout, busy).",
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, float] = defaultdict(float)
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._hist: dict[str, list[int]] = {}
        self._sum: dict[str, float] = defaultdict(float)
        self.gauges: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, value: float = 1) -> None:
        with self._lock:
            self._counters[name] += value

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, status)] += 1
            h = self._hist.get(route)
            if h is None:
                h = self._hist[route] = [0] * (len(BUCKETS) + 1)
            h[bisect.bisect_left(BUCKETS, seconds)] += 1
            self._sum[route] += seconds

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            out += ["# HELP recfuse_http_requests_total HTTP requests by method, route and status.",
                    "# TYPE recfuse_http_requests_total counter"]
            for (method, route, status), n in sorted(self._requests.items()):
                out.append(f'recfuse_http_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
            out += ["# HELP recfuse_http_request_duration_seconds Request latency (server side).",
                    "# TYPE recfuse_http_request_duration_seconds histogram"]
            for route, h in sorted(self._hist.items()):
                acc = 0
                for le, n in zip([*map(str, BUCKETS), "+Inf"], h, strict=True):
                    acc += n
                    out.append(f'recfuse_http_request_duration_seconds_bucket{{route="{route}",le="{le}"}} {acc}')
                out.append(f'recfuse_http_request_duration_seconds_sum{{route="{route}"}} {self._sum[route]:.6f}')
                out.append(f'recfuse_http_request_duration_seconds_count{{route="{route}"}} {acc}')
            for name in sorted(set(self.HELP) | set(self._counters)):
                out += [f"# HELP {name} {self.HELP.get(name, name)}", f"# TYPE {name} counter"]
                out.append(f"{name} {self._counters.get(name, 0):g}")
        for name, fn in sorted(self.gauges.items()):
            out += [f"# TYPE {name} gauge", f"{name} {fn():g}"]
        return "\n".join(out) + "\n"


class MetricsMiddleware:
    """Pure ASGI middleware: request metrics, and a hard cap on request body size (413)."""

    def __init__(self, app: Any, metrics: Metrics, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                started = True
            await send(message)

        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _too_large(send_wrapper, self.max_body)
            self.metrics.observe(scope["method"], "oversized", 413, time.perf_counter() - start)
            return
        seen = 0

        async def receive_wrapper() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _BodyTooLarge
            return dict(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except _BodyTooLarge:
            if not started:
                await _too_large(send_wrapper, self.max_body)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"  # raw paths would explode the label set
            self.metrics.observe(scope["method"], name, status, time.perf_counter() - start)


class ServiceMetricsMiddleware(MetricsMiddleware):
    """:class:`MetricsMiddleware` that records into the running service's :class:`Metrics`.

    The service is built in the app's lifespan, after the middleware stack;
    this finds its metrics on the first HTTP request (``app.state.service``).
    Add it with ``app.add_middleware(ServiceMetricsMiddleware, max_body=...)``.
    """

    def __init__(self, app: Any, max_body: int) -> None:
        super().__init__(app, Metrics(), max_body)
        self._bound = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not self._bound and scope["type"] == "http":
            service = getattr(scope["app"].state, "service", None)
            if service is not None:
                self.metrics = service.metrics
                self._bound = True
        await super().__call__(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Any, limit: int) -> None:
    detail = f"request body larger than {limit} bytes ({limit / 2**20:.0f} MB); send events in smaller batches"
    body = ('{"detail":"' + detail + '"}').encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
