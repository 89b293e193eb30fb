"""CLIP's image tower through ONNX Runtime: fp32 reproduces torch on real pictures, int8 is used
only when its admission check passes (and refused by a stricter one), the export is built once per
model, `imgsearch status` says what embeds and why, and an index built through ONNX finds what a
torch-built one finds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from imgsearch.errors import ConfigError
from imgsearch.models import Models, image_export
from imgsearch.models.clip import load_clip
from imgsearch.models.image_export import admit, ensure_image_export, top_k_agreement
from imgsearch.models.onnx_image import CHOICE, export_folder, image_runtime_status, read_meta
from imgsearch.settings import Settings
from PIL import Image


def _pictures(folder: Path) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.*"))]


def _torch_fp32(settings: Settings):
    """The tower as torch runs it in fp32, without any picker: the reference."""
    from imgsearch.models.profiles import resolve_profile
    from imgsearch.models.runtime import pick_runtime

    return load_clip(resolve_profile(settings), pick_runtime("cpu", "float32"))


def test_onnx_fp32_reproduces_torch_on_real_pictures(tmp_path: Path, shapes_folder: Path) -> None:
    settings = Settings(home=tmp_path / "home", models="tiny", dtype="float32", image_runtime="onnx")
    clip = Models(settings).clip
    pictures = _pictures(shapes_folder)
    got = clip.encode_images(pictures)  # the product's preprocessing, then the ONNX tower
    assert clip.image_runtime == "onnx"
    want = _torch_fp32(settings).encode_images(pictures)
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert float((got * want).sum(1).min()) > 0.99999
    variants = read_meta(settings.index_dir)["variants"]
    assert variants["onnx"]["admitted"] and variants["onnx"]["cos_min"] > 0.99999


def test_int8_is_admitted_by_the_rule_and_used_by_auto_where_torch_runs_fp32(tmp_path: Path,
                                                                             shapes_folder: Path) -> None:
    settings = Settings(home=tmp_path / "home", models="tiny", dtype="float32", image_export_min_pictures=0)
    clip = Models(settings).clip
    got = clip.encode_images(_pictures(shapes_folder))
    record = read_meta(settings.index_dir)["variants"]["onnx-int8"]
    assert record["admitted"], record["why"]
    assert record["cos_min"] >= image_export.THRESHOLDS["cos_min"] and record["top10"] >= image_export.THRESHOLDS["top10"]
    assert clip.image_runtime == "onnx-int8"
    fp32 = read_meta(settings.index_dir)["variants"]["onnx"]  # not run: int8, made from it, was admitted
    assert fp32["admitted"] and fp32["img_s"] is None and "not run" in fp32["why"] and "cos_min" not in fp32
    want = _torch_fp32(settings).encode_images(_pictures(shapes_folder))
    assert float((got * want).sum(1).min()) >= image_export.THRESHOLDS["cos_min"]  # holds beyond the calibration set


def test_a_stricter_rule_refuses_int8_and_auto_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          shapes_folder: Path) -> None:
    monkeypatch.setattr(image_export, "THRESHOLDS", {"cos_min": 0.99, "cos_mean": 0.9999999, "top10": 0.8})
    settings = Settings(home=tmp_path / "home", models="tiny", dtype="float32", image_export_min_pictures=0)
    clip = Models(settings).clip
    clip.encode_images(_pictures(shapes_folder)[:2])
    variants = read_meta(settings.index_dir)["variants"]
    assert not variants["onnx-int8"]["admitted"] and "cos_mean" in variants["onnx-int8"]["why"]
    assert variants["onnx"]["cos_min"] > 0.99999 and variants["onnx"]["img_s"] > 0  # int8 refused: fp32 is run
    assert clip.image_runtime == "onnx"  # fp32 ONNX reproduces torch even under that rule
    status = image_runtime_status(settings.index_dir, "auto")
    assert status["chosen"] == "onnx" and status["variants"]["onnx-int8"]["admitted"] is False
    # forcing a refused variant is an error that says why, not a silent fallback
    forced = Models(settings.model_copy(update={"image_runtime": "onnx-int8"})).clip
    with pytest.raises(ConfigError, match="refused.*cos_mean"):
        forced.encode_images(_pictures(shapes_folder)[:1])


def test_auto_builds_the_export_only_for_a_run_large_enough_to_pay_for_it(tmp_path: Path,
                                                                          shapes_folder: Path) -> None:
    settings = Settings(home=tmp_path / "home", models="tiny", dtype="float32", image_export_min_pictures=50)
    clip = Models(settings).clip
    pictures = _pictures(shapes_folder)[:4]
    clip.expect(len(pictures))  # a small run (or a picture query: nothing announced) goes without
    clip.encode_images(pictures)
    assert clip.image_runtime == "torch" and read_meta(settings.index_dir) is None
    status = image_runtime_status(settings.index_dir, "auto")
    assert status["chosen"] == "torch" and "fewer than" in status["why"]
    clip.expect(50)  # a large run builds it, then the export serves every later run, large or small
    clip.encode_images(pictures)
    # torch runs float32 here (dtype set), whatever the CPU: the admitted int8 variant replaces it
    assert read_meta(settings.index_dir) is not None and clip.image_runtime == "onnx-int8"
    later = Models(settings).clip
    later.encode_images(pictures)
    assert later.image_runtime == "onnx-int8"


def test_admission_figures() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(40, 16)).astype(np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert admit(ref, ref)["admitted"] and top_k_agreement(ref, ref) == 1.0
    shuffled = ref[rng.permutation(40)]
    verdict = admit(ref, shuffled)
    assert not verdict["admitted"] and "cos_min" in verdict["why"] and verdict["top10"] < 0.5


def test_the_export_is_built_once_per_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = Models(Settings(home=tmp_path / "home", models="tiny")).clip
    meta = ensure_image_export(clip, tmp_path)
    files = {p.name: p.stat().st_mtime_ns for p in export_folder(tmp_path).iterdir()}
    assert {"fp32.onnx", "int8.onnx", "meta.json"} <= set(files)

    def no_rebuild(*args: object) -> None:
        raise AssertionError("rebuilt")

    monkeypatch.setattr(image_export, "_build", no_rebuild)
    assert ensure_image_export(clip, tmp_path) == meta
    assert {p.name: p.stat().st_mtime_ns for p in export_folder(tmp_path).iterdir()} == files
    monkeypatch.undo()  # an export of other weights (retrained: another digest) is built again
    meta_path = export_folder(tmp_path) / "meta.json"
    meta_path.write_text(json.dumps({**meta, "clip_model": "another@model"}))
    again = ensure_image_export(clip, tmp_path)
    assert again["clip_model"] == clip.model_id and again["variants"]["onnx"]["admitted"]


def test_a_failed_export_costs_only_speed_and_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            shapes_folder: Path) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("exporter limit")

    monkeypatch.setattr(image_export, "_export", broken)
    settings = Settings(home=tmp_path / "home", models="tiny", dtype="float32", image_export_min_pictures=0)
    clip = Models(settings).clip
    assert clip.encode_images(_pictures(shapes_folder)[:2]).shape == (2, clip.dim)
    assert clip.image_runtime == "torch"
    status = image_runtime_status(settings.index_dir, "auto")
    assert status["chosen"] == "torch" and "exporter limit" in status["why"]
    monkeypatch.setattr(image_export, "_build", lambda *a: pytest.fail("retried"))
    assert ensure_image_export(clip, settings.index_dir)["error"]


def test_a_gpu_or_fast_bf16_keeps_torch_unless_onnx_measured_faster() -> None:
    from imgsearch.models.runtime import Runtime

    admitted = {"admitted": True, "why": "ok", "img_s": 10.0}
    meta = {"variants": {"onnx": admitted, "onnx-int8": admitted}, "torch_img_s": 20.0}
    assert image_export.choose(meta, "auto", Runtime(torch.device("cpu"), torch.bfloat16))[0] == "torch"
    assert image_export.choose({**meta, "torch_img_s": 5.0}, "auto",
                               Runtime(torch.device("cpu"), torch.bfloat16))[0] in ("onnx", "onnx-int8")
    assert image_export.choose(meta, "auto", Runtime(torch.device("cuda"), torch.float16))[0] == "torch"
    assert image_export.choose(meta, "auto", Runtime(torch.device("cpu"), torch.float32))[0] == "onnx-int8"
    assert image_export.choose(meta, "torch", Runtime(torch.device("cpu"), torch.float32))[0] == "torch"


def test_status_reports_the_runtime_and_an_onnx_index_finds_what_torch_finds(tmp_path: Path,
                                                                           shapes_folder: Path) -> None:
    from imgsearch.cli.app import app
    from imgsearch.indexer import run_index
    from imgsearch.library.local import LocalIndex
    from imgsearch.searcher.request import SearchRequest, words
    from typer.testing import CliRunner

    found = {}
    for runtime in ("torch", "auto"):
        settings = Settings(home=tmp_path / runtime, models="tiny", image_runtime=runtime, image_export_min_pictures=0)
        run_index(settings, [shapes_folder], captions=False)
        with LocalIndex(settings) as idx:
            found[runtime] = [[Path(h.path).name for h in idx.search(SearchRequest((words(q),), limit=5, rerank_k=0))]
                              for q in ("a red circle", "a blue square", "a green star")]
            status = idx.status()["image_runtime"]
        # what the product's rule (unit-tested above) makes of this CPU and this run's measurements
        expected = image_export.choose(read_meta(settings.index_dir), runtime, Models(settings).clip.runtime)[0]
        assert status["chosen"] == expected and status["setting"] == runtime and status["why"]
        assert (export_folder(settings.index_dir) / CHOICE).exists()
    assert found["auto"] == found["torch"]

    result = CliRunner().invoke(app, ["status", "--home", str(tmp_path / "auto"), "--models", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["image_runtime"]["chosen"] == expected
    text = CliRunner().invoke(app, ["status", "--home", str(tmp_path / "auto"), "--models", "tiny"])
    assert "image runtime" in text.output and expected in text.output
