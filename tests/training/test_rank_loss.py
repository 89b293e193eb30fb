"""The listwise ITM loss ranks each relation sentence against its own hard negatives on the same
picture, and never calls a true sentence a negative (two identical objects: the flip is true)."""

from __future__ import annotations

import torch
from transformers import BlipForImageTextRetrieval

from imgsearch.shapes.world import Obj, Scene
from training.train_blip import make_config, rank_loss
from training.vocab import build_tokenizer

PAIR = Scene(200, 100, "white", (Obj("star", "red", "small", cx=40, cy=50, extent=20),
                                 Obj("circle", "blue", "small", cx=150, cy=50, extent=20)))
TWINS = Scene(200, 100, "white", (Obj("star", "red", "small", cx=40, cy=50, extent=20),
                                  Obj("star", "red", "small", cx=150, cy=50, extent=20)))
ALONE = Scene(100, 100, "gray", (Obj("square", "green", "large", cx=50, cy=50, extent=40),))


def test_relation_sentences_are_ranked_against_their_hard_negatives() -> None:
    tok = build_tokenizer()
    torch.manual_seed(0)
    itm = BlipForImageTextRetrieval(make_config(tok)).eval()
    states = torch.randn(3, 65, 128)
    texts = ["a red star left of a blue circle", "a red star left of a red star", "a green square"]
    assert rank_loss(itm, tok, [TWINS], texts[1:2], states[:1]) is None  # its only "negative" is true
    assert rank_loss(itm, tok, [ALONE], texts[2:], states[:1]) is None  # no relation, no group
    loss, right = rank_loss(itm, tok, [PAIR, TWINS, ALONE], texts, states)
    assert loss.item() > 0 and right in (0.0, 1.0)  # one group: the PAIR's sentence and its 3 negatives
    opt = torch.optim.Adam(itm.parameters(), lr=1e-3)
    for _ in range(15):  # the loss can be driven down: its gradient reaches the ITM head and encoder
        loss, right = rank_loss(itm, tok, [PAIR], texts[:1], states[:1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert right == 1.0 and loss.item() < 0.5
