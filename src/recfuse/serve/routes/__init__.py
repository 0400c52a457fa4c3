"""The HTTP routes, one :class:`fastapi.APIRouter` per resource.

``events`` (``POST /v1/events``), ``recommendations`` (per user and
anonymous), ``users`` (a user's profile in words, stored data; erasure), ``items`` (similar
items; adding items), ``admin`` (model reload) and ``ops`` (``/health``,
``/metrics``).  Every router uses :class:`recfuse.serve.auth.GuardedRoute`.  :data:`ROUTERS` is the
order :func:`recfuse.serve.app.create_app` includes them in, which is the
order of the OpenAPI document.
"""

from __future__ import annotations

from fastapi import APIRouter

from recfuse.serve.routes import admin, events, items, ops, recommendations, ui, users

ROUTERS: list[APIRouter] = [
    events.router, recommendations.router, users.router, items.router, admin.router, ops.router, ui.router,
]
