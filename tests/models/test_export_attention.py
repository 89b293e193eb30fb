"""The export-friendly self-attention: a small open_clip ViT (random weights, real modules) gives the
same vectors with it, in torch and through ONNX Runtime, its graph loses the packed projection's
copies and has each block's attention as ONNX Runtime's fused node, and calls it does not reproduce
go to the original module; a small BLIP vision tower gives the same states with its attention
exported the same way."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from imgsearch.models.export_attention import SelfAttention, plain_self_attention, swap_self_attention
from imgsearch.models.image_export import _export, _FloatTower
from open_clip.transformer import VisionTransformer
from torch import nn


@pytest.fixture(scope="module")
def vit() -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(image_size=32, patch_size=8, width=64, layers=2, heads=4, mlp_ratio=2.0,
                             output_dim=32).eval()


def _pixels(n: int = 5) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_every_block_is_swapped_and_gives_the_same_vectors_in_torch(vit: VisionTransformer) -> None:
    tower = _FloatTower(vit)
    want = tower.vectors(_pixels().numpy())
    assert swap_self_attention(tower) == 2
    assert all(isinstance(block.attn, SelfAttention) for block in tower.visual.transformer.resblocks)
    np.testing.assert_allclose(tower.vectors(_pixels().numpy()), want, atol=1e-5)


def test_the_onnx_graph_reproduces_open_clip_without_the_packed_copies(vit: VisionTransformer, tmp_path: Path) -> None:
    import onnx
    import onnxruntime

    pixels = _pixels()
    plain, swapped = _FloatTower(vit), _FloatTower(vit)
    want = plain.vectors(pixels.numpy())
    swap_self_attention(swapped)
    ops = {}
    for name, tower in (("plain", plain), ("swapped", swapped)):
        _export(tower, pixels[:2], tmp_path / f"{name}.onnx")
        ops[name] = [node.op_type for node in onnx.load(str(tmp_path / f"{name}.onnx")).graph.node]
    session = onnxruntime.InferenceSession(str(tmp_path / "swapped.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixels": pixels.numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert ops["plain"].count("Gather") > ops["swapped"].count("Gather")
    assert ops["swapped"].count("Transpose") < ops["plain"].count("Transpose")
    assert ops["swapped"].count("MultiHeadAttention") == 2  # one node a block
    assert "Softmax" not in ops["swapped"]


def test_calls_it_does_not_reproduce_go_to_the_original(vit: VisionTransformer) -> None:
    mha = copy.deepcopy(vit.transformer.resblocks[0].attn)
    attention = SelfAttention(mha)
    x, other = torch.randn(2, 5, 64), torch.randn(2, 7, 64)
    mask = torch.zeros(5, 5)
    mask[:, -1] = float("-inf")
    with torch.no_grad():
        for args, kwargs in (((x, other, other), {"need_weights": False}),
                             ((x, x, x), {"need_weights": False, "attn_mask": mask})):
            np.testing.assert_allclose(attention(*args, **kwargs)[0], mha(*args, **kwargs)[0], atol=1e-6)
        np.testing.assert_allclose(attention(x, x, x, need_weights=False)[0], mha(x, x, x, need_weights=False)[0],
                                   atol=1e-5)
        assert attention(x, x, x)[1] is not None  # weights asked for: the original gives them


@pytest.mark.parametrize("change", ["sequence_first", "no_bias", "dropout", "bias_kv"])
def test_what_it_cannot_reproduce_is_left_alone(change: str) -> None:
    options = {"sequence_first": {"batch_first": False}, "no_bias": {"bias": False},
               "dropout": {"dropout": 0.1}, "bias_kv": {"add_bias_kv": True}}[change]
    mha = nn.MultiheadAttention(64, 4, **{"batch_first": True, **options})
    holder = nn.Sequential(mha)
    assert not plain_self_attention(mha)
    assert swap_self_attention(holder) == 0 and holder[0] is mha


@pytest.fixture(scope="module")
def blip_vision() -> nn.Module:
    from transformers import BlipVisionConfig, BlipVisionModel

    torch.manual_seed(0)
    config = BlipVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, image_size=48, patch_size=8)
    return BlipVisionModel(config).eval()


def test_blip_vision_attention_exports_as_one_fused_node_with_the_same_states(blip_vision: nn.Module,
                                                                             tmp_path: Path) -> None:
    """transformers' BLIP vision tower (random weights) gives the same states with its attention
    swapped, in torch and through ONNX Runtime, where each layer's attention is one node."""
    import onnx
    import onnxruntime
    from imgsearch.models.blip_vision import _export, _FloatVision
    from imgsearch.models.export_attention import BlipSelfAttention, swap_blip_vision_attention

    pixels = torch.randn(3, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    tower = _FloatVision(blip_vision)
    want = tower.states(pixels.numpy())
    assert swap_blip_vision_attention(tower.vision) == 2
    assert all(isinstance(layer.self_attn, BlipSelfAttention) for layer in tower.vision.encoder.layers)
    np.testing.assert_allclose(tower.states(pixels.numpy()), want, atol=1e-5)
    _export(tower, pixels[:2], tmp_path / "vision.onnx")
    nodes = onnx.load(str(tmp_path / "vision.onnx")).graph.node
    fused = [n for n in nodes if n.op_type == "MultiHeadAttention"]
    assert len(fused) == 2 and {n.domain for n in fused} == {"com.microsoft"}
    assert not [n for n in nodes if n.op_type == "Softmax"]  # no attention left outside the fused node
    session = onnxruntime.InferenceSession(str(tmp_path / "vision.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"pixels": pixels.numpy()})[0], want, atol=1e-4)
