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


@pytest.mark.parametrize("profile", ["ViT-B-32-256", "tiny"])
def test_a_templates_words_computed_once_give_open_clips_vectors(profile: str) -> None:
    """`encode_text_after`: the prompts of one template (its words before the fill computed once)
    get open_clip's own vectors, for fills of every length, one cut at the context length too."""
    from imgsearch.models.clip import encode_text_after, end_positions, plain_causal_blocks

    name = resolve_profile(Settings(models="tiny")).clip_model if profile == "tiny" else profile
    torch.manual_seed(0)
    model = open_clip.create_model(name).eval()
    tokenizer = open_clip.get_tokenizer(name)
    fills = ["cat", "red circle", "", "x-ray of a café", "word " * 90]
    tokens = tokenizer([f"a blurry photo of a {f}." for f in fills])
    head = tokenizer(["a blurry photo of a"])[0]
    k = int(end_positions(model, head[None])[0])
    assert plain_causal_blocks(model) and k == 6 and bool((tokens[:, :k] == head[:k]).all())
    with torch.inference_mode():
        expected = model.encode_text(tokens)
        got = encode_text_after(model, head[:k], tokens[:, k:int(end_positions(model, tokens).max()) + 1])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_encode_templated_falls_back_where_the_fill_changes_the_templates_tokens(tiny_settings) -> None:
    """A template whose last word the fill joins ("a photo of a{}": "ared") or that starts with the
    fill shares no computed words: those prompts run whole, with the same result as alone."""
    import numpy as np

    from imgsearch.models import Models

    clip = Models(tiny_settings.model_copy(update={"dtype": "float32"})).clip  # exact: no bf16 rounding
    fills = ["red circle", "blue square", "green star"]
    for template in ("a photo of a {}.", "a photo of a{}", "{} on a photo"):
        alone = np.concatenate([clip.encode_texts([template.format(f)]) for f in fills])
        np.testing.assert_allclose(clip.encode_templated(template, fills), alone, atol=1e-5)
