"""A stateless query node (`imgsearch watch --query-only`) in front of stores a writer elsewhere
fills: the catalog on SQLite or PostgreSQL, the vectors on a Qdrant server (qdrant-client's
in-process mode, shared with the writer: no server binary here). It answers what the writer's own
index answers, while the writer holds its lock; it never indexes; it says what it lacks."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from imgsearch.errors import ConfigError
from imgsearch.indexer import run_index
from imgsearch.library.local import LocalIndex
from imgsearch.searcher.request import SearchRequest, words
from imgsearch.service import run as service_run
from imgsearch.settings import Settings
from imgsearch.stores.lock import WriterLock

QUERY = "a red circle"


def _call(url: str, method: str = "GET", body: dict[str, Any] | None = None, token: str = "") -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_query_node_answers_from_the_writers_stores(catalog_url: str, tmp_path: Path, shapes_folder: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    client = QdrantClient(":memory:")
    common = dict(models="tiny", catalog_url=catalog_url, qdrant_url="http://qdrant.test:6333", batch_size=8,
                  decode_workers=2, port=0)
    writer = Settings(home=tmp_path / "writer", **common)
    assert run_index(writer, [shapes_folder], captions=False, texts=False, client=client).embedded == 12
    with LocalIndex(writer, client=client) as idx:
        expected = [h.path for h in idx.search(SearchRequest((words(QUERY),), limit=5, rerank_k=0, min_match=0.0))]

    opened = service_run.open_stores
    monkeypatch.setattr(service_run, "open_stores", lambda *a, **k: opened(*a, client=client, **k))
    node = Settings(home=tmp_path / "node", **common)
    answers: dict[str, Any] = {}
    stop = threading.Event()

    def ask() -> None:  # beside the node, which serves on this (the main) thread
        try:
            for _ in range(600):
                if node.service_file.exists():
                    break
                time.sleep(0.1)
            info = json.loads(node.service_file.read_text())
            url = info["url"]
            answers["search"] = _call(f"{url}/api/search?q={QUERY.replace(' ', '+')}&limit=5&rerank_k=0&min_match=0")
            answers["index"] = _call(f"{url}/api/index", "POST", {"paths": [str(shapes_folder)]}, info["token"])
            answers["status"] = _call(f"{url}/api/status")
        finally:
            stop.set()

    with WriterLock(writer.index_dir, "the writer"):  # a writer at work: the node takes no lock
        asker = threading.Thread(target=ask)
        asker.start()
        service_run.run_service(node, query_only=True, echo=lambda m: None, stop=stop)
        asker.join()
    status, found = answers["search"]
    assert status == 200 and [h["path"] for h in found["hits"]] == expected and len(expected) == 5
    status, refused = answers["index"]
    assert status == 503 and "only answers queries" in refused["detail"]
    assert answers["status"][0] == 200 and answers["status"][1]["images"] == 12
    assert not node.service_file.exists()  # gone when it stopped
    client.close()


def test_a_query_node_says_what_it_lacks(tmp_path: Path, shapes_folder: Path) -> None:
    node = Settings(home=tmp_path / "node", models="tiny", port=0)
    with pytest.raises(ConfigError, match="Qdrant server"):
        service_run.run_service(node, query_only=True, echo=lambda m: None)
    served = node.model_copy(update={"qdrant_url": "http://qdrant.test:6333"})
    with pytest.raises(ConfigError, match="watches no folders"):
        service_run.run_service(served, [shapes_folder], query_only=True, echo=lambda m: None)
    served.service_file.parent.mkdir(parents=True, exist_ok=True)
    served.service_file.write_text(json.dumps({"pid": 1, "url": "http://127.0.0.1:9", "token": "x"}))
    with pytest.raises(ConfigError, match="a --home of its own"):  # pid 1 lives: a service runs there
        service_run.run_service(served, query_only=True, echo=lambda m: None)
