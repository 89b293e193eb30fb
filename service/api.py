"""The service's HTTP API (FastAPI). Images are addressed by their catalog id only: no path
from a request ever reaches the disk, so only indexed pictures can be served.

Bound beyond loopback, every request needs the token: `Authorization: Bearer T`, the
`imgsearch_token` cookie, or `?token=T` (which also sets the cookie, so a browser can open
`http://host:port/?token=T` once)."""

from __future__ import annotations

import hmac
import mimetypes
import os
import shutil
import subprocess
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from imgsearch.errors import BadImageError, ImgsearchError
from imgsearch.searcher import Hit
from imgsearch.stores.catalog import FileInfo

from .engine import Engine, NotIndexedError
from .thumbnails import THUMBNAILS, thumbnail
from .worker import Worker

COOKIE = "imgsearch_token"


class IndexRequest(BaseModel):
    paths: list[str] = Field(min_length=1)
    captions: bool = True
    precompute_rerank: bool = False


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def image_json(info: FileInfo, hit: Hit | None = None) -> dict[str, Any]:
    try:
        modified: str | None = datetime.fromtimestamp(os.stat(info.path).st_mtime, timezone.utc).isoformat()
    except OSError:
        modified = None
    return {
        "id": info.id, "path": info.path, "folder": os.path.dirname(info.path), "name": os.path.basename(info.path),
        "score": hit.score if hit else None, "clip_score": hit.clip_score if hit else None,
        "itm_score": hit.itm_score if hit else None, "caption": info.caption, "width": info.width,
        "height": info.height, "size": info.size, "taken_at": _iso(info.taken_at), "modified": modified,
        "thumbnail": f"/api/images/{info.id}/thumbnail", "original": f"/api/images/{info.id}/original",
    }


def hit_json(hit: Hit) -> dict[str, Any]:
    info = FileInfo(hit.file_id, hit.path, None, hit.size, hit.width, hit.height, hit.taken_at, hit.caption)
    return image_json(info, hit)


def create_app(engine: Engine, worker: Worker | None = None, token: str | None = None) -> FastAPI:
    app = FastAPI(title="imgsearch", docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    thumbs = engine.settings.index_dir / THUMBNAILS

    if token:
        @app.middleware("http")
        async def require_token(request: Request, call_next: Any) -> Response:
            given = request.query_params.get("token")
            header = request.headers.get("authorization", "")
            candidates = [given, request.cookies.get(COOKIE), header.removeprefix("Bearer ").strip() or None]
            if not any(c and hmac.compare_digest(c.encode(), token.encode()) for c in candidates):
                return JSONResponse({"detail": "a token is required: this service is bound beyond loopback. "
                                     "Use Authorization: Bearer TOKEN (the token is in service.json)."},
                                    status_code=401)
            response = await call_next(request)
            if given:
                response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response

    @app.exception_handler(NotIndexedError)
    async def not_indexed(_: Request, e: NotIndexedError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=404)

    @app.exception_handler(ImgsearchError)
    async def failed(_: Request, e: ImgsearchError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=400 if e.exit_code == 2 else 500)

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid(), "profile": engine.settings.models}

    @app.get("/api/search")
    def search(
        q: str = Query(min_length=1, max_length=1000), limit: int = Query(20, ge=1, le=1000),
        rerank_k: int = Query(20, ge=0, le=500),
    ) -> dict[str, Any]:
        return {"query": q, "hits": [hit_json(h) for h in engine.search(q, limit, rerank_k)]}

    @app.get("/api/images/{file_id}")
    def image(file_id: int) -> dict[str, Any]:
        return image_json(engine.image(file_id))

    @app.get("/api/images/{file_id}/similar")
    def similar(file_id: int, limit: int = Query(20, ge=1, le=1000)) -> dict[str, Any]:
        return {"similar_to": file_id, "hits": [hit_json(h) for h in engine.similar(file_id, limit)]}

    @app.get("/api/images/{file_id}/thumbnail")
    def thumb(file_id: int) -> FileResponse:
        info = engine.image(file_id)
        try:
            path = thumbnail(thumbs, info)
        except (OSError, BadImageError) as e:
            raise HTTPException(404, f"no thumbnail for image {file_id}: {e}") from None
        return FileResponse(path, media_type="image/webp",
                            headers={"Cache-Control": "private, max-age=604800, immutable"})

    @app.get("/api/images/{file_id}/original")
    def original(file_id: int) -> FileResponse:
        info = engine.image(file_id)
        if not os.path.isfile(info.path):
            raise HTTPException(404, f"image {file_id} is no longer at {info.path}")
        media = mimetypes.guess_type(info.path)[0] or "application/octet-stream"
        return FileResponse(info.path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/images/{file_id}/reveal")
    def reveal(file_id: int) -> dict[str, Any]:
        """Ask the desktop to open the image's folder (works when the service runs in the user's
        desktop session); `opened` false means: show the folder so the user can copy it."""
        folder = os.path.dirname(engine.image(file_id).path)
        opener = shutil.which("xdg-open") or shutil.which("open")
        has_desktop = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or opener == shutil.which("open")
        if opener and has_desktop and os.path.isdir(folder):
            subprocess.Popen([opener, folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return {"opened": True, "folder": folder}
        return {"opened": False, "folder": folder}

    @app.get("/api/status")
    def status() -> dict[str, Any]:
        return engine.status()

    @app.post("/api/index", status_code=202)
    def index(request: IndexRequest) -> dict[str, Any]:
        if worker is None:
            raise HTTPException(503, "this service does not index")
        return worker.submit(request.paths, request.captions, request.precompute_rerank).as_json()

    @app.get("/api/jobs/{job_id}")
    def job(job_id: int) -> dict[str, Any]:
        found = worker.jobs.get(job_id) if worker else None
        if found is None:
            raise HTTPException(404, f"no job {job_id}")
        return {**found.as_json(), "activity": engine.activity.as_json()}

    try:  # the web page (issue 6), when its package is installed
        from imgsearch.webui import install
    except ImportError:
        pass
    else:
        install(app)
    return app
