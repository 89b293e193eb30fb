"""The Qdrant server backend end to end, against qdrant-client's in-process mode (which speaks
the server's API): index, re-index, delete, query — the same behaviour as the embedded store."""

from __future__ import annotations

from pathlib import Path

from qdrant_client import QdrantClient

from imgsearch.indexer import run_index
from imgsearch.library.local import LocalIndex
from imgsearch.searcher.request import SearchRequest, words
from imgsearch.settings import Settings


def test_index_and_query_through_a_qdrant_server_api(tiny_settings: Settings, shapes_folder: Path) -> None:
    client = QdrantClient(":memory:")
    report = run_index(tiny_settings, [shapes_folder], client=client)
    assert report.embedded == 12
    assert client.count(tiny_settings.collection).count == 12
    assert not tiny_settings.edge_path.exists(), "the embedded store must not be touched"
    again = run_index(tiny_settings, [shapes_folder], client=client)
    assert again.embedded == 0 and again.unchanged == 12
    victim = sorted(shapes_folder.iterdir())[0]
    victim.unlink()
    assert run_index(tiny_settings, [shapes_folder], client=client).removed == 1
    assert client.count(tiny_settings.collection).count == 11
    with LocalIndex(tiny_settings, client=client) as idx:
        hits = idx.search(SearchRequest((words("a red circle"),), limit=5, rerank_k=5, min_match=0.0))
    assert len(hits) == 5 and all(Path(h.path).exists() for h in hits)
    assert str(victim) not in {h.path for h in hits}
