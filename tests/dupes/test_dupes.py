"""Duplicate groups on real files through every interface (tiny models, real stores): an original
and its resized, recompressed, cropped, EXIF-less and PNG copies form one group with the original
first; the same scene drawn again with the objects elsewhere does not join it; --in restricts;
a file gone since indexing is skipped with a message; the CLI's --json and GET /api/dupes give
one shape."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from imgsearch.cli.app import app
from imgsearch.indexer import run_index
from imgsearch.library.local import LocalIndex
from imgsearch.settings import Settings
from imgsearch.shapes.render import render, sample_scene
from imgsearch.shapes.world import Scene
from PIL import Image
from typer.testing import CliRunner

GROUP_KEYS = {"keep", "members", "others"}
MEMBER_KEYS = {"id", "path", "folder", "name", "width", "height", "size", "format", "quality", "exif", "keep",
               "cosine", "scale", "crop", "differs"}


def _exif() -> Image.Exif:
    tags = Image.Exif()
    tags[0x010F], tags[0x0110] = "Canon", "Canon EOS R6"
    tags.get_ifd(0x8769)[0x9003] = "2021:05:01 10:00:00"
    return tags


def _other_place(scene: Scene, rng: random.Random) -> Scene:
    """The same objects, relation, background and size, placed elsewhere (far from before)."""
    from imgsearch.shapes.render import _place

    kinds = [(o.shape, o.colour, o.size) for o in scene.objects]
    while True:
        placed = _place(rng, scene.width, scene.height, kinds, scene.relation)
        if placed and abs(placed[0].cx - scene.objects[0].cx) > scene.width * 0.15:
            return Scene(scene.width, scene.height, scene.background, tuple(placed))


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("dupes")
    photos, rng = base / "photos", random.Random(31)
    (photos / "mail").mkdir(parents=True)
    scene = sample_scene(rng, 2, objects=[("star", "red", "large"), ("circle", "blue", "small")])
    image = render(scene, rng)
    original = photos / "original.jpg"
    image.save(original, quality=92, exif=_exif())
    w, h = image.size
    copies = {
        "resized": (image.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "mail/resized.jpg", {"quality": 85}),
        "recompressed": (image, "mail/recompressed.jpg", {"quality": 45}),
        "cropped": (image.crop((w // 20, h // 25, w - w // 25, h - h // 30)), "cropped.jpg", {"quality": 90}),
        "no-exif": (image, "no-exif.jpg", {"quality": 92}),
        "png": (image, "converted.png", {}),
    }
    paths = {"original": original}
    for day, (kind, (pixels, name, options)) in enumerate(copies.items(), start=1):
        paths[kind] = photos / name
        pixels.save(paths[kind], **options)
        made = original.stat().st_mtime + 86_400 * day  # copies come after the original
        os.utime(paths[kind], (made, made))
    paths["same-scene"] = photos / "same-scene.jpg"
    render(_other_place(scene, rng), rng).save(paths["same-scene"], quality=92)
    for i in range(6):
        paths[f"other{i}"] = photos / f"other{i}.jpg"
        render(sample_scene(rng), rng).save(paths[f"other{i}"], quality=90)
    settings = Settings(home=base / "home", models="tiny", batch_size=8, decode_workers=2, ocr=False)
    report = run_index(settings, [photos], captions=False, texts=False)
    assert report.embedded == len(paths) and not report.skipped
    with LocalIndex(settings) as idx:
        yield idx, paths, settings


def _group_of(report: dict, path: Path) -> dict | None:
    return next((g for g in report["groups"] if str(path) in {m["path"] for m in g["members"]}), None)


def test_copies_form_one_group_with_the_original_first(library) -> None:
    idx, paths, _ = library
    report = idx.dupes()
    group = _group_of(report, paths["original"])
    assert group is not None
    members = {m["path"]: m for m in group["members"]}
    copies = ("resized", "recompressed", "cropped", "no-exif", "png")
    assert set(members) == {str(paths[k]) for k in ("original", *copies)}
    keep = group["members"][0]
    assert keep["path"] == str(paths["original"]) and keep["keep"] and keep["exif"]
    assert group["keep"] == keep["id"] and group["others"] == [m["path"] for m in group["members"][1:]]
    differs = {k: " ".join(members[str(paths[k])]["differs"]) for k in copies}
    assert "smaller" in differs["resized"] and "50%" in differs["resized"]
    assert "quality" in differs["recompressed"] and "no EXIF" in differs["recompressed"]
    assert "cropped" in differs["cropped"]
    assert "no EXIF" in differs["no-exif"]
    assert "PNG" in differs["png"]
    assert abs(members[str(paths["resized"])]["scale"] - 0.5) < 0.03
    assert 0.05 < members[str(paths["cropped"])]["crop"] < 0.2
    assert report["others"] == [p for g in report["groups"] for p in g["others"]]


def test_the_same_scene_drawn_again_is_not_a_copy(library) -> None:
    idx, paths, _ = library
    report = idx.dupes(threshold=0.5)  # even as a candidate, the pixels tell it apart
    assert _group_of(report, paths["same-scene"]) is None
    assert all(_group_of(report, paths[f"other{i}"]) is None for i in range(6))


def test_in_restricts_to_a_folder(library) -> None:
    idx, paths, _ = library
    report = idx.dupes(folders=[str(paths["resized"].parent)])
    assert [sorted(m["name"] for m in g["members"]) for g in report["groups"]] == [["recompressed.jpg", "resized.jpg"]]
    assert report["pictures"] == 2


def test_a_file_gone_since_indexing_is_skipped_with_a_message(library) -> None:
    idx, paths, _ = library
    gone = paths["cropped"]
    data = gone.read_bytes()
    gone.unlink()
    try:
        report = idx.dupes()
    finally:
        gone.write_bytes(data)
    assert [s["path"] for s in report["skipped"]] == [str(gone)]
    assert "gone" in report["skipped"][0]["reason"]
    group = _group_of(report, paths["original"])
    assert group is not None and str(gone) not in {m["path"] for m in group["members"]}
    assert len(group["members"]) == 5


def test_cli_json_and_text(library) -> None:
    idx, paths, settings = library
    idx.close()  # the CLI opens the stores itself (one process holds an Edge store at a time)
    runner = CliRunner()
    result = runner.invoke(app, ["dupes", "--json", "--home", str(settings.home), "--models", "tiny"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) >= {"groups", "pictures", "candidates", "compared", "threshold", "others", "skipped"}
    group = _group_of(report, paths["original"])
    assert group is not None and set(group) == GROUP_KEYS
    assert all(set(m) == MEMBER_KEYS for m in group["members"])
    text = runner.invoke(app, ["dupes", "--home", str(settings.home), "--models", "tiny"])
    assert text.exit_code == 0
    assert f"keep  {paths['original']}" in text.stdout
    assert "The others' paths:" in text.stdout and str(paths["resized"]) in text.stdout


def test_api_gives_the_same_shape(library) -> None:
    from imgsearch.models import Models
    from imgsearch.service.api import create_app
    from imgsearch.service.engine import Engine
    from imgsearch.service.guard import Access
    from imgsearch.stores import open_stores

    idx, paths, settings = library
    idx.close()  # the engine opens the stores itself
    models = Models(settings)
    with open_stores(settings, models.facts(), models.clip.dim) as stores:
        client = TestClient(create_app(Engine(settings, models, stores), Access.for_bind("127.0.0.1", 7861, "s")),
                            base_url="http://127.0.0.1:7861")
        r = client.get("/api/dupes")
        assert r.status_code == 200
        group = _group_of(r.json(), paths["original"])
        assert group is not None and set(group) == GROUP_KEYS
        assert group["members"][0]["path"] == str(paths["original"])
        assert all(set(m) == MEMBER_KEYS for m in group["members"])
        only = client.get("/api/dupes", params={"in": str(paths["resized"].parent), "threshold": 0.85}).json()
        assert len(only["groups"]) == 1
        assert client.get("/api/dupes", params={"in": "relative/folder"}).status_code == 422
        assert client.get("/api/dupes", params={"threshold": 0}).status_code == 422
        assert client.get("/api/dupes", params={"threshold": "nan"}).status_code == 422


def test_the_command_has_help_and_is_in_the_readme() -> None:
    result = CliRunner().invoke(app, ["dupes", "--help"])
    assert result.exit_code == 0 and "--threshold" in result.stdout and "--in" in result.stdout
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "imgsearch dupes" in readme and "GET /api/dupes" in readme


def test_the_remote_index_asks_the_service_with_the_same_options() -> None:
    from imgsearch.library.remote import RemoteIndex

    asked: list[str] = []

    class Client:
        url = "http://127.0.0.1:7861"

        def get(self, path: str) -> dict:
            asked.append(path)
            return {"groups": []}

    remote = RemoteIndex(Client())  # type: ignore[arg-type]
    assert remote.dupes(threshold=0.8, folders=["/photos/a b", "/x"]) == {"groups": []}
    assert remote.dupes() == {"groups": []}
    assert asked == ["/api/dupes?threshold=0.8&in=%2Fphotos%2Fa+b&in=%2Fx", "/api/dupes"]
