"""The service prepares fast queries in its spare time: with nothing else to do, the worker
writes CLIP's text export (its warm queries, and cold CLI queries once it stops, then embed words
without torch) and, once the index is large enough, the export's int8 variant, which its warm
session then runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import make_shapes
from imgsearch.indexer import index
from imgsearch.models import Models
from imgsearch.models import text_export
from imgsearch.models.text_export import read_meta
from imgsearch.service.engine import Engine
from imgsearch.service.watcher import ChangeCollector, Watcher
from imgsearch.service.worker import Roots, Worker
from imgsearch.settings import Settings
from imgsearch.stores import open_stores


@pytest.mark.parametrize("threshold", [6, 7])
def test_spare_time_writes_the_text_export_and_its_int8_variant_when_due(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threshold: int) -> None:
    monkeypatch.setattr(text_export, "_query_ms", lambda fp32, int8: (2.0, 1.0))  # as a quiet machine measures
    folder = tmp_path / "photos"
    make_shapes(folder, 6, seed=5)
    settings = Settings(home=tmp_path / "home", models="tiny", batch_size=4, decode_workers=1,
                        image_export_min_pictures=threshold)
    models = Models(settings)
    with open_stores(settings, models.facts(), models.clip.dim) as stores:
        engine = Engine(settings, models, stores)
        index([folder], engine.stores, models, captions=False)
        assert read_meta(settings.index_dir) is None  # `index` itself (not `imgsearch index`) writes none
        worker = Worker(engine, Roots(tmp_path, [folder]), ChangeCollector(), Watcher(ChangeCollector()),
                        captions=False, texts=False, recheck_seconds=1e9)
        worker._last_scan = time.monotonic()
        states = []
        while worker._step():
            states.append(engine.activity.state)
        assert states == ["query towers"] and engine.activity.state == "idle"
        meta = read_meta(settings.index_dir)
        assert meta["clip_model"] == models.profile.clip_id
        if threshold <= 6:
            assert meta["int8"]["admitted"], meta["int8"]
            assert models.clip.word_tower is not None
            models.clip.encode_texts(["a red circle"])
            assert models.clip.word_tower._encoder.int8  # the warm session runs it
        else:
            assert "int8" not in meta  # 6 pictures: not yet due
        assert not worker._step()  # done once: nothing more until an index run embeds something
