"""Pre-train BLIP's vision transformer on the shapes world before BLIP's own training, as BLIP
starts from an ImageNet-trained ViT: supervised, dense targets the world gives for free.

Why: trained only through LM/ITC/ITM, the small ViT learned colour within a few hundred steps
but stayed near chance on shape for thousands (it has no convolution's translation invariance to
lean on), so captioner and ITM could not name or bind shapes. Here every patch token learns the
shape and colour of the object over it (or background) and [CLS] learns which (colour, shape)
pairs the picture holds: 65 labels a picture instead of one sentence.

    python -m training.pretrain_vit runs/data/train runs/vit --steps 6000
    python -m training.train_blip runs/data/train runs/blip --init-vision runs/vit/vision.safetensors
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import BlipVisionModel

from imgsearch.shapes.world import COLOURS, SHAPES, Obj, Scene, relation_between
from training.common import GroupBatches, cosine_lr, load_set, to_tensor
from training.dataset import SIZE
from training.train_blip import make_config
from training.vocab import build_tokenizer


def patch_labels(scene: Scene, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Shape and colour index (0 = background) of the object whose box overlaps each patch, in the
    squashed 96 px frame the models see (so an object narrower than a patch still labels one);
    objects drawn later cover earlier ones."""
    shape = np.zeros((grid, grid), dtype=np.int64)
    colour = np.zeros((grid, grid), dtype=np.int64)
    edges = np.arange(grid + 1) / grid
    for o in scene.objects:
        half = o.extent / 2
        x0, x1 = (o.cx - half) / scene.width, (o.cx + half) / scene.width
        y0, y1 = (o.cy - half) / scene.height, (o.cy + half) / scene.height
        cols = (edges[:-1] < x1) & (edges[1:] > x0)
        rows = (edges[:-1] < y1) & (edges[1:] > y0)
        cover = rows[:, None] & cols[None, :]
        shape[cover] = 1 + SHAPES.index(o.shape)
        colour[cover] = 1 + COLOURS.index(o.colour)
    return shape.reshape(-1), colour.reshape(-1)


def pair_index(o: Obj) -> int:
    """Where an object's (colour, shape) pair sits among the COLOURS x SHAPES pairs."""
    return COLOURS.index(o.colour) * len(SHAPES) + SHAPES.index(o.shape)


def centres(scene: Scene) -> np.ndarray:
    """Centre (x, y) of each (colour, shape) pair in the picture, as fractions of the squashed
    frame (zero for pairs absent: `present` masks them); the targets that tie what to where."""
    out = np.zeros((len(COLOURS) * len(SHAPES), 2), dtype=np.float32)
    for o in scene.objects:
        out[pair_index(o)] = (o.cx / scene.width, o.cy / scene.height)
    return out


def present(scene: Scene) -> np.ndarray:
    """Multi-hot over (colour, shape) pairs in the picture."""
    out = np.zeros(len(COLOURS) * len(SHAPES), dtype=np.float32)
    for o in scene.objects:
        out[pair_index(o)] = 1
    return out


