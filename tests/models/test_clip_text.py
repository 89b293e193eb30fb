"""CLIP text encoding cut at the end-of-text token gives exactly open_clip's vectors: the tower is
causal and pools there, so the cut only saves work (ViT-B-32's and the bundled tiny tower)."""

from __future__ import annotations

import open_clip
import pytest
import torch

from imgsearch.models.clip import encode_text_up_to_end
from imgsearch.models.profiles import resolve_profile
from imgsearch.settings import Settings

TEXTS = ["a red bicycle", "a small blue square left of a large green star on a gray background", "",
         "word " * 90]  # mixed lengths, an empty text and one cut at the context length


@pytest.mark.parametrize("profile", ["ViT-B-32-256", "tiny"])
def test_cut_encoding_equals_open_clips(profile: str) -> None:
    name = resolve_profile(Settings(models="tiny")).clip_model if profile == "tiny" else profile
    torch.manual_seed(0)
    model = open_clip.create_model(name).eval()  # random weights for ViT-B-32: no download
    tokens = open_clip.get_tokenizer(name)(TEXTS)
    with torch.inference_mode():
        expected = model.encode_text(tokens)
        got = encode_text_up_to_end(model, tokens)
        single = torch.cat([encode_text_up_to_end(model, tokens[i:i + 1]) for i in range(len(TEXTS))])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(single, expected, rtol=0, atol=1e-5)  # each cut to its own length
