"""Randomly initialised weights of the `default` profile's real architectures (open_clip
ViT-B-32-256; BLIP base captioner and ITM with the hub models' processor settings), written as
local files. Tests and benchmarks use them to exercise the real resolutions, preprocessing and
shapes — and the speed, which does not depend on weight values — without the hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgsearch.models.profiles import DEFAULT

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


def base_overrides(folder: Path) -> dict[str, str]:
    """Settings fields that point the `default` profile at weights written by `write_random_base`."""
    return {"clip_pretrained": str(folder / "open_clip_model.safetensors"),
            "captioner": str(folder / "captioner"), "itm": str(folder / "itm")}


def bert_like_tokenizer() -> Any:
    """bert-base-uncased's id layout ([PAD]=0, [CLS]=101, [SEP]=102, [DEC]=30522, [ENC]=30523)
    with a made-up vocabulary, since the real vocabulary file is on the hub."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    vocab = {f"[unused{i}]": i for i in range(30522)}
    for i, tok in {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}.items():
        del vocab[f"[unused{i}]"]
        vocab[tok] = i
    for i, word in enumerate("a red blue green star circle square photo of the dog on left right".split()):
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


def write_random_base(folder: Path, seed: int = 0) -> dict[str, str]:
    """Write the three models (fp16 files, as the hub ships them); returns `base_overrides`."""
    import open_clip
    import torch
    from safetensors.torch import save_file
    from transformers import (BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval,
                              BlipImageProcessor, BlipProcessor)

    folder.mkdir(parents=True, exist_ok=True)
    paths = base_overrides(folder)
    torch.manual_seed(seed)
    clip = open_clip.create_model(DEFAULT.clip_model, pretrained=None)
    save_file({k: v.half().contiguous() for k, v in clip.state_dict().items()}, paths["clip_pretrained"])
    del clip
    image_processor = BlipImageProcessor(  # Salesforce/blip-*-base: 384 px, bicubic, CLIP mean/std
        size={"height": 384, "width": 384}, resample=3, do_rescale=True, do_normalize=True,
        image_mean=OPENAI_MEAN, image_std=OPENAI_STD)
    processor = BlipProcessor(image_processor=image_processor, tokenizer=bert_like_tokenizer())
    # base: ViT-B/16 at 384, 12-layer BERT-base text. BlipVisionConfig's default init range is
    # 1e-10 (pretrained weights overwrite it): in fp16 that is all zeros, so draw like the text.
    config = BlipConfig(vision_config={"initializer_range": 0.02})
    for cls, name in ((BlipForConditionalGeneration, "captioner"), (BlipForImageTextRetrieval, "itm")):
        model = cls(config).half()
        model.save_pretrained(paths[name])
        processor.save_pretrained(paths[name])
        del model
    return paths
