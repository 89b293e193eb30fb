"""Base-size weights of the `default` profile's architectures, randomly initialised.

Speed does not depend on weight values, and the real weights need the network: so, as
tests/models/test_default_profile.py does, the real architectures (open_clip ViT-B-32-256; BLIP
base captioner and ITM with the hub models' processor settings) are built with random weights,
saved once under OUT_DIR/weights and given to imgsearch the way an air-gapped user would
(Settings clip_pretrained / captioner / itm)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .child import Runner

READY = "ready.json"


def base_settings(folder: Path) -> dict[str, str]:
    """Settings overrides (and so IMGSEARCH_* variables) that select the random base weights."""
    return {
        "models": "default",
        "clip_pretrained": str(folder / "open_clip_model.safetensors"),
        "captioner": str(folder / "captioner"),
        "itm": str(folder / "itm"),
    }


def ensure_base_weights(folder: Path, runner: Runner) -> dict[str, str]:
    """Build the weights in a child process unless a finished build is already there."""
    if not (folder / READY).exists():
        runner.run("weights", {"folder": str(folder)})
    return base_settings(folder)


def _bert_like_tokenizer() -> Any:
    """bert-base-uncased's special-token ids with a made-up vocabulary (the real one is on the hub)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    vocab = {f"[unused{i}]": i for i in range(30522)}
    for i, tok in {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}.items():
        del vocab[f"[unused{i}]"]
        vocab[tok] = i
    for i, word in enumerate("a red blue green photo of the dog cat on in beach street".split()):
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


def build_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: write the three models into args["folder"] (fp16 files, as the hub ships)."""
    import time

    import open_clip
    import torch
    from safetensors.torch import save_file
    from transformers import (BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval,
                              BlipImageProcessor, BlipProcessor)

    from imgsearch.models.profiles import DEFAULT

    start = time.perf_counter()
    folder = Path(args["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    paths = base_settings(folder)
    torch.manual_seed(0)
    clip = open_clip.create_model(DEFAULT.clip_model, pretrained=None)
    save_file({k: v.half().contiguous() for k, v in clip.state_dict().items()}, paths["clip_pretrained"])
    del clip
    # Salesforce/blip-*-base processor settings: 384 px, bicubic, OpenAI CLIP mean/std.
    image_processor = BlipImageProcessor(
        size={"height": 384, "width": 384}, resample=3, do_rescale=True, do_normalize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])
    processor = BlipProcessor(image_processor=image_processor, tokenizer=_bert_like_tokenizer())
    config = BlipConfig()  # base: ViT-B/16 at 384, 12-layer BERT-base text
    for cls, name in ((BlipForConditionalGeneration, "captioner"), (BlipForImageTextRetrieval, "itm")):
        model = cls(config).half()
        model.save_pretrained(paths[name])
        processor.save_pretrained(paths[name])
        del model
    took = time.perf_counter() - start
    (folder / READY).write_text(json.dumps({"clip": DEFAULT.clip_model, "seconds": took}))
    return {"seconds": took}
