"""The HTTP API over real stores and the bundled tiny models (FastAPI's TestClient)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from imgsearch.service.api import create_app
from imgsearch.service.engine import Engine
from imgsearch.service.guard import Access, is_loopback

SECRET = "s3cret"
BASE = "http://127.0.0.1:7861"  # the service's own address: the guard refuses other Host names


@pytest.fixture(scope="module")
def client(engine) -> TestClient:
    return TestClient(create_app(engine[0], Access.for_bind("127.0.0.1", 7861, SECRET)), base_url=BASE)


def _ids(engine: Engine) -> dict[str, int]:
    return {info.path: i for i, info in engine.stores.catalog.get(engine.stores.catalog.vector_ids()).items()}


def test_search_returns_ranked_hits_with_scores_and_links(client: TestClient, engine) -> None:
    r = client.get("/api/search", params={"q": "a red circle", "limit": 5, "rerank_k": 8, "min_match": 0})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert len(hits) == 5
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    first = hits[0]
    assert first["itm_score"] is not None and first["clip_score"] is not None
    assert set(first) >= {"id", "path", "folder", "name", "date", "date_source", "camera", "taken_at", "size"}
    assert first["folder"] == str(engine[1]) and first["name"] == os.path.basename(first["path"])
    no_rerank = client.get("/api/search", params={"q": "a red circle", "limit": 5, "rerank_k": 0}).json()["hits"]
    assert all(h["itm_score"] is None for h in no_rerank)


def test_search_validates_its_parameters(client: TestClient) -> None:
    assert client.get("/api/search", params={"q": ""}).status_code == 422
    assert client.get("/api/search", params={"q": "x", "limit": 0}).status_code == 422


def test_image_thumbnail_and_original_of_an_indexed_image(client: TestClient, engine) -> None:
    path, file_id = next(iter(_ids(engine[0]).items()))
    info = client.get(f"/api/images/{file_id}").json()
    assert info["path"] == path and info["size"] == os.path.getsize(path)
    thumb = client.get(f"/api/images/{file_id}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    assert "max-age" in thumb.headers["cache-control"]
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 320
    original = client.get(f"/api/images/{file_id}/original")
    assert original.status_code == 200 and original.content == Path(path).read_bytes()


def test_more_like_this_puts_the_image_itself_first(client: TestClient, engine) -> None:
    file_id = next(iter(_ids(engine[0]).values()))
    hits = client.get(f"/api/images/{file_id}/similar", params={"limit": 4}).json()["hits"]
    assert hits[0]["id"] == file_id and hits[0]["clip_score"] == pytest.approx(1.0, abs=1e-3)


def test_only_indexed_images_are_served(client: TestClient, engine) -> None:
    catalog = engine[0].stores.catalog
    rows = catalog.files_under([str(engine[1])])
    broken = rows[str(engine[1] / "broken.jpg")]
    assert client.get(f"/api/images/{broken.id}/original").status_code == 404
    assert client.get("/api/images/999999/original").status_code == 404
    for trick in ("..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "%2Fetc%2Fpasswd", "-1", "1.5"):
        r = client.get(f"/api/images/{trick}/original")
        assert r.status_code in (404, 422) and b"root:" not in r.content


def test_status_reports_counts_and_activity(client: TestClient) -> None:
    s = client.get("/api/status").json()
    assert s["images"] == 16 and s["vectors"] == 16 and s["skipped"] == 1
    assert s["activity"]["state"] == "idle"


def test_token_is_required_when_configured(engine) -> None:
    access = Access.for_bind("127.0.0.1", 7861, "s3cret", token_given=True)
    guarded = TestClient(create_app(engine[0], access), base_url=BASE)
    assert guarded.get("/api/status").status_code == 401
    assert guarded.get("/api/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert guarded.get("/api/status", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    first = guarded.get("/api/health", params={"token": "s3cret"})
    assert first.status_code == 200 and "imgsearch_token" in first.cookies
    assert guarded.get("/api/status").status_code == 200  # the cookie now carries it


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")


def test_thumbnails_of_contents_no_longer_indexed_are_pruned(client: TestClient, engine) -> None:
    from imgsearch.service.thumbnails import prune

    eng = engine[0]
    file_id = next(iter(_ids(eng).values()))
    assert client.get(f"/api/images/{file_id}/thumbnail").status_code == 200
    folder = eng.settings.index_dir / "thumbnails"
    made = set(folder.glob("*/*.webp"))
    assert made
    assert prune(folder, eng.stores.catalog.content_hashes()) == 0 and set(folder.glob("*/*.webp")) == made
    assert prune(folder, set()) == len(made) and not list(folder.glob("*/*.webp"))


def test_facets_count_the_roots_their_folders_and_cameras(engine) -> None:
    from types import SimpleNamespace

    folder = engine[1]
    worker = SimpleNamespace(roots=SimpleNamespace(paths=[folder.parent]))
    app = create_app(engine[0], Access.for_bind("127.0.0.1", 7861, SECRET), worker)  # type: ignore[arg-type]
    facets = TestClient(app, base_url=BASE).get("/api/facets").json()
    assert facets["roots"] == [{"path": str(folder.parent), "count": 16}]
    assert {"path": str(folder), "count": 16} in facets["folders"]
    assert facets["cameras"] == []  # the shapes pictures carry no EXIF


def test_search_takes_filters_and_pictures(client: TestClient, engine) -> None:
    import base64

    some = sorted(engine[1].glob("img*"))[3]
    body = {"terms": [{"kind": "image", "text": "x", "data": base64.b64encode(some.read_bytes()).decode()}],
            "folders": [str(engine[1])], "limit": 3, "rerank_k": 0}
    hits = client.post("/api/search", json=body).json()["hits"]
    assert hits[0]["path"] == str(some) and len(hits) == 3
    listed = client.get("/api/search", params={"in": str(engine[1]), "limit": 4, "sort": "oldest"}).json()["hits"]
    assert len(listed) == 4 and all(h["score"] is None for h in listed)
    assert client.get("/api/search", params={"in": "/nowhere", "q": "a star"}).json()["hits"] == []
    assert client.post("/api/search", json={"terms": [{"kind": "image", "data": "%%%"}]}).status_code == 422
