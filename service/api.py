"""The service's HTTP API (FastAPI). Images are addressed by their catalog id only: no path
from a request ever reaches the disk, so only indexed pictures can be served. `guard` decides
which requests are answered at all (Host, other sites, the token).

Errors answer `{"detail": "one line that says what to do"}`, never a validation dump that
echoes what was sent."""

from __future__ import annotations

import mimetypes
import os
import shutil
import subprocess
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field, field_validator

from imgsearch.errors import BadImageError, ImgsearchError
from imgsearch.searcher import Hit
from imgsearch.searcher.limits import check_limit, check_query
from imgsearch.stores.catalog import FileInfo

from . import guard
from .engine import Engine, NotIndexedError
from .thumbnails import THUMBNAILS, thumbnail
from .worker import Worker

# Catalog ids are SQLite integers: anything past 2^63 - 1 is no image (404), not a crash.
ImageId = Annotated[int, Path(ge=0, le=2**63 - 1, description="the image's catalog id")]


class IndexRequest(BaseModel):
    paths: list[str] = Field(min_length=1)
    captions: bool = True
    precompute_rerank: bool = False

    @field_validator("paths")
    @classmethod
    def absolute_paths(cls, paths: list[str]) -> list[str]:
        # No file name holds a NUL byte, and `~\x00` made os.path.expanduser (Worker.submit) raise
        # ValueError: a 500 for bad input (issue 13 fuzzing). Refused here: 422.
        if any("\x00" in p for p in paths):
            raise ValueError("a path cannot contain a NUL byte")
        # A relative path would be read against the service's own working folder (/ under systemd)
        if not all(p.startswith(("/", "~")) for p in paths):
            raise ValueError("paths must be absolute (the CLI sends them so)")
        return paths


class Problem(BaseModel):
    """Every error the service answers: one line that says what to do."""

    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "The token is required (service.json) and was not sent"},
    403: {"model": Problem, "description": "From another site, or another user of this machine"},
    404: {"model": Problem, "description": "No such image or job"},
    421: {"model": Problem, "description": "Addressed by a name this service does not answer to"},
    422: {"model": Problem, "description": "A parameter outside its type or the query limits"},
}
IMAGE_BYTES = {200: {"description": "The picture's bytes", "content": {"image/*": {}}}}


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


def create_app(engine: Engine, access: guard.Access, worker: Worker | None = None) -> FastAPI:
    app = FastAPI(title="imgsearch", docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None,
                  responses=ERRORS)
    thumbs = engine.settings.index_dir / THUMBNAILS
    guard.install(app, access)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        problems = []
        for error in e.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body"))
            problems.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(problems)[:500]}, status_code=422)

    @app.exception_handler(NotIndexedError)
    async def not_indexed(_: Request, e: NotIndexedError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=404)

    @app.exception_handler(ImgsearchError)
    async def failed(_: Request, e: ImgsearchError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=422 if e.exit_code == 2 else 500)

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid(), "profile": engine.settings.models}

    @app.get("/api/search")
    def search(q: str = Query(), limit: int = Query(20), rerank_k: int = Query(20)) -> dict[str, Any]:
        check_query(q, limit, rerank_k)  # the CLI's limits, the CLI's message
        return {"query": q, "hits": [hit_json(h) for h in engine.search(q, limit, rerank_k)]}

    @app.get("/api/images/{file_id}")
    def image(file_id: ImageId) -> dict[str, Any]:
        return image_json(engine.image(file_id))

    @app.get("/api/images/{file_id}/similar")
    def similar(file_id: ImageId, limit: int = Query(20)) -> dict[str, Any]:
        check_limit(limit)
        return {"similar_to": file_id, "hits": [hit_json(h) for h in engine.similar(file_id, limit)]}

    @app.get("/api/images/{file_id}/thumbnail", response_class=FileResponse, responses=IMAGE_BYTES)
    def thumb(file_id: ImageId) -> FileResponse:
        info = engine.image(file_id)
        try:
            path = thumbnail(thumbs, info)
        except (OSError, BadImageError) as e:
            raise HTTPException(404, f"no thumbnail for image {file_id}: {e}") from None
        return FileResponse(path, media_type="image/webp",
                            headers={"Cache-Control": "private, max-age=604800, immutable"})

    @app.get("/api/images/{file_id}/original", response_class=FileResponse, responses=IMAGE_BYTES)
    def original(file_id: ImageId) -> FileResponse:
        info = engine.image(file_id)
        if not os.path.isfile(info.path):
            raise HTTPException(404, f"image {file_id} is no longer at {info.path}")
        media = mimetypes.guess_type(info.path)[0] or "application/octet-stream"
        return FileResponse(info.path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/images/{file_id}/reveal")
    def reveal(file_id: ImageId) -> dict[str, Any]:
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

    @app.post("/api/index", status_code=202,
              responses={503: {"model": Problem, "description": "This service does not index"}})
    def index(request: IndexRequest) -> dict[str, Any]:
        if worker is None:
            raise HTTPException(503, "this service does not index")
        return worker.submit(request.paths, request.captions, request.precompute_rerank).as_json()

    @app.get("/api/jobs/{job_id}")
    def job(job_id: Annotated[int, Path(ge=0, le=2**63 - 1)]) -> dict[str, Any]:
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
