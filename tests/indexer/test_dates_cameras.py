"""Every indexed picture carries its date (EXIF, else the file's time) and camera, in the catalog
and in its point's payload, through moves, copies, touches and the upgrade of an older index."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from imgsearch.dates import EXIF, FILE, epoch, picture_date
from imgsearch.imaging import decode, read_exif
from imgsearch.indexer import index
from imgsearch.indexer.backfill import backfill
from imgsearch.indexer.changes import relocate
from imgsearch.models import Models
from imgsearch.settings import Settings
from imgsearch.stores import Stores, open_stores

FILE_TIME = 1_600_000_000  # 2020-09-13 UTC, whatever the local zone makes of it
CANON = {"make": "Canon", "model": "Canon EOS 5D", "taken": "2019:06:01 10:00:00"}
NIKON = {"make": "NIKON CORPORATION\x00", "model": "NIKON D750  ", "taken": "2021:12:24 18:30:00"}
PHONE = {"make": "Apple", "model": "iPhone 12\n", "taken": "2020:02:29 08:15:00"}
# What the catalog and the payloads should say of each: date, its source, camera.
Facts = tuple[datetime, str, str | None]
CANON_FACTS: Facts = (datetime(2019, 6, 1, 10), EXIF, "Canon EOS 5D")
NIKON_FACTS: Facts = (datetime(2021, 12, 24, 18, 30), EXIF, "NIKON CORPORATION NIKON D750")
PHONE_FACTS: Facts = (datetime(2020, 2, 29, 8, 15), EXIF, "Apple iPhone 12")


def _exif(make: str | None = None, model: str | None = None, taken: str | None = None) -> bytes:
    exif = Image.Exif()
    if make is not None:
        exif[0x010F] = make
    if model is not None:
        exif[0x0110] = model
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    return exif.tobytes()


def _picture(path: Path, seed: int, **facts: str) -> Path:
    """A small distinct JPEG (noise, so no two share a hash), with EXIF when `facts` are given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90, exif=_exif(**facts) if facts else b"")
    if not facts:
        os.utime(path, (FILE_TIME + seed, FILE_TIME + seed))
    return path


def _file_date(path: Path) -> datetime:
    return picture_date(None, path.stat().st_mtime_ns)[0]


def _by_file(path: Path) -> Facts:
    return _file_date(path), FILE, None


def _dirs(path: Path) -> list[str]:
    return [str(d) for d in reversed(path.parents) if str(d) != "/"]


@pytest.fixture
def env(tiny_settings: Settings, tmp_path: Path):
    models = Models(tiny_settings)
    stores = open_stores(tiny_settings, models.facts(), models.clip.dim)
    photos = tmp_path / "photos"
    _picture(photos / "2019" / "canon.jpg", 1, **CANON)
    _picture(photos / "2021" / "nikon.jpg", 2, **NIKON)
    _picture(photos / "phone.jpg", 3, **PHONE)
    _picture(photos / "2019" / "scan.jpg", 4)
    _picture(photos / "screens" / "shot.jpg", 5)
    yield stores, models, photos
    stores.close()


def _rows(stores: Stores, photos: Path) -> dict[str, int]:
    known = stores.catalog.files_under([str(photos)])
    return {str(Path(p).relative_to(photos)): k.id for p, k in known.items()}


