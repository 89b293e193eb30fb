"""The concept endpoints of the service's API (TestClient over the `engine` fixture's real stores
and tiny models), and the remote index that talks to them."""

from __future__ import annotations

import base64
import random
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from imgsearch.concepts import ConceptError
from imgsearch.library.remote import RemoteIndex
from imgsearch.service.api import create_app
from imgsearch.service.client import ServiceError
from imgsearch.service.guard import Access
from imgsearch.shapes.render import sample_scene, write_scene

BASE = "http://127.0.0.1:7861"


@pytest.fixture(scope="module")
def client(engine) -> TestClient:
    return TestClient(create_app(engine[0], Access.for_bind("127.0.0.1", 7861, "s3cret")), base_url=BASE)


def _indexed(engine) -> list[str]:
    catalog = engine[0].stores.catalog
    return sorted(info.path for info in catalog.get(catalog.vector_ids()).values())


def _outside(tmp_path: Path) -> Path:
    rng = random.Random(4)
    return write_scene(tmp_path, "not-indexed", sample_scene(rng, objects=[("star", "red", "large")]), rng)


def test_a_concept_round_trip(client: TestClient, engine) -> None:
    paths = _indexed(engine)
    r = client.post("/api/concepts", json={"name": "api-c", "positives": [{"path": p} for p in paths[:3]],
                                           "negatives": [{"path": paths[3]}], "random_negatives": 5})
    assert r.status_code == 200, r.text
    report = r.json()
    concept = report["concept"]
    assert report["need_data"] == [] and report["added_positives"] == 3 and report["added_negatives"] == 1
    assert concept["positives"] == paths[:3] and concept["negatives"] == [paths[3]]
    assert concept["random_negatives"] == 5 and len(concept["weights"]) == concept["dim"]
    listed = client.get("/api/concepts").json()["concepts"]
    assert [c["name"] for c in listed] == ["api-c"]
    assert client.get("/api/concepts/api-c").json() == concept
    assert client.delete("/api/concepts/api-c").json() == {"removed": "api-c"}
    gone = client.get("/api/concepts/api-c")
    assert gone.status_code == 404 and "no concept named 'api-c'" in gone.json()["detail"]
    assert client.delete("/api/concepts/api-c").status_code == 404


def test_a_picture_the_service_lacks_is_never_read_but_asked_for(client: TestClient, engine, tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    indexed = _indexed(engine)[0]
    r = client.post("/api/concepts", json={"name": "bytes", "positives": [{"path": indexed}, {"path": str(outside)}]})
    assert r.status_code == 200 and r.json()["need_data"] == [str(outside)] and r.json()["concept"] is None
    assert client.get("/api/concepts/bytes").status_code == 404  # nothing trained yet
    data = base64.b64encode(outside.read_bytes()).decode()
    r = client.post("/api/concepts", json={"name": "bytes", "positives": [
        {"path": indexed}, {"path": str(outside), "data": data}]})
    assert r.status_code == 200, r.text
    assert r.json()["concept"]["positives"] == [indexed, outside.name]  # the service's disk never named
    client.delete("/api/concepts/bytes")


def test_bad_requests_are_refused_with_a_reason(client: TestClient, engine) -> None:
    indexed = _indexed(engine)[0]
    for body in ({"name": "a/b", "positives": [{"path": indexed}]},
                 {"name": "ok", "positives": [], "negatives": [{"path": indexed}]},
                 {"name": "ok", "positives": [{"path": indexed, "data": "%%%"}]},
                 {"name": "ok", "positives": [{"path": indexed}], "random_negatives": -1}):
        r = client.post("/api/concepts", json=body)
        assert r.status_code == 422 and r.json()["detail"], body
    junk = base64.b64encode(b"not a picture").decode()
    r = client.post("/api/concepts", json={"name": "junk", "positives": [{"path": "/x/junk.jpg", "data": junk}]})
    assert r.status_code == 422 and "no example picture of 'junk' could be used" in r.json()["detail"]
    assert client.get("/api/concepts/a..b").status_code == 404
    assert client.get("/api/concepts/-x").status_code == 422
    evil = client.post("/api/concepts", json={"name": "x", "positives": [{"path": indexed}]},
                       headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and client.get("/api/concepts/x").status_code == 404


class _Through:
    """The ServiceClient's three calls, answered by the TestClient; remembers what was posted."""

    url = BASE

    def __init__(self, client: TestClient) -> None:
        self.client, self.posted = client, []

    @staticmethod
    def _answer(r: Any) -> Any:
        if r.status_code >= 400:
            raise ServiceError(f"the service answered {r.status_code}: {r.json()['detail']}")
        return r.json()

    def get(self, path: str, **params: Any) -> Any:
        return self._answer(self.client.get(path, params=params))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        self.posted.append(body)
        return self._answer(self.client.post(path, json=body))

    def delete(self, path: str) -> Any:
        return self._answer(self.client.delete(path))


def test_the_remote_index_sends_bytes_only_for_what_the_service_lacks(client: TestClient, engine,
                                                                      tmp_path: Path) -> None:
    through = _Through(client)
    remote = RemoteIndex(through)  # type: ignore[arg-type]
    indexed, outside = _indexed(engine)[:2], _outside(tmp_path)
    missing = tmp_path / "gone.jpg"
    report = remote.concept_add("remote", [*indexed, outside], [], random_negatives=4)
    assert [len(b["positives"]) for b in through.posted] == [3, 3]
    assert all("data" not in e for e in through.posted[0]["positives"])
    assert [("data" in e) for e in through.posted[1]["positives"]] == [False, False, True]
    assert report.concept.positives == (*indexed, outside.name) and not report.skipped
    with pytest.raises(ConceptError, match="no example picture of 'remote' could be used"):
        remote.concept_add("remote", [missing], [])  # a file gone meanwhile: nothing to add
    again = remote.concept_add("remote", [missing], [_indexed(engine)[5]])  # a --not alone retrains
    assert again.retrained and again.skipped[0][0] == str(missing) and len(again.concept.positives) == 3
    assert again.concept.negatives == (_indexed(engine)[5],)
    assert [c.name for c in remote.concepts()] == ["remote"]
    assert remote.concept("remote").positives == again.concept.positives
    remote.concept_remove("remote")
    with pytest.raises(ServiceError, match="404"):
        remote.concept("remote")
