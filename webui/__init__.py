"""The search page: static HTML, one vanilla JS module and one CSS file, served by the service on
the same address as its API (see README.md here for why there is nothing to build)."""

from __future__ import annotations

import os
from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

STATIC = files("imgsearch.webui") / "static"

# The assets are not fingerprinted, so the browser keeps them but asks again each time (ETag →
# 304 on loopback costs next to nothing), and an upgraded package is picked up at once.
CACHE_CONTROL = "no-cache"
# Nothing but this origin: no CDN, no inline script, no framing; API answers may be fetched.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Cache-Control": CACHE_CONTROL,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a first visit's URL may carry ?token=…
}


class _StaticAssets(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", CACHE_CONTROL)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


def install(app: FastAPI) -> None:
    """Add the page at `/` (the same HTML for any query string; the script reads the query) and
    its assets under `/static/`."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(html, headers=PAGE_HEADERS)

    app.mount("/static", _StaticAssets(directory=os.fspath(STATIC)), name="static")
