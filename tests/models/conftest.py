"""Fixtures of the model tests: the bundled tiny models in a home of the test's own, and the
shapes pictures as the captioner and the ITM model take them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from imgsearch.models import Models
from imgsearch.settings import Settings
from PIL import Image

@pytest.fixture
def tiny_models(tmp_path: Path) -> Callable[..., Models]:
    """`tiny_models(name, **settings)`: the tiny profile in fp32, its home `tmp_path / name`."""

    def make(name: str, **kw: object) -> Models:
        return Models(Settings(home=tmp_path / name, models="tiny", dtype="float32", **kw))

    return make


@pytest.fixture
def shapes_pictures(shapes_folder: Path) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(shapes_folder.glob("*.png"))]


@pytest.fixture
def torch_captioner(tiny_models: Callable[..., Models], shapes_pictures: list[Image.Image]) -> tuple[Any, torch.Tensor]:
    """The tiny captioner run by torch, and its vision states of the shapes pictures."""
    captioner = tiny_models("torch", image_runtime="torch").captioner
    pixels = captioner.processor(images=shapes_pictures, return_tensors="pt").pixel_values
    with torch.inference_mode():
        return captioner, captioner.model.vision_model(pixel_values=pixels)[0]
