"""BLIP's attention swapped for faster forms after loading must give upstream's results: ITM
reranking folds the cross-attention key/value projections into the query side (the bundled ITM
model, and a random BLIP whose text and vision widths differ, in fp32 and bf16; long texts, where
folding would cost more, take upstream's path), and the vision encoders run fused attention (the
same vision states, the same captions)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from transformers import BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval
from transformers.models.blip.modeling_blip import BlipAttention
from transformers.models.blip.modeling_blip_text import BlipTextSelfAttention

from imgsearch.models import blip_attention
from imgsearch.models.blip import load_captioner, load_itm
from imgsearch.models.blip_attention import (
    AbsorbedCrossAttention,
    FusedVisionAttention,
    absorb_cross_attention,
    attend_pictures,
)
from imgsearch.models.profiles import resolve_profile
from imgsearch.models.runtime import Runtime
from imgsearch.settings import Settings


def _cross_modules(model: BlipForImageTextRetrieval) -> list[torch.nn.Module]:
    return [layer.crossattention.self for layer in model.text_encoder.encoder.layer]


def _upstream(model: BlipForImageTextRetrieval) -> None:
    for module in _cross_modules(model):
        module.__class__ = BlipTextSelfAttention


def _tokens(itm) -> int:  # type: ignore[no-untyped-def]
    vision = itm.model.config.vision_config
    return (vision.image_size // vision.patch_size) ** 2 + 1


def test_bundled_itm_scores_are_upstreams() -> None:
    itm = load_itm(resolve_profile(Settings(models="tiny")).itm, Runtime("cpu", torch.float32))
    assert all(type(m) is AbsorbedCrossAttention for m in _cross_modules(itm.model))
    torch.manual_seed(0)
    states = torch.randn(20, _tokens(itm), 128)
    texts = ["a red circle", "a blue star left of a green square", "a small yellow triangle above a red circle"]
    fast = [itm.score(t, states) for t in texts]
    _upstream(itm.model)
    slow = [itm.score(t, states) for t in texts]
    for (fast_match, fast_itc), (slow_match, slow_itc) in zip(fast, slow):
        torch.testing.assert_close(torch.tensor(fast_match), torch.tensor(slow_match), rtol=0, atol=1e-5)
        assert fast_itc == slow_itc  # the text-only pass has no cross-attention


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_random_blip_with_narrow_vision_matches_upstream(dtype: torch.dtype, atol: float) -> None:
    torch.manual_seed(1)
    config = BlipConfig(
        text_config=dict(vocab_size=50, hidden_size=96, encoder_hidden_size=160, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=3, max_position_embeddings=64),
        vision_config=dict(hidden_size=160, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                           image_size=32, patch_size=8),
    )
    model = BlipForImageTextRetrieval(config).eval().to(dtype)
    states = torch.randn(5, 17, 160, dtype=dtype)
    ids = torch.randint(3, 50, (5, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # padded text rows must give the same result too

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model.text_encoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=states).last_hidden_state

    expected = run()
    assert absorb_cross_attention(model.text_encoder) == 2
    assert absorb_cross_attention(model.text_encoder) == 0  # already switched
    torch.testing.assert_close(run().float(), expected.float(), rtol=0, atol=atol)


def test_long_text_takes_upstreams_path(monkeypatch: pytest.MonkeyPatch) -> None:
    itm = load_itm(resolve_profile(Settings(models="tiny")).itm, Runtime("cpu", torch.float32))
    calls: list[int] = []
    upstream = BlipTextSelfAttention.forward

    def counting(self, hidden_states, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(hidden_states.shape[1])
        return upstream(self, hidden_states, *args, **kwargs)

    monkeypatch.setattr(BlipTextSelfAttention, "forward", counting)
    states = torch.randn(2, _tokens(itm), 128)
    itm.score("a red circle", states)
    short_cross = len(calls)
    calls.clear()
    itm.score(" ".join(["a red circle left of a blue star"] * 4), states)  # 4 heads x 30 tokens >= 128
    layers = len(itm.model.text_encoder.encoder.layer)
    assert len(calls) - short_cross == layers  # the long text also ran upstream's cross-attention


def _vision_upstream(vision_model: torch.nn.Module) -> None:
    for layer in vision_model.encoder.layers:
        layer.self_attn.__class__ = BlipAttention


def _pictures() -> list[Image.Image]:
    pictures = []
    for colour, box in (("red", (10, 10, 60, 50)), ("blue", (40, 30, 90, 90)), ("green", (0, 50, 40, 95))):
        im = Image.new("RGB", (120, 96), "white")
        ImageDraw.Draw(im).ellipse(box, fill=colour)
        pictures.append(im)
    return pictures


def test_fused_vision_states_are_upstreams() -> None:
    itm = load_itm(resolve_profile(Settings(models="tiny")).itm, Runtime("cpu", torch.float32))
    assert all(type(layer.self_attn) is FusedVisionAttention for layer in itm.model.vision_model.encoder.layers)
    fused = itm.vision_states(_pictures())
    _vision_upstream(itm.model.vision_model)
    torch.testing.assert_close(fused, itm.vision_states(_pictures()), rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_attention_picture_by_picture_is_the_fused_kernels(dtype: torch.dtype, rtol: float) -> None:
    """The per-picture form (scores in reused buffers) computes what the fused kernel does, for
    every picture of a batch; in bf16 within its rounding (both against the fp32 result)."""
    torch.manual_seed(2)
    q, k, v = (torch.randn(5, 4, 50, 16) for _ in range(3))
    exact = F.scaled_dot_product_attention(q, k, v, scale=0.25)
    with torch.inference_mode():
        apart = attend_pictures(q.to(dtype), k.to(dtype), v.to(dtype), 0.25).float()
        fused = F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), scale=0.25).float()
    assert float((apart - exact).norm() / exact.norm()) < rtol
    if dtype == torch.float32:
        torch.testing.assert_close(apart, fused, rtol=0, atol=1e-5)
    else:  # no worse than the fused kernel's own rounding
        assert float((apart - exact).norm()) < 2 * float((fused - exact).norm())


def test_vision_states_picture_by_picture_are_upstreams(monkeypatch) -> None:
    """Where the per-picture form measured faster (forced here), the vision states are still
    upstream's; the measurement itself is taken once per shape and kept."""
    itm = load_itm(resolve_profile(Settings(models="tiny")).itm, Runtime("cpu", torch.float32))
    vision = itm.model.vision_model
    monkeypatch.setattr(blip_attention, "_PER_PICTURE", {})
    itm.vision_states(_pictures())  # measures on first use, for this shape
    heads = vision.config.num_attention_heads
    shape = (heads, _tokens(itm), vision.config.hidden_size // heads)
    assert list(blip_attention._PER_PICTURE) == [(shape, torch.float32, torch.get_num_threads())]
    key = next(iter(blip_attention._PER_PICTURE))
    blip_attention._PER_PICTURE[key] = True
    apart = itm.vision_states(_pictures())
    blip_attention._PER_PICTURE[key] = False
    torch.testing.assert_close(apart, itm.vision_states(_pictures()), rtol=0, atol=1e-4)
    _vision_upstream(vision)
    torch.testing.assert_close(apart, itm.vision_states(_pictures()), rtol=0, atol=1e-4)


def test_fused_vision_states_in_bf16_differ_from_upstream_by_rounding_only() -> None:
    itm = load_itm(resolve_profile(Settings(models="tiny")).itm, Runtime("cpu", torch.bfloat16))
    fused = itm.vision_states(_pictures()).float()
    _vision_upstream(itm.model.vision_model)
    upstream = itm.vision_states(_pictures()).float()
    # Elementwise, bf16 rounding through four layers moves a few small values far: judge the whole.
    assert float((fused - upstream).norm() / upstream.norm()) < 1e-2
    assert float(torch.nn.functional.cosine_similarity(fused, upstream, dim=-1).min()) > 0.999


def test_captions_with_fused_vision_are_upstreams() -> None:
    captioner = load_captioner(resolve_profile(Settings(models="tiny")).captioner, Runtime("cpu", torch.float32))
    fused = captioner.caption(_pictures())
    _vision_upstream(captioner.model.vision_model)
    assert captioner.caption(_pictures()) == fused


def _random_captioner(dtype: torch.dtype) -> BlipForConditionalGeneration:
    torch.manual_seed(2)
    config = BlipConfig(
        text_config=dict(vocab_size=40, hidden_size=96, encoder_hidden_size=160, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=3, max_position_embeddings=64,
                         bos_token_id=1, eos_token_id=2, sep_token_id=2, pad_token_id=0),
        vision_config=dict(hidden_size=160, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                           image_size=32, patch_size=8, initializer_range=0.5),
    )
    return BlipForConditionalGeneration(config).eval().to(dtype)


@pytest.mark.parametrize("beams", [1, 2])
def test_generation_with_absorbed_decoder_cross_attention_is_upstreams(beams: int) -> None:
    """The decoder leaves its cache's cross keys/values empty and reads the vision states each
    step: the same tokens and scores, greedy or beam search (which reorders the cache)."""
    model = _random_captioner(torch.float32)
    pixels = torch.randn(4, 3, 32, 32)

    def generate() -> Any:
        with torch.inference_mode():
            return model.generate(pixel_values=pixels, max_new_tokens=12, num_beams=beams, do_sample=False,
                                  min_new_tokens=12, output_scores=True, return_dict_in_generate=True)

    expected = generate()
    assert absorb_cross_attention(model.text_decoder.bert) == 2
    got = generate()
    assert torch.equal(got.sequences, expected.sequences) and got.sequences.shape[1] > 10
    for fast, slow in zip(got.scores, expected.scores):
        torch.testing.assert_close(fast, slow, rtol=0, atol=1e-4)


def test_bundled_captioner_decodes_with_absorbed_cross_attention() -> None:
    captioner = load_captioner(resolve_profile(Settings(models="tiny")).captioner, Runtime("cpu", torch.float32))
    decoder_cross = [layer.crossattention.self for layer in captioner.model.text_decoder.bert.encoder.layer]
    assert all(type(m) is AbsorbedCrossAttention for m in decoder_cross)
    fast = captioner.caption(_pictures())
    for module in decoder_cross:
        module.__class__ = BlipTextSelfAttention
    assert captioner.caption(_pictures()) == fast
