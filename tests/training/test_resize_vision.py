"""A BLIP model continued at a larger input size keeps what its ViT learned about position: the
position table is interpolated, the saved model and its processor both take the new size, and
the model at its old size is left untouched."""

from __future__ import annotations

import torch
from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval, BlipProcessor

from training.train_blip import make_config, resize_vision, save
from training.vocab import build_tokenizer


def test_a_captioner_grows_to_144_px_and_saves_at_that_size(tmp_path) -> None:
    tok = build_tokenizer()
    torch.manual_seed(0)
    config = make_config(tok, patch=12, size=96)
    captioner = BlipForConditionalGeneration(config).eval()
    itm = BlipForImageTextRetrieval(config).eval()
    before = captioner.vision_model.embeddings.position_embedding.detach().clone()  # (1, 1 + 8*8, 128)

    resize_vision(itm, 96)  # same size: nothing changes
    assert itm.vision_model.embeddings.position_embedding.shape == before.shape

    resize_vision(captioner, 144)
    table = captioner.vision_model.embeddings.position_embedding.detach()
    assert table.shape == (1, 1 + 12 * 12, 128)
    assert torch.equal(table[:, 0], before[:, 0])  # [CLS] keeps its embedding
    old = before[0, 1:].reshape(8, 8, 128)
    new = table[0, 1:].reshape(12, 12, 128)
    # a smooth stretch of the old grid: each corner of the new one is nearest its old corner
    for (r, c), (r0, c0) in {(0, 0): (0, 0), (0, 11): (0, 7), (11, 0): (7, 0), (11, 11): (7, 7)}.items():
        dists = ((old - new[r, c]) ** 2).sum(-1)
        assert divmod(int(dists.argmin()), 8) == (r0, c0)

    with torch.no_grad():
        out = captioner.generate(pixel_values=torch.randn(2, 3, 144, 144), max_new_tokens=4)
    assert out.shape[0] == 2

    save(captioner, itm, tok, tmp_path)
    loaded = BlipForConditionalGeneration.from_pretrained(str(tmp_path / "captioner"))
    assert loaded.config.vision_config.image_size == 144
    assert BlipProcessor.from_pretrained(str(tmp_path / "captioner")).image_processor.size["height"] == 144
    assert BlipProcessor.from_pretrained(str(tmp_path / "itm")).image_processor.size["height"] == 96
    assert torch.allclose(loaded.vision_model.embeddings.position_embedding.float(), table.half().float())
