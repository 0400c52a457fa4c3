"""The web page: ``GET /`` (the page) and ``GET /ui/{name}`` (its script and style sheet), no key needed.

The page (``recfuse/serve/ui/``: plain HTML, CSS and JavaScript, no build
step) works against the public JSON API only, with whatever key the person
types into it; it holds no key and no data of its own.  Files are read from
the package once and served from memory.  The page links its assets by
content hash (``ui/app.js?v=HASH``), so a browser keeps them for a year and
asks again only when the package changes them; the page itself is
revalidated on every load (``ETag``, answered ``304`` when unchanged).
None of these routes is in the OpenAPI document: they are not API.

Every answer carries a Content-Security-Policy that allows only this
origin's own script, style and ``fetch`` targets, so not even markup that
slipped into the page could run script; the page does not rely on it (it
renders every value as text).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, HTTPException, Request, Response

from recfuse.serve.auth import GuardedRoute

router = APIRouter(route_class=GuardedRoute)

ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
"""The page's assets (``recfuse/serve/ui/NAME``) and their media types; nothing else is served."""
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_CACHE = "no-cache"  # revalidate each load: the page names the current assets
ASSET_CACHE = "public, max-age=31536000, immutable"  # an asset under its own content hash never changes


@dataclass(frozen=True)
class File:
    """One file the page routes serve: its bytes, media type and content hash."""

    body: bytes
    media_type: str
    version: str  # the first 16 hex digits of the body's SHA-256

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


@functools.cache
def files() -> dict[str, File]:
    """The page (key ``""``) and its assets, read from the package once.

    Examples
    --------
    >>> sorted(files()), files()["app.js"].media_type
    (['', 'app.css', 'app.js'], 'text/javascript; charset=utf-8')
    """
    folder = resources.files("recfuse.serve") / "ui"
    out = {name: _file(folder.joinpath(name).read_bytes(), kind) for name, kind in ASSETS.items()}
    page = folder.joinpath("index.html").read_text("utf-8")
    for name, f in out.items():
        page = page.replace("{{" + name + "}}", f"ui/{name}?v={f.version}")
    out[""] = _file(page.encode(), "text/html; charset=utf-8")
    return out


def _file(body: bytes, media_type: str) -> File:
    return File(body, media_type, hashlib.sha256(body).hexdigest()[:16])


def _send(request: Request, f: File, cache: str) -> Response:
    """``f`` with its caching and security headers, or a bodiless 304 when the browser has it already."""
    headers = {"ETag": f.etag, "Cache-Control": cache, "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer"}
    if f.etag in (t.strip() for t in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    return Response(f.body, media_type=f.media_type, headers=headers)


@router.get("/", include_in_schema=False)
async def page(request: Request) -> Response:
    """The web page (revalidated at each load)."""
    return _send(request, files()[""], PAGE_CACHE)


@router.get("/ui/{name}", include_in_schema=False)
async def asset(request: Request, name: str) -> Response:
    """One of the page's :data:`ASSETS`: kept a year under its current hash, revalidated otherwise."""
    f = files().get(name) if name else None
    if f is None:
        raise HTTPException(404, f"no page asset {name!r}")
    current = request.query_params.get("v") == f.version
    return _send(request, f, ASSET_CACHE if current else PAGE_CACHE)
