"""The ViT pre-training labels each patch with the object over it, in the squashed frame the
models see: a wrong mapping would teach positions the captioner's relations then contradict."""

from __future__ import annotations

import numpy as np

from imgsearch.shapes.world import COLOURS, SHAPES, Obj, Scene
import torch

from training.pretrain_vit import DenseTargets, centres, patch_labels, present


def test_objects_label_the_patches_under_them_in_the_squashed_frame() -> None:
    # A wide picture: the star fills the left quarter; the circle, narrower than a patch, straddles two.
    scene = Scene(400, 100, "white", (Obj("star", "red", "large", cx=50, cy=50, extent=100),
                                      Obj("circle", "blue", "small", cx=250, cy=50, extent=40)))
    shape, colour = patch_labels(scene, 8)
    shape, colour = shape.reshape(8, 8), colour.reshape(8, 8)
    star, circle = 1 + SHAPES.index("star"), 1 + SHAPES.index("circle")
    assert (shape[:, :2] == star).all() and (colour[:, :2] == 1 + COLOURS.index("red")).all()
    assert (shape[3:5, 4:6] == circle).all() and (colour[3:5, 4:6] == 1 + COLOURS.index("blue")).all()
    assert (shape[:, 7] == 0).all() and (shape[0, 4:6] == 0).all()  # background right and above the circle
    pairs = present(scene)
    assert pairs.sum() == 2 and pairs[COLOURS.index("red") * len(SHAPES) + SHAPES.index("star")] == 1


def test_a_later_object_covers_an_earlier_one() -> None:
    scene = Scene(96, 96, "gray", (Obj("square", "green", "large", cx=48, cy=48, extent=96),
                                   Obj("triangle", "yellow", "small", cx=48, cy=48, extent=20)))
    shape, _ = patch_labels(scene, 8)
    assert shape.reshape(8, 8)[3, 3] == 1 + SHAPES.index("triangle")
    assert np.count_nonzero(shape == 1 + SHAPES.index("square")) == 64 - 4


def test_centres_are_fractions_of_the_squashed_frame_for_the_pairs_present() -> None:
    scene = Scene(400, 100, "white", (Obj("star", "red", "large", cx=50, cy=50, extent=100),
                                      Obj("circle", "blue", "small", cx=250, cy=25, extent=20)))
    xy, mask = centres(scene), present(scene)  # present() is the mask of the pairs centres() fills
    star = COLOURS.index("red") * len(SHAPES) + SHAPES.index("star")
    circle = COLOURS.index("blue") * len(SHAPES) + SHAPES.index("circle")
    assert mask.sum() == 2 and mask[star] == 1 and mask[circle] == 1
    assert np.allclose(xy[star], (0.125, 0.5)) and np.allclose(xy[circle], (0.625, 0.25))
    assert not xy[mask == 0].any()


def test_position_targets_are_learnable_from_position_embeddings() -> None:
    """Patch targets run row-major, as BLIP's patch embedding flattens the grid, and the heads
    can fit them: a few steps on fixed states drive the position and centre losses down."""
    grid, width = 4, 16
    torch.manual_seed(0)
    targets = DenseTargets(width, grid, positions=True)
    assert targets.grid_xy[1].tolist() == [0.375, 0.125]  # row-major: the second patch is right of the first
    position = torch.randn(1, grid * grid + 1, width)
    scene = Scene(96, 96, "gray", (Obj("square", "green", "large", cx=20, cy=20, extent=30),))
    opt = torch.optim.Adam(targets.heads.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        loss, figures = targets.loss(position.expand(2, -1, -1), [scene, scene])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert "centre_err" in figures and figures["centre_err"] < 0.1
    assert losses[-1] < 0.2 * losses[0]


def test_axis_target_follows_the_worlds_larger_gap() -> None:
    """[CLS] learns side by side (1) or stacked (0) for two objects, judged in the picture's own
    pixels as the world judges relations; one-object pictures are left out."""
    wide = Scene(400, 100, "white", (Obj("star", "red", "small", cx=50, cy=30, extent=20),
                                     Obj("circle", "blue", "small", cx=110, cy=80, extent=20)))
    tall = Scene(100, 400, "white", (Obj("star", "red", "small", cx=30, cy=50, extent=20),
                                     Obj("circle", "blue", "small", cx=80, cy=110, extent=20)))
    alone = Scene(96, 96, "gray", (Obj("square", "green", "large", cx=40, cy=40, extent=30),))
    torch.manual_seed(0)
    targets = DenseTargets(8, 2, axis=True)
    states = torch.randn(3, 5, 8, requires_grad=True)
    opt = torch.optim.Adam([states, *targets.heads.parameters()], lr=0.1)
    for _ in range(40):
        loss, figures = targets.loss(states, [wide, alone, tall])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert figures["axis_acc"] == 1.0
    guess = targets.heads["axis"](states[:, 0]).squeeze(1)
    assert guess[0] > 0 > guess[2]  # wide: 60 px across vs 50 down; tall: 50 across vs 60 down
