"""ITM reranking folds the cross-attention key/value projections into the query side: the scores
must be upstream's (the bundled ITM model, and a random BLIP whose text and vision widths differ,
in fp32 and bf16), and long texts, where folding would cost more, must take upstream's path."""

from __future__ import annotations

import pytest
import torch
from transformers import BlipConfig, BlipForImageTextRetrieval
from transformers.models.blip.modeling_blip_text import BlipTextSelfAttention

from imgsearch.models.absorbed_attention import AbsorbedCrossAttention, absorb_cross_attention
from imgsearch.models.blip import load_itm
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
