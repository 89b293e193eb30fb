"""BLIP's vision towers through ONNX Runtime int8 (the bundled tiny captioner and ITM model): the
variant is admitted by its check against torch fp32, captions and match probabilities through it
agree with torch's on real pictures, auto builds it only for a run large enough and takes it only
where it measured faster, and `imgsearch status` says what ran each tower."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from imgsearch.errors import ConfigError
from imgsearch.models import Models
from imgsearch.models.blip_vision import (
    FILE,
    RUN_BATCH,
    OnnxVisionModel,
    admit_states,
    choose,
    export_folder,
    read_meta,
)
from imgsearch.models.onnx_image import OnnxImageTower
from imgsearch.models.runtime import Runtime
from imgsearch.settings import Settings
from PIL import Image

CPU32 = Runtime(torch.device("cpu"), torch.float32)




def test_int8_captions_agree_with_torch_and_are_admitted_by_the_rule(
        tmp_path: Path, tiny_models: Callable[..., Models], shapes_pictures: list[Image.Image],
) -> None:
    pictures = shapes_pictures
    plain = tiny_models("torch", image_runtime="torch").captioner
    onnx = tiny_models("int8", image_runtime="onnx-int8").captioner
    want, got = plain.caption(pictures), onnx.caption(pictures)
    assert isinstance(onnx.model.vision_model, OnnxVisionModel) and onnx.vision.runtime == "onnx-int8"
    assert not isinstance(plain.model.vision_model, OnnxVisionModel) and plain.vision.runtime == "torch"
    same = sum(a == b for a, b in zip(want, got))
    assert same >= 0.9 * len(pictures), list(zip(want, got))
    record = read_meta(Settings(home=tmp_path / "int8", models="tiny").index_dir, "captioner")["variants"]["onnx-int8"]
    assert record["admitted"] and record["cos_min"] >= 0.99, record["why"]


def test_int8_match_probabilities_follow_torch(
        tmp_path: Path, tiny_models: Callable[..., Models], shapes_pictures: list[Image.Image],
) -> None:
    pictures = shapes_pictures
    plain = tiny_models("torch", image_runtime="torch").itm
    onnx = tiny_models("int8", image_runtime="onnx-int8").itm
    for text in ("a red circle", "a blue square above a green star"):
        want, _ = plain.score(text, plain.vision_states(pictures))
        got, _ = onnx.score(text, onnx.vision_states(pictures))
        assert max(abs(a - b) for a, b in zip(want, got)) < 0.05, (text, want, got)
    assert (export_folder(Settings(home=tmp_path / "int8", models="tiny").index_dir, "itm") / FILE).exists()


def tower_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, the number of pictures in every call of an ONNX Runtime image tower."""
    calls: list[int] = []
    run = OnnxImageTower.__call__

    def counted(self: OnnxImageTower, pixels: Any) -> Any:
        calls.append(len(pixels))
        return run(self, pixels)

    monkeypatch.setattr(OnnxImageTower, "__call__", counted)
    return calls


