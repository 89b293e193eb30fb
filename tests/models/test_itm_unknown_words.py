"""ITM's match probability is no evidence for a text holding a word its tokenizer does not know:
such a text matches no picture (the cutoff then returns nothing), while the same sentence in the
model's own words still matches the picture it describes."""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw

from imgsearch.models.blip import load_itm
from imgsearch.models.profiles import resolve_profile
from imgsearch.models.runtime import Runtime
from imgsearch.settings import Settings


def _red_circle() -> Image.Image:
    im = Image.new("RGB", (200, 200), "white")
    ImageDraw.Draw(im).ellipse((50, 50, 150, 150), fill=(220, 30, 30))
    return im


def test_a_text_with_an_unknown_word_matches_nothing() -> None:
    itm = load_itm(resolve_profile(Settings(models="tiny")).itm, Runtime("cpu", torch.float32))
    tokenizer = itm.processor.tokenizer
    assert tokenizer.unk_token_id in tokenizer("a red cat").input_ids  # "cat" is outside the world
    states = itm.vision_states([_red_circle()])
    known_match, known_itc = itm.score("a red circle", states)
    unknown_match, unknown_itc = itm.score("a red cat", states)
    assert known_match[0] > 0.5
    assert unknown_match == [0.0]
    assert len(unknown_itc) == 1 and unknown_itc[0] != 0.0  # the text-only side is still measured
