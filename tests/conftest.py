"""Tests never touch the user's data or the network: every test gets its own data directory and
the model hubs fail at once."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from imgsearch.settings import Settings
from imgsearch.shapes.render import sample_scene, write_collection

# Reading text (OCR, ~0.15 s a picture here) is tested where it is the subject (their settings
# say ocr=True); other tests index pictures without text and would only wait for it. Set at
# import, before any fixture of any scope; subprocesses inherit it.
os.environ["IMGSEARCH_OCR"] = "0"


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGSEARCH_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def tiny_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", models="tiny", batch_size=8, decode_workers=2)


def make_shapes(folder: Path, n: int, seed: int) -> dict:
    rng = random.Random(seed)
    return write_collection(folder, [sample_scene(rng) for _ in range(n)], seed)


@pytest.fixture
def shapes_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    make_shapes(folder, 12, seed=11)
    (folder / "scenes.json").unlink()
    return folder


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    """A service engine over one indexed library per test module: 16 shapes pictures and a broken
    file, indexed with the bundled tiny models into real stores."""
    from imgsearch.indexer import index
    from imgsearch.models import Models
    from imgsearch.service.engine import Engine
    from imgsearch.stores import open_stores

    base = tmp_path_factory.mktemp("api")
    folder = base / "photos"
    truth = make_shapes(folder, 16, seed=5)
    (folder / "scenes.json").unlink()
    (folder / "broken.jpg").write_bytes(b"not a picture")
    settings = Settings(home=base / "home", models="tiny", batch_size=8, decode_workers=2)
    models = Models(settings)
    stores = open_stores(settings, models.facts(), models.clip.dim)
    index([folder], stores, models)
    yield Engine(settings, models, stores), folder, truth
    stores.close()