def test_the_int8_tower_takes_a_few_pictures_a_call(
        tiny_models: Callable[..., Models], shapes_pictures: list[Image.Image],
        monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A small batch keeps its activations in cache (`RUN_BATCH`): the session is called on
    chunks of that many pictures, and each chunk's states are the session's own for it."""
    itm = tiny_models("int8", image_runtime="onnx-int8").itm
    pictures = (shapes_pictures * (RUN_BATCH + 2))[:RUN_BATCH + 2]
    itm.vision_states(pictures[:1])  # builds the export and puts it in place
    vision = itm.model.vision_model
    assert isinstance(vision, OnnxVisionModel)
    calls = tower_calls(monkeypatch)
    states = itm.vision_states(pictures)
    assert calls == [RUN_BATCH, 2] and states.shape[0] == len(pictures)
    last = itm.processor(images=pictures[RUN_BATCH:], return_tensors="pt").pixel_values.numpy()
    assert torch.equal(states[RUN_BATCH:], torch.from_numpy(vision.states(last)).to(states.dtype))


def test_the_build_checks_the_int8_tower_in_the_calls_it_runs_in(
        tiny_models: Callable[..., Models], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dynamic quantization takes each activation's range over a whole call: the states admitted
    at build are the ones the tower gives in calls of `RUN_BATCH` pictures."""
    calls = tower_calls(monkeypatch)
    models = tiny_models("int8", image_runtime="onnx-int8")
    models.itm.vision.expect(12)
    meta = read_meta(models.settings.index_dir, "itm")
    assert meta is not None and meta["variants"]["onnx-int8"]["admitted"]
    assert sum(calls) == meta["calibration"] and set(calls) == {RUN_BATCH}, calls


def test_auto_builds_only_for_a_large_run_and_status_says_what_ran(
        tmp_path: Path, tiny_models: Callable[..., Models], shapes_pictures: list[Image.Image],
) -> None:
    from imgsearch.cli.app import app
    from typer.testing import CliRunner

    models = tiny_models("auto", blip_export_min_pictures=10)
    captioner = models.captioner
    assert captioner.vision.expect(3) == "torch"  # too few pictures: nothing built
    assert read_meta(models.settings.index_dir, "captioner") is None
    chosen = captioner.vision.expect(12)  # large enough: built, checked, timed, then chosen by speed
    meta = read_meta(models.settings.index_dir, "captioner")
    assert meta["variants"]["onnx-int8"]["admitted"] and meta["torch_img_s"] and meta["variants"]["onnx-int8"]["img_s"]
    assert chosen == choose(meta, "auto", models.runtime)[0]
    assert captioner.caption(shapes_pictures[:2])[0].startswith("a ")
    home = str(tmp_path / "auto")
    status = json.loads(CliRunner().invoke(app, ["status", "--home", home, "--models", "tiny", "--json"]).output)
    assert status["image_runtime"]["blip_vision"]["captioner"]["chosen"] == chosen
    text = CliRunner().invoke(app, ["status", "--home", home, "--models", "tiny"]).output
    assert "captioner vision" in text and chosen in text


def test_the_choice_rule() -> None:
    admitted = {"admitted": True, "why": "close", "img_s": 30.0}
    meta = {"torch_img_s": 10.0, "variants": {"onnx-int8": admitted}}
    assert choose(meta, "auto", CPU32)[0] == "onnx-int8"
    assert choose({**meta, "torch_img_s": 28.0}, "auto", CPU32)[0] == "torch"  # not clearly faster
    assert choose(meta, "auto", Runtime(torch.device("cuda"), torch.float16))[0] == "torch"
    assert choose(meta, "torch", CPU32)[0] == "torch"
    refused = {"torch_img_s": 1.0, "variants": {"onnx-int8": {**admitted, "admitted": False, "why": "far"}}}
    assert choose(refused, "auto", CPU32) == ("torch", "auto: the int8 variant was refused (far)")
    with pytest.raises(ConfigError, match="no admitted int8"):
        choose(refused, "onnx-int8", CPU32)
    with pytest.raises(ConfigError, match="not built"):
        choose(None, "onnx-int8", CPU32)


def test_admission_figures() -> None:
    states = torch.randn(4, 10, 16).numpy()
    assert admit_states(states, states)["admitted"]
    noisy = states + 0.5 * torch.randn(4, 10, 16).numpy()
    record = admit_states(states, noisy)
    assert not record["admitted"] and record["cos_min"] < 0.99 and "cos_min" in record["why"]


def test_a_captioning_run_that_took_int8_prepares_the_reranker_too(
        tmp_path: Path, shapes_folder: Path,
) -> None:
    from imgsearch.indexer import run_index
    from imgsearch.models.onnx_image import blip_vision_status

    settings = Settings(home=tmp_path / "home", models="tiny", dtype="float32", image_runtime="onnx-int8",
                        blip_export_min_pictures=5)
    run_index(settings, [shapes_folder], captions=True)
    assert (export_folder(settings.index_dir, "captioner") / FILE).exists()
    assert (export_folder(settings.index_dir, "itm") / FILE).exists()
    assert {role: c["chosen"] for role, c in blip_vision_status(settings.index_dir).items()} == {
        "captioner": "onnx-int8", "itm": "onnx-int8"}
    assert blip_vision_status(settings.index_dir)["captioner"]["decoder"].startswith("int8: admitted")
    small = Settings(home=tmp_path / "small", models="tiny", dtype="float32", image_runtime="onnx-int8",
                     blip_export_min_pictures=50)
    run_index(small, [shapes_folder], captions=True)  # 12 pictures: the reranker is left for later
    assert not export_folder(small.index_dir, "itm").exists()
