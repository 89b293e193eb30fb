"""The service's tests share one indexed library per test module: 16 shapes pictures and a broken
file, indexed with the bundled tiny models into real stores."""

from __future__ import annotations

import random

import pytest

from imgsearch.indexer import index
from imgsearch.models import Models
from imgsearch.service.engine import Engine
from imgsearch.settings import Settings
from imgsearch.shapes.render import sample_scene, write_collection
from imgsearch.stores import open_stores


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("api")
    folder = base / "photos"
    rng = random.Random(5)
    truth = write_collection(folder, [sample_scene(rng) for _ in range(16)], 5)
    (folder / "scenes.json").unlink()
    (folder / "broken.jpg").write_bytes(b"not a picture")
    settings = Settings(home=base / "home", models="tiny", batch_size=8, decode_workers=2)
    models = Models(settings)
    stores = open_stores(settings, models.facts(), models.clip.dim)
    index([folder], stores, models)
    yield Engine(settings, models, stores), folder, truth
    stores.close()
