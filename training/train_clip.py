"""Train the bundled tiny CLIP (open_clip, custom config) on the shapes world.

Loss: the CLIP paper's symmetric cross-entropy over cosine similarities scaled by a learned
temperature. The world often repeats a sentence within a batch ("a red star" twice), so each
row's target spreads over every text that truly matches the picture (the world's own match
rule) instead of pretending duplicates are negatives.

    python -m training.train_clip runs/data/train runs/clip --steps 8000
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F

from training.common import (
    MEAN, STD, GroupBatches, cosine_lr, load_set, match_matrix, parse_all, save_half, to_tensor,
    training_text,
)
from training.dataset import SIZE
from training.vocab import save_tokenizer

CONTEXT = 16


def write_config(out: Path, patch: int = 12, width: int = 128, layers: int = 4, timm: str | None = None) -> None:
    tok = save_tokenizer(out)
    vision = {"image_size": SIZE, "layers": layers, "width": width, "head_width": 32, "patch_size": patch}
    if timm:
        # A small convnet tower (through timm): measured here, a 4-layer ViT did not learn the
        # four shapes at all in 250 supervised steps, a small CNN learned them in 100. Global
        # max pooling keeps the strongest object evidence wherever the object lies.
        vision = {"image_size": SIZE, "timm_model_name": timm, "timm_model_pretrained": False,
                  "timm_pool": "max", "timm_proj": "linear"}
    cfg = {
        "model_cfg": {
            "embed_dim": 128,
            "vision_cfg": vision,
            "text_cfg": {
                "context_length": CONTEXT, "vocab_size": len(tok), "width": 128, "heads": 4, "layers": 3,
                "hf_tokenizer_name": "imgsearch-shapes-wordpiece", "pool_type": "eos",
                "eos_id": tok.sep_token_id, "pad_id": tok.pad_token_id,
            },
        },
        "preprocess_cfg": {
            "size": SIZE, "mean": list(MEAN), "std": list(STD), "interpolation": "bicubic",
            "resize_mode": "squash",
        },
    }
    (out / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--patch", type=int, default=12)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--timm", default=None, help="a timm convnet for the vision tower instead of a ViT")
    ap.add_argument("--init", type=Path, default=None,
                    help="continue from a saved open_clip folder (e.g. core/bundled/tiny/clip)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.init is not None:  # same architecture and tokenizer as the folder we continue from
        for name in ("open_clip_config.json", "tokenizer.json", "tokenizer_config.json"):
            (args.out / name).write_bytes((args.init / name).read_bytes())
    else:
        write_config(args.out, args.patch, args.width, args.layers, args.timm)
    model = open_clip.create_model(f"local-dir:{args.init or args.out}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{args.out}")
    pixels, scenes, groups = load_set(args.data)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05, betas=(0.9, 0.98))
    batches = iter(GroupBatches(groups, args.batch, args.seed))
    log = open(args.out / "train.log", "a")
    t0 = time.time()
    model.train()
    for step in range(args.steps):
        idx = next(batches)
        images = to_tensor(pixels[idx])
        batch_scenes = [scenes[i] for i in idx]
        texts = [training_text(s, rng) for s in batch_scenes]
        target = match_matrix(batch_scenes, parse_all(texts))
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, args.steps, args.lr, 300)
        img = F.normalize(model.encode_image(images), dim=-1)
        txt = F.normalize(model.encode_text(tokenizer(texts)), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.t()
        loss = (
            F.cross_entropy(logits, target / target.sum(1, keepdim=True))
            + F.cross_entropy(logits.t(), target.t() / target.t().sum(1, keepdim=True))
        ) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)
        if step % 50 == 0 or step == args.steps - 1:
            acc = (target[torch.arange(len(idx)), logits.argmax(1)] > 0).float().mean().item()
            msg = (f"step {step} loss {loss.item():.4f} i2t_acc {acc:.3f} "
                   f"scale {model.logit_scale.exp().item():.1f} {time.time() - t0:.0f}s")
            print(msg, flush=True)
            log.write(msg + "\n")
            log.flush()
        if (step + 1) % 250 == 0 or step == args.steps - 1:
            save_half(model.state_dict(), args.out / "open_clip_model.safetensors")


if __name__ == "__main__":
    main()
