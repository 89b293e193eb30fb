"""What both trainers share: the pre-rendered set, the sentences drawn for a scene, batching by
groups (so hard-negative twins share a batch), the match matrix, checkpoint saving."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from imgsearch.shapes.world import Obj, Query, Scene, describe, matches, parse

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def load_set(folder: Path) -> tuple[np.ndarray, list[Scene], np.ndarray]:
    pixels = np.load(folder / "pixels.npy", mmap_mode="r")
    raw = json.loads((folder / "scenes.json").read_text())
    scenes = [Scene(d["width"], d["height"], d["background"], tuple(Obj(**o) for o in d["objects"])) for d in raw]
    return pixels, scenes, np.load(folder / "groups.npy")


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> normalised NCHW float, as ToTensor + Normalize do."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def training_text(scene: Scene, rng: random.Random, one_object_share: float = 0.25, size_share: float = 0.3) -> str:
    """A true sentence; for two objects, sometimes (`one_object_share`) only one object's
    attributes (the attribute queries users type match pictures with a second object too), with
    its size `size_share` of the time."""
    if len(scene.objects) == 2 and rng.random() < one_object_share:
        o = rng.choice(scene.objects)
        return f"a {o.size} {o.colour} {o.shape}" if rng.random() < size_share else f"a {o.colour} {o.shape}"
    return describe(scene, rng)


def match_matrix(scenes: list[Scene], queries: list[Query]) -> torch.Tensor:
    return torch.tensor([[float(matches(q, s)) for q in queries] for s in scenes])


def parse_all(texts: list[str]) -> list[Query]:
    return [parse(t) for t in texts]


class GroupBatches:
    """Endless random batches made of whole groups."""

    def __init__(self, groups: np.ndarray, batch: int, seed: int):
        self.batch = batch
        self.rng = np.random.default_rng(seed)
        _, starts, counts = np.unique(groups, return_index=True, return_counts=True)
        self.members = [np.arange(s, s + c) for s, c in zip(starts, counts)]

    def __iter__(self):
        while True:
            order = self.rng.permutation(len(self.members))
            out: list[int] = []
            for g in order:
                out.extend(self.members[g].tolist())
                if len(out) >= self.batch:
                    yield sorted(out[: self.batch])
                    out = []


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def save_half(state: dict[str, torch.Tensor], path: Path) -> None:
    """fp16 storage keeps the bundle small; loaders cast back to the model's dtype."""
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}, str(path))
