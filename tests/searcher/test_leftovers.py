"""A point without a catalog row (a crash's leftover until the next run's repair) is never shown,
and the page is still full: rows are read only for the pictures a search shows or reranks."""

from __future__ import annotations

from pathlib import Path

from imgsearch.library.local import LocalIndex
from imgsearch.searcher.request import VECTOR, SearchRequest, words
from imgsearch.settings import Settings


def test_a_point_without_a_row_is_skipped_and_the_page_still_fills(tmp_path: Path, shapes_folder: Path) -> None:
    with LocalIndex(Settings(home=tmp_path / "home", models="tiny", batch_size=8, decode_workers=2)) as idx:
        idx.index([shapes_folder], captions=False, texts=False)
        stores = idx._open_stores()
        query = idx.models.clip.encode_texts(["a red circle"])
        leftovers = [10**9 + n for n in range(3)]
        stores.vectors.upsert(leftovers, query.repeat(3, axis=0), [{} for _ in leftovers])  # the nearest of all
        stores.vectors.flush()
        assert {i for i, _ in stores.vectors.search(query[0], 3)} == set(leftovers)
        for request in (SearchRequest((words("a red circle"),), limit=5, rerank_k=0, mode=VECTOR),
                        SearchRequest((words("a red circle"),), limit=5, rerank_k=5, min_match=0.0),
                        SearchRequest((words("a red circle"),), limit=12, rerank_k=0)):
            hits = idx.search(request)
            assert len(hits) == request.limit and not {h.file_id for h in hits} & set(leftovers)
            assert all(Path(h.path).parent == shapes_folder for h in hits)
