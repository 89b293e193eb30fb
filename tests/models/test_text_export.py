"""CLIP's text tower exported for the torch-free cold query: written only when it reproduces
open_clip (ids and vectors), kept while the model is the same, replaced when it is not, and a
failure only costs speed."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from imgsearch.models import Models
from imgsearch.models.onnx_text import OnnxTextEncoder
from imgsearch.models.text_export import ensure_text_export, export_folder, read_meta
from imgsearch.settings import Settings

SENTENCES = ["a red circle", "a small blue square left of a large green star", "A YELLOW Triangle!",
             "purple " * 40, "a photo of my cat"]


@pytest.fixture(scope="module")
def clip():
    clip = Models(Settings(models="tiny")).clip
    clip.word_tower = None  # the reference: torch itself, whatever export its home may hold
    return clip


def test_export_reproduces_the_model(clip, tmp_path: Path) -> None:
    assert ensure_text_export(clip, tmp_path)
    encoder = OnnxTextEncoder(export_folder(tmp_path), read_meta(tmp_path))
    for text in SENTENCES:
        assert encoder.token_ids(text).tolist() == clip.tokenizer([text])[0].tolist()
    got, want = encoder.encode(SENTENCES), clip.encode_texts(SENTENCES)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float((got * want).sum(1).min()) > 0.999  # the model in use may run in bf16
    assert read_meta(tmp_path)["clip_model"] == clip.model_id and read_meta(tmp_path)["dim"] == clip.dim


def test_same_model_is_kept_another_is_replaced(clip, tmp_path: Path) -> None:
    (tmp_path / ".text-encoder-killed").mkdir()  # a temporary folder left by a killed export
    ensure_text_export(clip, tmp_path)
    onnx = export_folder(tmp_path) / "text.onnx"
    written = onnx.stat().st_mtime_ns
    assert ensure_text_export(clip, tmp_path) and onnx.stat().st_mtime_ns == written
    other = SimpleNamespace(**{**vars(clip), "model_id": "another-clip"})
    assert ensure_text_export(other, tmp_path)
    assert read_meta(tmp_path)["clip_model"] == "another-clip"
    # no temporary folder left (the builders' lock file stays, as the image export's)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".text-encoder.lock"]


def test_the_graph_is_saved_optimised_for_this_onnx_runtime_and_made_again_for_another(
        clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The export keeps the graph as ONNX Runtime optimises it, so a cold session loads it as it
    is (optimisations off); an export made by another ONNX Runtime version is read with them on,
    and replaced by the next process that has CLIP loaded."""
    import onnxruntime

    assert ensure_text_export(clip, tmp_path)
    folder, meta = export_folder(tmp_path), read_meta(tmp_path)
    assert meta["optimized"] == "extended" and meta["ort"] == onnxruntime.__version__
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "text.data", "text.onnx", "tokenizer.json"]

    levels = []
    real = onnxruntime.InferenceSession

    def session(path, options, **kwargs):
        levels.append(options.graph_optimization_level)
        return real(path, options, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    want = OnnxTextEncoder(folder, meta).encode(SENTENCES)
    older = {**meta, "ort": "1.0.0"}
    got = OnnxTextEncoder(folder, older).encode(SENTENCES)
    assert levels == [onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
                      onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL]
    np.testing.assert_allclose(got, want, atol=1e-5)  # the same graph either way
    monkeypatch.undo()

    (folder / "meta.json").write_text(json.dumps(older))
    written = (folder / "text.onnx").stat().st_mtime_ns
    assert ensure_text_export(clip, tmp_path)
    assert read_meta(tmp_path)["ort"] == onnxruntime.__version__
    assert (folder / "text.onnx").stat().st_mtime_ns != written


def test_a_failed_export_writes_nothing_and_says_why(clip, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    odd = SimpleNamespace(**{**vars(clip), "tokenizer": lambda texts: None})  # no portable form
    with caplog.at_level(logging.WARNING):
        assert not ensure_text_export(odd, tmp_path)
    assert "queries load CLIP instead" in caplog.text
    assert read_meta(tmp_path) is None and [p.name for p in tmp_path.iterdir()] == [".text-encoder.lock"]


def test_a_damaged_export_falls_back_to_the_full_query(tmp_path: Path, shapes_folder: Path) -> None:
    from imgsearch.indexer import run_index
    from imgsearch.library.local import LocalIndex
    from imgsearch.searcher.request import SearchRequest, words

    settings = Settings(home=tmp_path / "home", models="tiny")
    run_index(settings, [shapes_folder], captions=False)
    request = SearchRequest((words("a red circle"),), limit=3, rerank_k=0)
    with LocalIndex(settings) as idx:
        assert len(idx.search(request)) == 3 and idx._models is None  # the export answered
    (export_folder(settings.index_dir) / "text.onnx").write_bytes(b"not a model")
    with LocalIndex(settings) as idx:
        assert len(idx.search(request)) == 3 and idx._models is not None  # CLIP loaded instead


def test_the_graph_runs_only_up_to_the_end_token(clip, tmp_path: Path) -> None:
    """Weights beside the graph, ids of any length: cut after the end-of-text token, alone or in a
    batch of mixed lengths, the vectors are those of the whole context."""
    import onnxruntime

    assert ensure_text_export(clip, tmp_path)
    folder, meta = export_folder(tmp_path), read_meta(tmp_path)
    assert meta["format"] == 3 and meta["pool"] in ("argmax", "eos") and (folder / "text.data").exists()
    encoder = OnnxTextEncoder(folder, meta)
    ids = np.stack([encoder.token_ids(t) for t in SENTENCES])
    whole = encoder.session.run(None, {"ids": ids})[0]  # the session itself: no cut
    np.testing.assert_allclose(whole, clip.encode_texts(SENTENCES), atol=2e-2)  # the model in use may be bf16
    ends = [int(np.flatnonzero(row == meta["eos_id"] if meta["pool"] == "eos" else row == row.max())[0]) for row in ids]
    for row, end in zip(ids, ends):
        for length in (end + 1, end + 2, len(row)):
            got = encoder.session.run(None, {"ids": row[None, :length]})[0]
            np.testing.assert_allclose(got[0], whole[ids.tolist().index(row.tolist())], atol=1e-5)
    np.testing.assert_allclose(encoder.run(ids), whole, atol=1e-5)  # cut at the batch's longest
    options = onnxruntime.SessionOptions()  # the product's options change speed, not the result
    plain = onnxruntime.InferenceSession(str(folder / "text.onnx"), options, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(plain.run(None, {"ids": ids})[0], whole, atol=1e-5)


def test_an_export_of_the_first_format_is_read_then_replaced(clip, tmp_path: Path) -> None:
    """An index exported before the cut (format 1: no "pool", the whole context each time) still
    answers cold queries; whoever has CLIP loaded next writes the current format."""
    assert ensure_text_export(clip, tmp_path)
    meta_file = export_folder(tmp_path) / "meta.json"
    old = {k: v for k, v in read_meta(tmp_path).items() if k not in ("pool", "eos_id")} | {"format": 1}
    meta_file.write_text(json.dumps(old))
    assert read_meta(tmp_path) == old
    encoder = OnnxTextEncoder(export_folder(tmp_path), old)
    assert float((encoder.encode(SENTENCES) * clip.encode_texts(SENTENCES)).sum(1).min()) > 0.999
    assert ensure_text_export(clip, tmp_path) and read_meta(tmp_path)["format"] == 3


def test_threads_are_physical_cores() -> None:
    from imgsearch.models.onnx_text import physical_cores, session_options

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= physical_cores() <= usable
    assert session_options().intra_op_num_threads == physical_cores()


def test_a_warm_process_embeds_a_few_words_through_the_export_and_many_with_torch(clip, tmp_path: Path) -> None:
    """`WordTower`: nothing until an export of this model is there; then a query's words take the
    warm session, a vocabulary's many prompts the model; an export of another model is not used."""
    from dataclasses import replace

    from imgsearch.models.clip import FEW_TEXTS
    from imgsearch.models.onnx_text import WordTower

    tower = WordTower(tmp_path, clip.model_id)
    warm = replace(clip, word_tower=tower)
    assert tower() is None
    np.testing.assert_array_equal(warm.encode_texts(SENTENCES[:1]), clip.encode_texts(SENTENCES[:1]))
    assert ensure_text_export(clip, tmp_path)
    assert tower() is not None and tower._encoder.session.get_session_options().intra_op_num_threads >= 1
    few = warm.encode_texts(SENTENCES[:2])
    exported = OnnxTextEncoder(export_folder(tmp_path), read_meta(tmp_path), warm=True)
    np.testing.assert_array_equal(few, exported.encode(SENTENCES[:2]))
    assert float((few * clip.encode_texts(SENTENCES[:2])).sum(1).min()) > 0.999  # torch may run bf16
    many = SENTENCES * (FEW_TEXTS // len(SENTENCES) + 1)
    np.testing.assert_array_equal(warm.encode_texts(many), clip.encode_texts(many))
    assert WordTower(tmp_path, "another-clip")() is None


def test_after_an_index_run_a_loaded_clip_embeds_words_through_its_export(tiny_settings: Settings,
                                                                          shapes_folder: Path) -> None:
    from imgsearch.indexer import run_index

    assert Models(tiny_settings).clip.word_tower() is None  # nothing exported yet
    run_index(tiny_settings, [shapes_folder], captions=False)
    exported = OnnxTextEncoder(export_folder(tiny_settings.index_dir), read_meta(tiny_settings.index_dir), warm=True)
    np.testing.assert_array_equal(Models(tiny_settings).clip.encode_texts(["a red circle"]),
                                  exported.encode(["a red circle"]))


def test_int8_variant_is_built_checked_and_used_where_int8_is_allowed(
        clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ensure_text_int8`: quantized from the saved fp32 graph, admitted by its cosine to the fp32
    export on the prompts (and by speed: measured faster here, as the build's timing would say on
    a quiet machine), recorded once; a warm session runs it where the image-runtime setting allows
    int8, fp32 elsewhere; `imgsearch status` says which."""
    from imgsearch.models import text_export
    from imgsearch.models.onnx_image import image_runtime_status
    from imgsearch.models.onnx_text import WordTower
    from imgsearch.models.text_export import INT8, admission_prompts, ensure_text_int8, wants_int8
    from imgsearch.tags import load_vocabulary

    assert ensure_text_int8(tmp_path, clip.model_id, SENTENCES) is None  # nothing to quantize yet
    assert ensure_text_export(clip, tmp_path)
    monkeypatch.setattr(text_export, "_query_ms", lambda fp32, int8: (2.0, 1.0))
    prompts = admission_prompts(load_vocabulary(Path(Models(Settings(models="tiny")).profile.tags)))
    record = ensure_text_int8(tmp_path, "another-clip", prompts)
    assert record is None and "int8" not in read_meta(tmp_path)  # an export of another model is left alone
    record = ensure_text_int8(tmp_path, clip.model_id, prompts)
    meta = read_meta(tmp_path)
    assert meta["int8"] == record and record["prompts"] == len(prompts) > 20
    assert record["admitted"] and record["build_s"] > 0, record["why"]
    assert record["cos_min"] >= 0.99 and record["top10"] >= 0.8 and "1.0 ms a query against 2.0" in record["why"]
    built = (export_folder(tmp_path) / INT8).stat().st_mtime_ns
    assert ensure_text_int8(tmp_path, clip.model_id, prompts) == record  # recorded: not built again
    assert (export_folder(tmp_path) / INT8).stat().st_mtime_ns == built

    fp32 = OnnxTextEncoder(export_folder(tmp_path), meta, warm=True)  # as `WordTower` opens them
    int8 = OnnxTextEncoder(export_folder(tmp_path), meta, warm=True, int8=True)
    got, want = int8.encode(SENTENCES), fp32.encode(SENTENCES)
    assert not np.array_equal(got, want) and float((got * want).sum(1).min()) > 0.99
    assert wants_int8(meta, "auto") and wants_int8(meta, "onnx-int8")
    assert not wants_int8(meta, "torch") and not wants_int8(meta, "onnx")
    for setting, int8_runs in (("auto", True), ("torch", False)):
        np.testing.assert_array_equal(WordTower(tmp_path, clip.model_id, setting)()(SENTENCES[:2]),
                                      (int8 if int8_runs else fp32).encode(SENTENCES[:2]))
        status = image_runtime_status(tmp_path, setting)["text_tower"]
        assert status["chosen"] == ("onnx-int8" if int8_runs else "onnx"), status


def test_int8_variant_slower_than_fp32_is_refused(clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imgsearch.models import text_export
    from imgsearch.models.text_export import INT8, ensure_text_int8, wants_int8

    assert ensure_text_export(clip, tmp_path)
    monkeypatch.setattr(text_export, "_query_ms", lambda fp32, int8: (1.0, 1.5))
    record = ensure_text_int8(tmp_path, clip.model_id, SENTENCES)
    assert not record["admitted"] and "not faster: 1.5 ms a query against 1.0 fp32" in record["why"]
    assert record["cos_min"] >= 0.99  # the quality passed: speed alone refused it
    assert not (export_folder(tmp_path) / INT8).exists() and not wants_int8(read_meta(tmp_path), "auto")


def test_int8_variant_refused_or_failed_leaves_the_fp32_graph_serving(
        clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imgsearch.models import image_export
    from imgsearch.models.onnx_text import WordTower
    from imgsearch.models.text_export import INT8, INT8_WEIGHTS, ensure_text_int8

    assert ensure_text_export(clip, tmp_path)

    def broken(source: Path, target: Path) -> None:
        raise RuntimeError("quantizer broke")

    monkeypatch.setattr(image_export, "quantize", broken)
    record = ensure_text_int8(tmp_path, clip.model_id, SENTENCES)
    assert not record["admitted"] and "quantizer broke" in record["why"]
    assert not (export_folder(tmp_path) / INT8).exists() and not (export_folder(tmp_path) / INT8_WEIGHTS).exists()
    assert read_meta(tmp_path)["int8"] == record  # refused once: not tried again by every run
    tower = WordTower(tmp_path, clip.model_id, "auto")
    fp32 = OnnxTextEncoder(export_folder(tmp_path), read_meta(tmp_path), warm=True)
    np.testing.assert_array_equal(tower()(SENTENCES[:1]), fp32.encode(SENTENCES[:1]))
    assert not any(p.name.startswith(".") for p in export_folder(tmp_path).iterdir())


def test_an_index_run_builds_the_int8_variant_once_the_index_is_large_enough(
        tmp_path: Path, shapes_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """auto: an index under `image_export_min_pictures` keeps the fp32 graph only (a first index
    of a small collection pays nothing more); one that reaches it gets the int8 variant, which the
    cold query's embedder then runs."""
    from imgsearch.indexer import run_index
    from imgsearch.library.local import LocalIndex
    from imgsearch.models import text_export
    from imgsearch.searcher.request import SearchRequest, words

    monkeypatch.setattr(text_export, "_query_ms", lambda fp32, int8: (2.0, 1.0))  # as a quiet machine measures
    small = Settings(home=tmp_path / "home", models="tiny", image_export_min_pictures=13)
    run_index(small, [shapes_folder], captions=False)  # 12 pictures
    assert "int8" not in read_meta(small.index_dir)
    large = Settings(home=tmp_path / "home", models="tiny", image_export_min_pictures=12)
    run_index(large, [shapes_folder], captions=False)  # nothing new to embed, but the index holds 12
    assert read_meta(large.index_dir)["int8"]["admitted"]
    request = SearchRequest((words("a red circle"),), limit=3, rerank_k=0)
    with LocalIndex(large) as idx:
        embedder, _ = idx._embedder(request)
        assert embedder.encoder.int8 and len(idx.search(request)) == 3 and idx._models is None
    with LocalIndex(Settings(home=tmp_path / "home", models="tiny", image_runtime="onnx")) as idx:
        assert not idx._embedder(request)[0].encoder.int8  # a setting that asks for fp32 gets it