def _check(stores: Stores, path: Path, file_id: int, facts: Facts) -> None:
    """The row and its point's payload agree with what the file says."""
    date, source, camera = facts
    info = stores.catalog.get([file_id])[file_id]
    assert (info.path, info.date, info.date_source, info.camera) == (str(path), date, source, camera)
    payload = stores.vectors.payloads([file_id])[file_id]
    assert payload == {"sha256": info.sha256, "dirs": _dirs(path), "date": epoch(date), "camera": camera}


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow, on the junk header below
def test_cameras_are_read_from_exif_make_and_model(tmp_path: Path) -> None:
    def camera(**facts: str) -> str | None:
        path = _picture(tmp_path / "p.jpg", 0, **facts)
        got = decode(path.read_bytes(), min_side=8).camera
        assert read_exif(path).camera == got, "the backfill reads what decoding reads"
        return got

    assert camera(**CANON) == "Canon EOS 5D"
    assert camera(make="Canon", model="EOS 5D") == "Canon EOS 5D"
    assert camera(**NIKON) == "NIKON CORPORATION NIKON D750"
    assert camera(**PHONE) == "Apple iPhone 12"
    assert camera(make="\x00\x01 ", model="X100\x00") == "X100"
    assert camera(make="A" * 50, model="B" * 50) == "A" * 50 + " " + "B" * 13
    assert camera(taken="2019:01:01 00:00:00") is None
    assert read_exif(tmp_path / "gone.jpg") == (1, None, None)
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00MM\x00*\x00\x00\x00\x08")
    assert read_exif(tmp_path / "junk.jpg").camera is None


def test_index_dates_and_names_cameras_in_both_stores(env) -> None:
    stores, models, photos = env
    report = index([photos], stores, models, captions=False)
    assert report.embedded == 5 and report.backfilled == 0
    ids = _rows(stores, photos)
    _check(stores, photos / "2019/canon.jpg", ids["2019/canon.jpg"], CANON_FACTS)
    _check(stores, photos / "2021/nikon.jpg", ids["2021/nikon.jpg"], NIKON_FACTS)
    _check(stores, photos / "phone.jpg", ids["phone.jpg"], PHONE_FACTS)
    for name in ("2019/scan.jpg", "screens/shot.jpg"):
        _check(stores, photos / name, ids[name], _by_file(photos / name))

    cat = stores.catalog
    assert cat.cameras_like("canon") == ["Canon EOS 5D"] and cat.cameras_like("i") == [
        "Apple iPhone 12", "NIKON CORPORATION NIKON D750"]
    oldest = [Path(f.path).name for f in cat.listing([], None, None, None, False, 10, 0)]
    assert oldest[:2] == ["canon.jpg", "phone.jpg"] and oldest[-1] == "nikon.jpg"
    in_2019 = cat.listing([str(photos / "2019")], None, None, None, True, 10, 0)
    assert {Path(f.path).name for f in in_2019} == {"canon.jpg", "scan.jpg"}
    cameras = cat.cameras_like("a")
    some = cat.listing([str(photos)], datetime(2019, 1, 1), datetime(2021, 1, 1), cameras, True, 9, 0)
    assert [Path(f.path).name for f in some] == ["phone.jpg", "canon.jpg"]


def test_moves_copies_and_touches_rewrite_payloads_without_the_model(env) -> None:
    stores, models, photos = env
    index([photos], stores, models, captions=False)
    before = _rows(stores, photos)
    scan = photos / "2019" / "scan.jpg"
    scan_before = _file_date(scan)
    (photos / "2019" / "canon.jpg").rename(photos / "2021" / "canon.jpg")  # into another folder
    shutil.copy(photos / "screens" / "shot.jpg", photos / "2021" / "shot copy.jpg")  # no EXIF: own time
    os.utime(photos / "2021" / "shot copy.jpg", (FILE_TIME + 999, FILE_TIME + 999))
    (photos / "screens").rename(photos / "old")  # a whole folder, seen by the scan
    shutil.copy2(photos / "phone.jpg", photos / "2019" / "phone copy.jpg")  # EXIF: the original's date
    os.utime(scan, (FILE_TIME + 86_400, FILE_TIME + 86_400))  # touched, same content
    report = index([photos], stores, models, captions=False)
    assert report.embedded == 0 and report.moved == 2 and report.copied == 2 and report.removed == 0
    after = _rows(stores, photos)
    assert after["2021/canon.jpg"] == before["2019/canon.jpg"]
    assert after["2019/scan.jpg"] == before["2019/scan.jpg"]
    assert before["screens/shot.jpg"] in (after["old/shot.jpg"], after["2021/shot copy.jpg"])
    _check(stores, photos / "2021/canon.jpg", after["2021/canon.jpg"], CANON_FACTS)
    for name in ("old/shot.jpg", "2021/shot copy.jpg"):
        _check(stores, photos / name, after[name], _by_file(photos / name))
    assert after["2019/phone copy.jpg"] != after["phone.jpg"]
    for name in ("2019/phone copy.jpg", "phone.jpg"):
        _check(stores, photos / name, after[name], PHONE_FACTS)
    _check(stores, scan, after["2019/scan.jpg"], _by_file(scan))
    assert _file_date(scan) != scan_before


