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
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field, field_validator

from imgsearch.errors import BadImageError, ImgsearchError
from imgsearch.searcher.hits import hit
from imgsearch.searcher.limits import check_limit
from imgsearch.searcher.request import DEFAULT_LIMIT, DEFAULT_RERANK_K, INDEXED, SearchRequest, Term, words
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


class ExampleIn(BaseModel):
    """An example picture of a concept: an indexed picture by its path, any other with its bytes."""

    path: str = Field(min_length=1, max_length=4096, description="its path (on the client's disk)")
    data: str | None = Field(None, description="the picture's bytes, base64: for a picture not in the index")


class ConceptRequest(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="the concept's name")
    positives: list[ExampleIn] = Field(max_length=1000)
    negatives: list[ExampleIn] = Field([], max_length=1000)
    random_negatives: int = Field(200, ge=0, le=10_000, description="random library pictures as negatives")


ConceptName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="a concept's name")]


def _example(e: ExampleIn) -> Any:
    """The library's Picture; 422 when the bytes are no base64 or too big to be a picture."""
    import base64
    import binascii

    from imgsearch.library.concepts import Picture
    from imgsearch.searcher.request import MAX_IMAGE_BYTES

    if e.data is None:
        return Picture(e.path)
    try:
        data = base64.b64decode(e.data, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, "an example's data is base64") from None
    if not 0 < len(data) <= MAX_IMAGE_BYTES:
        raise HTTPException(422, f"an example picture is 1 byte to {MAX_IMAGE_BYTES // 1024**2} MB")
    return Picture(e.path, data)


