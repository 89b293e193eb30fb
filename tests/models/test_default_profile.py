"""The `default` profile's code path end to end without the hub: randomly initialised weights of
the real architectures (open_clip ViT-B-32-256; BLIP base with the hub models' processor
settings), saved as local files and given through the settings an air-gapped user would use.
Real resolutions (256 for this CLIP, 384 for BLIP), preprocessing and shapes are exercised."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from imgsearch.models import Models
from imgsearch.models.profiles import DEFAULT
from imgsearch.settings import Settings

from conftest import make_shapes


def _bert_like_tokenizer(folder: Path):  # type: ignore[no-untyped-def]
    """bert-base-uncased's id layout ([PAD]=0, [CLS]=101, [SEP]=102, [DEC]=30522, [ENC]=30523)
    with a made-up vocabulary, since the real vocab file is on the hub."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    vocab = {f"[unused{i}]": i for i in range(30522)}
    for i, tok in {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}.items():
        del vocab[f"[unused{i}]"]
        vocab[tok] = i
    for i, word in enumerate("a red blue green star circle square on the of left right".split()):
        del vocab[f"[unused{200 + i}]"]
        vocab[word] = 200 + i
    vocab["[DEC]"], vocab["[ENC]"] = 30522, 30523
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 101), ("[SEP]", 102)])
    return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                             cls_token="[CLS]", mask_token="[MASK]", bos_token="[DEC]",
                             additional_special_tokens=["[ENC]"])


@pytest.fixture(scope="module")
def base_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import open_clip
    from safetensors.torch import save_file
    from transformers import (BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval,
                              BlipImageProcessor, BlipProcessor)

    root = tmp_path_factory.mktemp("base-weights")
    torch.manual_seed(0)
    clip = open_clip.create_model(DEFAULT.clip_model, pretrained=None)
    clip_file = root / "open_clip_model.safetensors"
    save_file({k: v.half().contiguous() for k, v in clip.state_dict().items()}, str(clip_file))
    del clip
    # Salesforce/blip-*-base processor settings: 384 px, bicubic, OpenAI CLIP mean/std.
    image_processor = BlipImageProcessor(
        size={"height": 384, "width": 384}, resample=3, do_rescale=True, do_normalize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])
    processor = BlipProcessor(image_processor=image_processor, tokenizer=_bert_like_tokenizer(root))
    config = BlipConfig()  # the base architecture: ViT-B/16 at 384, 12-layer BERT-base text
    out = {"clip_pretrained": str(clip_file)}
    for cls, name in ((BlipForConditionalGeneration, "captioner"), (BlipForImageTextRetrieval, "itm")):
        model = cls(config).half()
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
        out[name] = str(root / name)
        del model
    return out


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