class DenseTargets:
    """The supervised heads over a ViT's states: [CLS] -> (colour, shape) pairs present, each patch
    -> shape and colour over it. Training-only; also usable beside BLIP's losses (train_blip
    --dense-targets) so that shape keeps being taught while the text towers learn.

    With `positions`, also where: each patch regresses its own grid position and [CLS] the centre
    of every pair present. Without them the ViT learned shape and colour but washed position out
    of its last states (a linear probe recovered a patch's row with R2 0.13), so neither captioner
    nor ITM could tell "left of" from "right of": relations sat at chance.

    With `axis`, [CLS] also learns whether two objects stand side by side or one above the other
    (the larger of the horizontal and vertical gaps, as the world judges): with positions learned,
    the captioner ordered the pair rightly along an axis but picked the wrong axis in over 40 % of
    two-object pictures."""

    def __init__(self, width: int, grid: int, positions: bool = False, axis: bool = False) -> None:
        self.grid = grid
        self.positions = positions
        self.axis = axis
        pairs = len(COLOURS) * len(SHAPES)
        heads = {
            "present": torch.nn.Linear(width, pairs),
            "shape": torch.nn.Linear(width, 1 + len(SHAPES)),
            "colour": torch.nn.Linear(width, 1 + len(COLOURS)),
        }
        if positions:
            heads["where"] = torch.nn.Linear(width, 2)
            heads["centres"] = torch.nn.Linear(width, pairs * 2)
        if axis:
            heads["axis"] = torch.nn.Linear(width, 1)
        self.heads = torch.nn.ModuleDict(heads)
        cells = (np.arange(grid, dtype=np.float32) + 0.5) / grid
        rows, cols = np.meshgrid(cells, cells, indexing="ij")
        self.grid_xy = torch.from_numpy(np.stack([cols.ravel(), rows.ravel()], 1))  # (x, y) of each patch

    def loss(self, states: torch.Tensor, scenes: list[Scene]) -> tuple[torch.Tensor, dict[str, float]]:
        labels = [patch_labels(s, self.grid) for s in scenes]
        shape = torch.from_numpy(np.stack([s for s, _ in labels]))
        colour = torch.from_numpy(np.stack([c for _, c in labels]))
        pairs = torch.from_numpy(np.stack([present(s) for s in scenes]))
        pair_logits = self.heads["present"](states[:, 0]).float()
        shape_logits = self.heads["shape"](states[:, 1:]).float()
        colour_logits = self.heads["colour"](states[:, 1:]).float()
        loss = (F.binary_cross_entropy_with_logits(pair_logits, pairs) * len(SHAPES)
                + F.cross_entropy(shape_logits.reshape(-1, shape_logits.shape[-1]), shape.reshape(-1))
                + F.cross_entropy(colour_logits.reshape(-1, colour_logits.shape[-1]), colour.reshape(-1)))
        figures: dict[str, float] = {}
        if self.positions:
            where = self.heads["where"](states[:, 1:]).float()
            target_xy = torch.from_numpy(np.stack([centres(s) for s in scenes]))
            guess_xy = self.heads["centres"](states[:, 0]).float().view(len(scenes), -1, 2)
            centre_err = ((guess_xy - target_xy).abs().sum(-1) * pairs).sum() / pairs.sum()
            loss = loss + 10 * F.mse_loss(where, self.grid_xy.expand_as(where)) + 4 * centre_err
            figures["centre_err"] = centre_err.item()
        two = [i for i, s in enumerate(scenes) if len(s.objects) == 2]
        if self.axis and two:
            across = torch.tensor([float(relation_between(*scenes[i].objects) in ("left of", "right of")) for i in two])
            guess = self.heads["axis"](states[two, 0]).float().squeeze(1)
            loss = loss + F.binary_cross_entropy_with_logits(guess, across)
            figures["axis_acc"] = ((guess > 0).float() == across).float().mean().item()
        with torch.no_grad():  # is every (colour, shape) pair of the picture among its top guesses?
            top = pair_logits.topk(2, dim=1).indices
            wanted = pairs.sum(1).long()
            pairs_right = float(np.mean([bool(pairs[i, top[i, :wanted[i]]].all()) for i in range(len(scenes))]))
            fg = shape > 0
            patch_acc = (shape_logits.argmax(-1)[fg] == shape[fg]).float().mean().item()
        return loss, {"pairs_right": pairs_right, "patch_shape_acc": patch_acc, **figures}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--patch", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CPUs with AVX512-BF16 or AMX)")
    ap.add_argument("--init", type=Path, default=None, help="continue from a vision.safetensors")
    ap.add_argument("--positions", action="store_true",
                    help="also teach where: patch grid positions and each pair's centre (see DenseTargets)")
    ap.add_argument("--axis", action="store_true", help="also teach [CLS] the relation's axis (see DenseTargets)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    config = make_config(build_tokenizer(), args.patch).vision_config
    vit = BlipVisionModel(config)
    if args.init is not None:
        vit.load_state_dict(load_file(str(args.init)))
    targets = DenseTargets(config.hidden_size, SIZE // args.patch, args.positions, args.axis)
    params = [*vit.parameters(), *targets.heads.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05, betas=(0.9, 0.98))
    pixels, scenes, groups = load_set(args.data)
    batches = iter(GroupBatches(groups, args.batch, args.seed + 1))
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "train.log", "a")
    t0, pairs_right = time.time(), []
    for step in range(args.steps):
        idx = next(batches)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, args.steps, args.lr, 200)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            states = vit(pixel_values=to_tensor(pixels[idx])).last_hidden_state
            loss, figures = targets.loss(states, [scenes[i] for i in idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        pairs_right.append(figures["pairs_right"])
        if step % 100 == 0 or step == args.steps - 1:
            msg = (f"step {step} loss {loss.item():.3f} pairs right {np.mean(pairs_right[-100:]):.3f} "
                   f"object-patch shape acc {figures['patch_shape_acc']:.3f} "
                   f"{'centre err %.3f ' % figures['centre_err'] if args.positions else ''}{time.time() - t0:.0f}s")
            print(msg, flush=True)
            log.write(msg + "\n")
            log.flush()
        if (step + 1) % 500 == 0 or step == args.steps - 1:
            save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(args.out / "vision.safetensors"))


if __name__ == "__main__":
    main()
