"""Quick held-out probe of training checkpoints (not the evaluation: that is
`python -m imgsearch.evaluation`). Zero-shot colour+shape accuracy of CLIP on one-object
pictures, binding accuracy on two-object pictures (true sentence vs its hard negatives) for CLIP
and for ITM, also by kind of negative (colours swapped, shapes swapped, relation flipped), and the
captioner's exact-caption rate, with what the wrong two-object captions get wrong.

    python -m training.probe runs/clip runs/blip --n 300
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from imgsearch.shapes.world import (
    COLOURS, SHAPES, Obj, Scene, canonical_caption, caption_is_right, hard_negatives, parse,
)
from training.common import to_tensor
from imgsearch.shapes.render import CLEAR_AXIS_RATIO
from training.dataset import SIZE, _shard


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("clip", type=Path)
    ap.add_argument("blip", type=Path, nargs="?")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pixels, raw, _ = _shard((987_654, args.n, SIZE, CLEAR_AXIS_RATIO))
    scenes = [Scene(d["width"], d["height"], d["background"], tuple(Obj(**o) for o in d["objects"])) for d in raw]
    x = to_tensor(pixels)

    def at_size(processor) -> torch.Tensor:  # the same pictures at a model's own input size
        size = int(processor.image_processor.size["height"])
        return x if size == x.shape[-1] else to_tensor(_shard((987_654, args.n, size, CLEAR_AXIS_RATIO))[0])
    one = [i for i, s in enumerate(scenes) if len(s.objects) == 1]
    two = [i for i, s in enumerate(scenes) if len(s.objects) == 2 and hard_negatives(canonical_caption(s))]
    labels = [f"a {c} {s}" for c, s in itertools.product(COLOURS, SHAPES)]

    import open_clip
    model = open_clip.create_model(f"local-dir:{args.clip}").eval()
    tok = open_clip.get_tokenizer(f"local-dir:{args.clip}")
    img = F.normalize(model.encode_image(x), dim=-1)
    lab = F.normalize(model.encode_text(tok(labels)), dim=-1)
    pred = (img[one] @ lab.t()).argmax(1)
    truth = [labels.index(f"a {scenes[i].objects[0].colour} {scenes[i].objects[0].shape}") for i in one]
    print(f"clip one-object colour+shape acc {(pred == torch.tensor(truth)).float().mean():.3f} (chance {1/24:.3f})")
    wins = 0
    for i in two:
        cands = [canonical_caption(scenes[i])] + hard_negatives(canonical_caption(scenes[i]))
        t = F.normalize(model.encode_text(tok(cands)), dim=-1)
        wins += int((img[i] @ t.t()).argmax() == 0)
    print(f"clip binding acc (true vs hard negatives) {wins / len(two):.3f}")
    if args.blip is None:
        return
    from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval, BlipProcessor
    proc = BlipProcessor.from_pretrained(str(args.blip / "itm"))
    x_itm = at_size(proc)
    itm = BlipForImageTextRetrieval.from_pretrained(args.blip / "itm", dtype=torch.float32).eval()
    cap = BlipForConditionalGeneration.from_pretrained(args.blip / "captioner", dtype=torch.float32).eval()
    wins, accept, reject, total_neg = 0, 0, 0, 0
    by_kind = {"colours swapped": [0, 0], "shapes swapped": [0, 0], "relation flipped": [0, 0]}
    for i in two:
        true = canonical_caption(scenes[i])
        cands = [true] + hard_negatives(true)
        enc = proc.tokenizer(cands, padding=True, return_tensors="pt")
        out = itm(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                  pixel_values=x_itm[i:i + 1].expand(len(cands), -1, -1, -1)).itm_score
        p = out.softmax(-1)[:, 1]
        wins += int(p.argmax() == 0)
        accept += int(p[0] > 0.5)
        reject += int((p[1:] < 0.5).sum())
        total_neg += len(cands) - 1
        for kind, neg in zip(_negative_kinds(true), p[1:]):
            by_kind[kind][0] += int(p[0] > neg)
            by_kind[kind][1] += 1
    print(f"itm binding acc {wins / len(two):.3f}; accepts true {accept / len(two):.3f}; rejects hard neg {reject / total_neg:.3f}")
    print("itm: true sentence above its negative, by kind: "
          + ", ".join(f"{k} {w / max(n, 1):.3f}" for k, (w, n) in by_kind.items()))
    gen = cap.generate(pixel_values=at_size(BlipProcessor.from_pretrained(str(args.blip / "captioner"))),
                       max_new_tokens=12)
    texts = proc.batch_decode(gen, skip_special_tokens=True)
    right = np.mean([caption_is_right(t, s) for t, s in zip(texts, scenes)])
    print(f"captions fully right {right:.3f}; e.g. {texts[:3]}")
    wrong_pair = wrong_relation = 0
    for i in two:
        if not caption_is_right(texts[i], scenes[i]):
            said = _pairs_named(texts[i])
            have = {(o.colour, o.shape) for o in scenes[i].objects}
            wrong_pair += said != have
            wrong_relation += said == have
    print(f"two-object captions: {1 - (wrong_pair + wrong_relation) / len(two):.3f} right; "
          f"{wrong_pair / len(two):.3f} name a wrong (colour, shape); {wrong_relation / len(two):.3f} the right pair "
          "with a wrong relation")


def _pairs_named(caption: str) -> set[tuple[str, str]]:
    """The (colour, shape) pairs a caption names; none when it is not a sentence of the world."""
    try:
        q = parse(caption)
    except ValueError:
        return set()
    return {(o["colour"], o["shape"]) for o in (q.first, q.second) if o}


def _negative_kinds(sentence: str) -> list[str]:
    """What each of `hard_negatives(sentence)` changes, in its order."""
    q = parse(sentence)
    kinds = ["colours swapped"] if q.first["colour"] != q.second["colour"] else []
    kinds += ["shapes swapped"] if q.first["shape"] != q.second["shape"] else []
    return kinds + ["relation flipped"]


if __name__ == "__main__":
    main()