def image_json(info: FileInfo) -> dict[str, Any]:
    """An indexed picture, in the one JSON shape of a hit (no scores)."""
    return hit(info, None).as_json()


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
    def search(
        q: Annotated[list[str], Query(description="Words (repeat to add up; `2:beach` weighs twice)")] = [],  # noqa: B006
        not_: Annotated[list[str], Query(alias="not", description="Words to push away")] = [],  # noqa: B006
        like: Annotated[list[int], Query(description="Indexed pictures' ids to search by")] = [],  # noqa: B006
        folders: Annotated[list[str], Query(alias="in", description="Folder subtrees (any of them)")] = [],  # noqa: B006
        date_from: Annotated[str | None, Query(alias="from", description="YYYY, YYYY-MM or YYYY-MM-DD")] = None,
        date_until: Annotated[str | None, Query(alias="until", description="YYYY, YYYY-MM or YYYY-MM-DD")] = None,
        camera: str | None = None,
        tags: Annotated[list[str], Query(alias="tag", description="Only pictures with these tags (all)")] = [],  # noqa: B006
        concepts: Annotated[list[str], Query(alias="concept", description="Rank by these concepts (all)")] = [],  # noqa: B006
        sort: str | None = None, limit: int = DEFAULT_LIMIT, offset: int = 0,
        rerank_k: int = DEFAULT_RERANK_K,
        min_match: Annotated[float | None, Query(
            description="Only hits at least this likely to match (0-1; 0: all; default: the service's)")] = None,
        mode: Annotated[str, Query(description="hybrid, vector or text")] = "hybrid",
        explain: Annotated[bool, Query(description="Each hit says why it matched")] = False,
    ) -> dict[str, Any]:
        """A search from URL parameters (the page's links); POST takes pictures too."""
        if any(i < 0 or i >= 2**63 for i in like):
            raise NotIndexedError("no such image")
        terms = (*(words(t) for t in q), *(words(t, negative=True) for t in not_),
                 *(Term(INDEXED, image_id=i) for i in like))
        request = SearchRequest(terms, tuple(folders), date_from, date_until, camera, tuple(tags),
                                concepts=tuple(concepts), sort=sort or ("relevance" if terms or concepts else "newest"),
                                limit=limit, offset=offset, rerank_k=rerank_k, mode=mode, min_match=min_match,
                                explain=explain)
        return _answer(request.check())

    @app.post("/api/search")
    def search_by(body: Annotated[dict[str, Any], Body(description="SearchRequest.as_json()")]) -> dict[str, Any]:
        """The whole request as JSON: terms (words, pictures as base64, indexed ids, weights), filters,
        sort and page — what `imgsearch query` sends through a running service."""
        return _answer(SearchRequest.from_json(body))

    def _answer(request: SearchRequest) -> dict[str, Any]:
        """The hits, and the cutoff that was applied to them (the request's, else the service's)."""
        cutoff = engine.settings.min_match if request.min_match is None else request.min_match
        return {"hits": [h.as_json() for h in engine.search(request)], "min_match": cutoff}

    @app.get("/api/images/{file_id}")
    def image(file_id: ImageId) -> dict[str, Any]:
        return image_json(engine.image(file_id))

    @app.get("/api/images/{file_id}/similar")
    def similar(file_id: ImageId, limit: int = Query(20)) -> dict[str, Any]:
        check_limit(limit)
        return {"similar_to": file_id, "hits": [h.as_json() for h in engine.similar(file_id, limit)]}

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

    @app.get("/api/facets")
    def facets() -> dict[str, Any]:
        """Folders (the watched roots and the folders right below them) and cameras with counts."""
        return engine.facets([str(p) for p in worker.roots.paths] if worker else [])

    @app.get("/api/tags")
    def tags_in_use() -> dict[str, Any]:
        """The zero-shot tags pictures carry, each with how many carry it, most first."""
        return engine.tags()

    @app.get("/api/dupes")
    def dupes(
        threshold: Annotated[float | None, Query(
            gt=0, le=1, description="CLIP cosine a candidate pair needs (default: the library's)")] = None,
        folders: Annotated[list[str], Query(alias="in", description="Absolute folder subtrees (any)")] = [],  # noqa: B006
    ) -> dict[str, Any]:
        """Groups of indexed pictures that are the same photo (resized, recompressed, cropped...),
        the one to keep first, each other one with what it lacks; nothing is deleted."""
        if any("\x00" in f or not f.startswith("/") for f in folders):
            raise HTTPException(422, "in: folders must be absolute paths")
        return engine.dupes(threshold=threshold, folders=folders)

    @app.get("/api/status")
    def status() -> dict[str, Any]:
        return engine.status()

    @app.post("/api/index", status_code=202,
              responses={503: {"model": Problem, "description": "A query-only node: it does not index"}})
    def index(request: IndexRequest) -> dict[str, Any]:
        if worker is None:
            raise HTTPException(503, "this service only answers queries (imgsearch watch --query-only): "
                                     "index with the writer of these stores")
        return worker.submit(request.paths, request.captions, request.precompute_rerank).as_json()

    @app.get("/api/jobs/{job_id}")
    def job(job_id: Annotated[int, Path(ge=0, le=2**63 - 1)]) -> dict[str, Any]:
        found = worker.jobs.get(job_id) if worker else None
        if found is None:
            raise HTTPException(404, f"no job {job_id}")
        return {**found.as_json(), "activity": engine.activity.as_json()}

    @app.get("/api/concepts")
    def concepts() -> dict[str, Any]:
        """Every concept taught by example, with its weights."""
        return {"concepts": [c.as_json() for c in engine.concepts()]}

    @app.post("/api/concepts")
    def concept_add(request: ConceptRequest) -> dict[str, Any]:
        """Train (or retrain, keeping its examples) a concept. A path the catalog does not hold is
        never read here: it comes back in `need_data`, nothing trained, until sent with its bytes."""
        return engine.concept_add(request.name, [_example(e) for e in request.positives],
                                  [_example(e) for e in request.negatives],
                                  random_negatives=request.random_negatives, read_files=False).as_json()

    @app.get("/api/concepts/{name}")
    def concept(name: ConceptName) -> dict[str, Any]:
        from imgsearch.concepts import UnknownConceptError

        try:
            return engine.concept(name).as_json()
        except UnknownConceptError as e:
            raise HTTPException(404, str(e)) from None

    @app.delete("/api/concepts/{name}")
    def concept_remove(name: ConceptName) -> dict[str, Any]:
        from imgsearch.concepts import UnknownConceptError

        try:
            engine.concept_remove(name)
        except UnknownConceptError as e:
            raise HTTPException(404, str(e)) from None
        return {"removed": name}

    try:  # the web page (issue 6), when its package is installed
        from imgsearch.webui import install
    except ImportError:
        pass
    else:
        install(app)
    return app
