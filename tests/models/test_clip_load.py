"""CLIP built without drawing random weights first (its checkpoint replaces them all) holds
exactly what open_clip's own load gives, buffers computed at build time included, and leaves
torch's init functions as they were."""

from __future__ import annotations

import open_clip
import torch

from imgsearch.models.clip import load_clip
from imgsearch.models.profiles import resolve_profile
from imgsearch.models.runtime import Runtime
from imgsearch.settings import Settings


def test_a_clip_built_without_random_weights_is_open_clips_own() -> None:
    profile = resolve_profile(Settings(models="tiny"))
    init_before = {name: getattr(torch.nn.init, name) for name in ("uniform_", "normal_", "kaiming_uniform_")}
    clip = load_clip(profile, Runtime(torch.device("cpu"), torch.float32))
    assert {name: getattr(torch.nn.init, name) for name in init_before} == init_before
    reference = open_clip.create_model(profile.clip_model).eval()  # drawn, then loaded by open_clip
    ours = dict(clip.model.named_parameters()) | dict(clip.model.named_buffers())
    theirs = dict(reference.named_parameters()) | dict(reference.named_buffers())
    assert ours.keys() == theirs.keys() and "attn_mask" in ours  # a buffer made at build, not loaded
    for name, tensor in theirs.items():
        torch.testing.assert_close(ours[name], tensor, rtol=0, atol=0, msg=name)
    torch.manual_seed(0)  # and the model still draws random weights where no checkpoint is loaded
    drawn = open_clip.create_model(profile.clip_model, load_weights=False)
    assert not torch.equal(drawn.text_projection, reference.text_projection)
