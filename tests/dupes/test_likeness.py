"""The pixel check alone (`imgsearch.likeness`) and the file facts a group is ranked by."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from imgsearch.errors import BadImageError
from imgsearch.likeness import Picture, compare
from imgsearch.likeness_files import jpeg_quality, read_picture
from imgsearch.shapes.render import render, sample_scene
from PIL import Image


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    rng = random.Random(5)
    return render(sample_scene(rng, 2, objects=[("square", "green", "large"), ("star", "orange", "small")]), rng)


def test_copies_are_the_same_photo_and_say_where_they_lie(photo: Image.Image) -> None:
    w, h = photo.size
    original = Picture.of(photo)
    small = Picture.of(_jpeg(photo.resize((w // 3, h // 3), Image.Resampling.BILINEAR), 50))
    match = compare(original, small)
    assert match.same and match.crop < 0.02
    cropped = photo.crop((w // 10, 0, w, h - h // 12))
    match = compare(Picture.of(cropped), original)  # either order: the original is the container
    assert match.same and match.container == 1
    assert 0.1 < match.crop < 0.22
    left, top, _, bottom = match.box
    assert abs(left - 0.1) < 0.02 and top < 0.02 and abs(bottom - 11 / 12) < 0.02


def test_another_photo_of_the_scene_or_another_scene_is_not(photo: Image.Image) -> None:
    rng = random.Random(6)
    moved = render(sample_scene(rng, 2, objects=[("square", "green", "large"), ("star", "orange", "small")]), rng)
    other = render(sample_scene(rng, 1), rng)
    original = Picture.of(photo)
    assert not compare(original, Picture.of(moved.resize(photo.size))).same
    assert not compare(original, Picture.of(other)).same
    darker = Image.eval(photo, lambda v: max(0, v - 25))  # the same layout, another exposure
    assert not compare(original, Picture.of(darker)).same


def test_file_facts_quality_exif_and_unreadable_files(photo: Image.Image, tmp_path: Path) -> None:
    for q in (45, 70, 92):
        buf = io.BytesIO()
        photo.save(buf, "JPEG", quality=q)
        assert jpeg_quality(Image.open(buf)) == q
    tags = Image.Exif()
    tags[0x010F] = "Canon"
    photo.save(tmp_path / "a.jpg", quality=90, exif=tags)
    photo.save(tmp_path / "b.png")
    a, b = read_picture(tmp_path / "a.jpg"), read_picture(tmp_path / "b.png")
    assert (a.format, a.quality, a.exif) == ("JPEG", 90, True)
    assert (b.format, b.quality, b.exif, b.fidelity) == ("PNG", None, False, 100)
    assert (a.picture.width, a.picture.height) == photo.size
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    with pytest.raises(BadImageError):
        read_picture(tmp_path / "broken.jpg")
    with pytest.raises(FileNotFoundError):
        read_picture(tmp_path / "gone.jpg")
