"""Tests never touch the user's data or the network: every test gets its own data directory and
the model hubs fail at once."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture
def tiny_models(tmp_path: Path) -> Any:
    """`tiny_models(name, **settings)`: the tiny profile's `Models` in fp32, home `tmp_path / name`."""
    from imgsearch.models import Models

    def make(name: str, **kw: Any) -> Models:
        return Models(Settings(home=tmp_path / name, models="tiny", dtype="float32", **kw))

    return make


@pytest.fixture
def shapes_pictures(shapes_folder: Path) -> list[Any]:
    """The shapes folder's PNG pictures, as the captioner and the ITM model take them."""
    from PIL import Image

    return [Image.open(p).convert("RGB") for p in sorted(shapes_folder.glob("*.png"))]


@pytest.fixture
def torch_captioner(tiny_models: Any, shapes_pictures: list[Any]) -> tuple[Any, Any]:
    """The tiny captioner run by torch, and its vision states of the shapes pictures."""
    import torch

    captioner = tiny_models("torch", image_runtime="torch").captioner
    pixels = captioner.processor(images=shapes_pictures, return_tensors="pt").pixel_values
    with torch.inference_mode():
        return captioner, captioner.model.vision_model(pixel_values=pixels)[0]


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


# --- the catalog on SQLite and on PostgreSQL ------------------------------------------------------
# IMGSEARCH_TEST_POSTGRES: the URL of a role that may create databases (`.ci/postgres` installs a
# server, makes one and prints it; `.ci/run` exports it). Unset, the PostgreSQL cases are skipped,
# saying so; set, a server that does not answer fails them: CI never passes by skipping them.
POSTGRES_ENV = "IMGSEARCH_TEST_POSTGRES"


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A catalog URL for each database: SQLite in the test's folder, or a PostgreSQL database of
    the test's own, dropped after it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'c.sqlite3'}"
    else:
        yield from fresh_postgres_database()


def _drop(engine, name: str) -> None:  # type: ignore[no-untyped-def]
    """DROP DATABASE … WITH (FORCE) ends the test's own connections, but not a server process of
    another role that may be on it for a moment (an autovacuum worker, seen once in CI): retried."""
    import time

    from sqlalchemy.exc import DBAPIError

    for attempt in range(20):
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            return
        except DBAPIError:
            if attempt == 19:
                raise
            time.sleep(0.5)


def fresh_postgres_database() -> Iterator[str]:
    """The URL of a new, empty UTF-8 database; dropped afterwards (connections left open too)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    admin = os.environ.get(POSTGRES_ENV)
    if not admin:
        pytest.skip(f"PostgreSQL case: set {POSTGRES_ENV} to a role that may create databases "
                    "(`.ci/postgres` installs a server and prints one)")
    name = f"imgsearch_t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
        _drop(engine, name)
    finally:
        engine.dispose()