def test_watched_moves_rewrite_the_payloads_of_a_whole_folder(env) -> None:
    stores, models, photos = env
    index([photos], stores, models, captions=False)
    before = _rows(stores, photos)
    (photos / "2019").rename(photos / "trip")
    assert relocate(stores, str(photos / "2019"), str(photos / "trip")) == 2
    (photos / "phone.jpg").rename(photos / "trip" / "phone.jpg")
    assert relocate(stores, str(photos / "phone.jpg"), str(photos / "trip" / "phone.jpg")) == 1
    after = _rows(stores, photos)
    assert after["trip/canon.jpg"] == before["2019/canon.jpg"]
    _check(stores, photos / "trip/canon.jpg", after["trip/canon.jpg"], CANON_FACTS)
    _check(stores, photos / "trip/scan.jpg", after["trip/scan.jpg"], _by_file(photos / "trip/scan.jpg"))
    _check(stores, photos / "trip/phone.jpg", after["trip/phone.jpg"], PHONE_FACTS)
    assert index([photos], stores, models, captions=False).embedded == 0


def _make_old(stores: Stores) -> dict[int, dict]:
    """Blank what an index made before dates and cameras lacks: row columns and payloads."""
    ids = sorted(stores.vectors.all_ids())
    full = stores.vectors.payloads(ids)
    stores.vectors.set_payload(ids, [{"sha256": full[i]["sha256"]} for i in ids])
    with stores.catalog.engine.begin() as conn:
        conn.execute(text("update files set date = null, date_source = null, camera = null"))
    return full


def test_an_old_index_is_backfilled_on_the_next_run_without_embedding(env, monkeypatch) -> None:
    stores, models, photos = env
    monkeypatch.setattr("imgsearch.indexer.backfill.CHUNK", 2)  # 5 rows: three chunks
    index([photos], stores, models, captions=False)
    rows = stores.catalog.get(stores.catalog.vector_ids())
    full = _make_old(stores)
    assert len(stores.catalog.needs_backfill(100)) == 5
    report = index([photos], stores, models, captions=False)
    assert report.backfilled == 5 and report.embedded == 0 and report.unchanged == 5
    assert report.as_json()["backfilled"] == 5
    assert stores.vectors.payloads(list(full)) == full
    assert stores.catalog.get(list(rows)) == rows
    assert stores.catalog.needs_backfill(100) == []
    assert index([photos], stores, models, captions=False).backfilled == 0


def test_backfill_of_a_file_gone_keeps_its_dates_and_loses_its_camera(env) -> None:
    stores, models, photos = env
    index([photos], stores, models, captions=False)
    ids = _rows(stores, photos)
    scan_date = _file_date(photos / "2019/scan.jpg")
    _make_old(stores)
    (photos / "2019" / "canon.jpg").unlink()
    (photos / "2019" / "scan.jpg").unlink()
    assert backfill(stores) == 5
    _check(stores, photos / "2019/canon.jpg", ids["2019/canon.jpg"], (CANON_FACTS[0], EXIF, None))
    _check(stores, photos / "2019/scan.jpg", ids["2019/scan.jpg"], (scan_date, FILE, None))
    _check(stores, photos / "phone.jpg", ids["phone.jpg"], PHONE_FACTS)
    assert backfill(stores) == 0
