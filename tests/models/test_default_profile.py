"""The `default` profile's code path end to end without the hub: randomly initialised weights of
the real architectures (open_clip ViT-B-32-256; BLIP base with the hub models' processor
settings), saved as local files and given through the settings an air-gapped user would use.
Real resolutions (256 for this CLIP, 384 for BLIP), preprocessing and shapes are exercised."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from imgsearch.models import Models
from imgsearch.models.random_base import write_random_base
from imgsearch.settings import Settings

from conftest import make_shapes


@pytest.fixture(scope="module")
def base_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return write_random_base(tmp_path_factory.mktemp("base-weights"))


def test_default_architectures_index_caption_and_rerank(base_weights: dict[str, str], tmp_path: Path) -> None:
    from imgsearch.indexer import index
    from imgsearch.searcher import search
    from imgsearch.stores import open_stores

    photos = tmp_path / "photos"
    make_shapes(photos, 3, seed=5)
    settings = Settings(home=tmp_path / "home", models="default", caption_max_tokens=4, batch_size=4,
                        decode_workers=2, **base_weights)
    models = Models(settings)
    assert models.clip.image_size == 256 and models.clip.dim == 512
    assert models.profile.clip_model == "ViT-B-32-256"
    with open_stores(settings, models.facts(), models.clip.dim) as stores:
        report = index([photos], stores, models)
        assert report.embedded == 3 and report.captioned == 3 and not report.skipped
        assert models.captioner.processor.image_processor.size["height"] == 384
        hits = search("a red star", stores, models, limit=3, rerank_k=3)
    assert len(hits) == 3 and all(h.itm_score is not None and 0 <= h.itm_score <= 1 for h in hits)
    states = models.itm.vision_states([Image.new("RGB", (500, 300))])
    assert tuple(states.shape) == (1, (384 // 16) ** 2 + 1, 768)
    assert float(states.float().std()) > 0.1  # random weights, not all zeros


def test_default_clip_text_tower_exports_with_its_bpe_tokenizer(base_weights: dict[str, str], tmp_path: Path) -> None:
    """open_clip's own BPE tokenizer becomes a `tokenizers` one that gives the same ids, odd text
    included (HTML entities, accents, emoji, case, truncation at 77 tokens)."""
    import numpy as np

    from imgsearch.models.onnx_text import OnnxTextEncoder
    from imgsearch.models.text_export import ensure_text_export, export_folder, read_meta

    models = Models(Settings(home=tmp_path / "home", models="default", **base_weights))
    clip = models.clip
    assert ensure_text_export(clip, tmp_path)
    encoder = OnnxTextEncoder(export_folder(tmp_path), read_meta(tmp_path))
    texts = ["a red bicycle", "Tom &amp; Jerry", "naïve café, crème brûlée", "🚲 at night", "  MiXeD\tcase ",
             "word " * 90]
    for text in texts:
        assert encoder.token_ids(text).tolist() == clip.tokenizer([text])[0].tolist(), text
    got, want = encoder.encode(texts), clip.encode_texts(texts)
    assert float((got * want).sum(1).min()) > 0.99  # random weights in bf16 against fp32
