"""Train the bundled tiny BLIP pair on the shapes world, as in the BLIP paper's pre-training:
one vision encoder shared by
- the captioner (`BlipForConditionalGeneration`), language-modelling loss on the canonical caption;
- the ITM model (`BlipForImageTextRetrieval`): ITC (contrastive, learned temperature, targets from
  the world's match rule) and ITM (binary match head) whose negatives are mined from ITC
  similarity (hardest in-batch text per image and image per text) plus the world's explicit hard
  negatives (colours swapped, relation flipped), the cases reranking exists for.
Both are written with `save_pretrained` next to a `BlipProcessor`, as production loads them.

    python -m training.train_blip runs/data/train runs/blip --steps 8000
"""

from __future__ import annotations

import argparse
import copy
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import (
    BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor,
)

from imgsearch.shapes.world import (
    COLOURS, FLIPPED, RELATIONS, SHAPES, SIZES, Scene, canonical_caption, hard_negatives, matches, parse,
)
from training.common import (
    MEAN, STD, GroupBatches, cosine_lr, load_set, match_matrix, parse_all, to_tensor, training_text,
)
from training.dataset import SIZE
from training.vocab import build_tokenizer


def make_config(tok, patch: int = 12, size: int = SIZE) -> BlipConfig:
    text = dict(
        vocab_size=len(tok), hidden_size=128, encoder_hidden_size=128, intermediate_size=512,
        num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=32,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.sep_token_id, sep_token_id=tok.sep_token_id,
        pad_token_id=tok.pad_token_id,
    )
    vision = dict(
        hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
        image_size=size, patch_size=patch, initializer_range=0.02,
    )
    return BlipConfig(text_config=text, vision_config=vision, projection_dim=128, image_text_hidden_size=128)


def negative_text(scene: Scene, text: str, rng: random.Random, flip_share: float = 0.0) -> str:
    """A false sentence close to a true one: a relation's hard negatives (the flipped relation with
    probability `flip_share`, else any of them), or one attribute changed."""
    hard = hard_negatives(text)
    if hard:
        return hard[-1] if flip_share and rng.random() < flip_share else rng.choice(hard)  # the flip is last
    for _ in range(20):
        words = text.split()
        i = next(k for k, w in enumerate(words) if w in COLOURS)
        if rng.random() < 0.5:
            words[i] = rng.choice(COLOURS)
        else:
            words[i + 1] = rng.choice(SHAPES)
        cand = " ".join(words)
        if not matches(cand, scene):
            return cand
    return "a red star left of a blue circle" if not matches("a red star left of a blue circle", scene) else "a green square"


def partial_negative(scene: Scene, text: str, rng: random.Random) -> str | None:
    """A false sentence that is right about part of the picture, which the relevance cutoff must
    reject by ITM's probability alone: for a relation, the other axis ("left of" for a pair
    stacked "above") or one object's colour or shape changed; for one object's attributes on a
    picture of two, one object's colour with the other's shape, the other size, or one attribute
    changed. None when no such sentence turns up."""
    q = parse(text)
    for _ in range(20):
        if q.relation is not None:
            a, b, rel = dict(q.first), dict(q.second), q.relation
            if rng.random() < 0.3:
                rel = rng.choice([r for r in RELATIONS if r not in (rel, FLIPPED[rel])])
            else:
                o = rng.choice((a, b))
                key, values = ("colour", COLOURS) if rng.random() < 0.5 else ("shape", SHAPES)
                o[key] = rng.choice(values)
            cand = f"a {a['colour']} {a['shape']} {rel} a {b['colour']} {b['shape']}"
        else:
            attrs = dict(q.first)
            roll = rng.random()
            if len(scene.objects) == 2 and roll < 0.4:
                x, y = rng.sample(scene.objects, 2)
                attrs = {"colour": x.colour, "shape": y.shape}
            elif roll < 0.6:
                attrs["size"] = rng.choice(SIZES)
            else:
                key, values = ("colour", COLOURS) if rng.random() < 0.5 else ("shape", SHAPES)
                attrs[key] = rng.choice(values)
            words = ["a"] + [attrs[k] for k in ("size", "colour", "shape") if k in attrs]
            cand = " ".join(words) + (f" on a {q.background} background" if q.background else "")
        if not matches(cand, scene):
            return cand
    return None


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--stop-after", type=int, default=None,
                    help="end after this many steps of the --steps schedule (a run stopped early, replayed)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--patch", type=int, default=12)
    ap.add_argument("--itm-pos-weight", type=float, default=1.0,
                    help="weight of the match class in the ITM loss (2 balances one positive to two negatives)")
    ap.add_argument("--random-negatives", action="store_true",
                    help="add one random non-matching in-batch sentence per picture to the ITM negatives: "
                         "easy negatives the head first learns colour and shape presence from")
    ap.add_argument("--distill-clip", type=Path, default=None,
                    help="an open_clip folder with a convnet tower (the bundled CLIP): its feature map and image "
                         "embedding become extra targets for the shared ViT (the ViT alone learns shape slowly)")
    ap.add_argument("--distill-weight", type=float, default=1.0)
    ap.add_argument("--dense-targets", type=float, default=0.0,
                    help="weight of pretrain_vit's dense shape/colour targets on the shared ViT (0: off): keeps "
                         "teaching shape while the text towers learn")
    ap.add_argument("--positions", action="store_true",
                    help="with --dense-targets: also the position targets (patch grid positions, pair centres)")
    ap.add_argument("--axis", action="store_true",
                    help="with --dense-targets: [CLS] also learns the relation's axis (side by side or stacked)")
    ap.add_argument("--rank-weight", type=float, default=0.0,
                    help="weight of the listwise ITM loss over each relation sentence and its hard negatives "
                         "(see rank_loss; 0: off)")
    ap.add_argument("--flip-share", type=float, default=0.0,
                    help="share of a relation's crafted ITM negatives that are its flipped relation (the rest: "
                         "any hard negative, flips included)")
    ap.add_argument("--init-vision", type=Path, default=None,
                    help="vision.safetensors from training.pretrain_vit: start the shared ViT from it (BLIP "
                         "starts from a pre-trained ViT too)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CPUs with AVX512-BF16 or AMX: ~2x)")
    ap.add_argument("--captioner-only", action="store_true",
                    help="train the captioner alone (LM loss, plus --dense-targets): its vision encoder is "
                         "no longer shared, so the ITM model is saved as it was loaded")
    ap.add_argument("--itm-only", action="store_true",
                    help="train the ITM model alone (ITC, ITM, --rank-weight) on its own ViT, kept frozen: "
                         "the captioner is saved as it was loaded")
    ap.add_argument("--vision-from-captioner", action="store_true",
                    help="with --itm-only: the ITM model's ViT becomes a copy of the captioner's (trained "
                         "longer, at a larger size: it tells shapes apart better); pictures at its size")
    ap.add_argument("--partial-negatives", type=int, default=0,
                    help="per picture, this many ITM negatives right about part of it (see partial_negative): "
                         "teaches the match probability, which the relevance cutoff reads, to say no to them")
    ap.add_argument("--one-object-share", type=float, default=0.25,
                    help="share of two-object pictures whose training sentence names one object only")
    ap.add_argument("--size-share", type=float, default=0.3,
                    help="share of those one-object sentences that name the object's size too")
    ap.add_argument("--init", type=Path, default=None,
                    help="continue from saved folders (e.g. core/bundled/tiny): its captioner/ and itm/")
    return ap.parse_args()


def build_models(args: argparse.Namespace, config: BlipConfig) -> tuple[Any, Any]:
    """Captioner and ITM model sharing one vision encoder (saved apart). Continued models take
    the training set's picture size (see `resize_vision`)."""
    captioner = BlipForConditionalGeneration(config)
    itm = BlipForImageTextRetrieval(config)
    if args.init is not None:  # resume across sessions from the shipped (fp16) weights
        captioner = BlipForConditionalGeneration.from_pretrained(args.init / "captioner", dtype=torch.float32)
        itm = BlipForImageTextRetrieval.from_pretrained(args.init / "itm", dtype=torch.float32)
    if args.init_vision is not None:
        from safetensors.torch import load_file
        captioner.vision_model.load_state_dict(load_file(str(args.init_vision)))
    size = config.vision_config.image_size
    if not args.itm_only:
        resize_vision(captioner, size)
    if not args.captioner_only:
        resize_vision(itm, size)
        if not args.itm_only:
            itm.vision_model = captioner.vision_model
        elif args.vision_from_captioner:
            itm.vision_model.load_state_dict(captioner.vision_model.state_dict())
    return captioner, itm


def resize_vision(model: Any, size: int) -> None:
    """Fit a BLIP model's ViT to another input size by interpolating its position embeddings,
    as BLIP fine-tunes at a higher resolution than it pre-trains: more pixels for small objects."""
    emb = model.vision_model.embeddings
    if emb.image_size == size:
        return
    grid = size // emb.patch_size
    with torch.no_grad():
        table = emb.interpolate_pos_encoding(torch.zeros(1, grid * grid + 1, emb.embed_dim), size, size)
    emb.position_embedding = torch.nn.Parameter(table.clone())
    emb.image_size, emb.num_patches, emb.num_positions = size, grid * grid, grid * grid + 1
    model.config = copy.deepcopy(model.config)  # its own: another model may share the config object
    model.config.vision_config.image_size = size


def lm_loss(captioner: Any, tok: Any, image_embeds: torch.Tensor, bs: list[Scene]) -> torch.Tensor:
    """The captioner writes the canonical caption, starting from [DEC]."""
    cap = tok([canonical_caption(s) for s in bs], padding=True, return_tensors="pt")
    dec_ids = cap.input_ids.clone()
    dec_ids[:, 0] = tok.bos_token_id
    labels = dec_ids.masked_fill(cap.attention_mask == 0, -100)
    return captioner.text_decoder(
        input_ids=dec_ids, attention_mask=cap.attention_mask, encoder_hidden_states=image_embeds,
        labels=labels, reduction="mean",
    ).loss


def itc_loss(itm: Any, enc: Any, image_embeds: torch.Tensor, temp: torch.Tensor,
             target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Contrastive loss over true sentences, targets from the world's rule; also the similarity
    matrix the ITM negatives are mined from."""
    text_out = itm.text_encoder(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
    img_feat = F.normalize(itm.vision_proj(image_embeds[:, 0]), dim=-1)
    txt_feat = F.normalize(itm.text_proj(text_out[:, 0]), dim=-1)
    sim = img_feat @ txt_feat.t() / temp.exp().clamp(min=0.01)
    loss = (
        F.cross_entropy(sim, target / target.sum(1, keepdim=True))
        + F.cross_entropy(sim.t(), target.t() / target.t().sum(1, keepdim=True))
    ) / 2
    return loss, sim


def itm_loss(itm: Any, tok: Any, args: argparse.Namespace, rng: random.Random, bs: list[Scene], texts: list[str],
             enc: Any, image_embeds: torch.Tensor, sim: torch.Tensor,
             target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Positives; per picture one negative mined from ITC similarity (half of them a text for the
    picture, half a picture for the text) and one crafted hard negative: two negatives a
    positive, as in BLIP (three with --random-negatives, more with --partial-negatives). Returns
    loss, logits, labels and the share of partial negatives rejected."""
    n = len(bs)
    image_atts = torch.ones(image_embeds.shape[:2], dtype=torch.long)
    with torch.no_grad():
        w_i2t = F.softmax(sim, dim=1).masked_fill(target > 0, 0) + 1e-6
        w_t2i = F.softmax(sim.t(), dim=1).masked_fill(target.t() > 0, 0) + 1e-6
        neg_txt = torch.multinomial(w_i2t, 1).squeeze(1)
        neg_img = torch.multinomial(w_t2i, 1).squeeze(1)
    half = n // 2
    crafted = tok([negative_text(s, t, rng, args.flip_share) for s, t in zip(bs, texts)], padding="max_length",
                  max_length=enc.input_ids.shape[1], return_tensors="pt")
    mined_ids = torch.cat([enc.input_ids[neg_txt[:half]], enc.input_ids[half:]])
    mined_mask = torch.cat([enc.attention_mask[neg_txt[:half]], enc.attention_mask[half:]])
    mined_img = torch.cat([image_embeds[:half], image_embeds[neg_img[half:]]])
    ar = torch.arange(n)
    mined_labels = torch.cat([target[ar[:half], neg_txt[:half]], target[neg_img[half:], ar[half:]]])
    ids = torch.cat([enc.input_ids, mined_ids, crafted.input_ids])
    mask = torch.cat([enc.attention_mask, mined_mask, crafted.attention_mask])
    img_states = torch.cat([image_embeds, mined_img, image_embeds])
    atts = torch.cat([image_atts] * 3)
    labels = torch.cat([torch.ones(n), mined_labels, torch.zeros(n)]).long()
    if args.random_negatives:
        with torch.no_grad():
            rnd = torch.multinomial((target == 0).float() + 1e-9, 1).squeeze(1)
        ids = torch.cat([ids, enc.input_ids[rnd]])
        mask = torch.cat([mask, enc.attention_mask[rnd]])
        img_states = torch.cat([img_states, image_embeds])
        atts = torch.cat([atts, image_atts])
        labels = torch.cat([labels, target[ar, rnd].long()])
    partial = [(i, t) for _ in range(args.partial_negatives) for i, (s, text) in enumerate(zip(bs, texts))
               if (t := partial_negative(s, text, rng)) is not None]
    if partial:
        more = tok([t for _, t in partial], padding=True, return_tensors="pt")
        width = max(ids.shape[1], more.input_ids.shape[1])
        rows = torch.tensor([i for i, _ in partial])
        ids = torch.cat([_pad(ids, width, tok.pad_token_id), _pad(more.input_ids, width, tok.pad_token_id)])
        mask = torch.cat([_pad(mask, width, 0), _pad(more.attention_mask, width, 0)])
        img_states = torch.cat([img_states, image_embeds[rows]])
        atts = torch.cat([atts, image_atts[rows]])
        labels = torch.cat([labels, torch.zeros(len(partial), dtype=torch.long)])
    out = itm.text_encoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=img_states,
                           encoder_attention_mask=atts).last_hidden_state
    logits = itm.itm_head(out[:, 0])
    loss = F.cross_entropy(logits, labels, weight=torch.tensor([1.0, args.itm_pos_weight]))
    tail = logits[len(logits) - len(partial):]
    partial_rejected = float((tail.argmax(1) == 0).float().mean()) if partial else float("nan")
    return loss, logits, labels, partial_rejected


def _pad(x: torch.Tensor, width: int, value: int) -> torch.Tensor:
    return F.pad(x, (0, width - x.shape[1]), value=value)


def rank_loss(itm: Any, tok: Any, bs: list[Scene], texts: list[str], image_embeds: torch.Tensor,
              partial: int = 0, rng: random.Random | None = None) -> tuple[torch.Tensor, float] | None:
    """Listwise ITM loss on each relation sentence against its own hard negatives, for the same
    picture: softmax over (match - no-match) logits, the true sentence the target. Reranking asks
    exactly this of ITM (which of these near-identical sentences fits the picture); with one
    sampled negative among easy ones the binary loss left relation flips at chance. Returns the
    loss and the share of groups ranked rightly, or None when the batch has no relation sentence."""
    groups, owners = [], []
    for i, (scene, text) in enumerate(zip(bs, texts)):
        negatives = [t for t in hard_negatives(text) if not matches(t, scene)]
        if negatives and partial and rng is not None:
            negatives += [t for _ in range(partial) if (t := partial_negative(scene, text, rng)) is not None]
        if negatives:
            groups.append([text] + negatives)
            owners.append(i)
    if not groups:
        return None
    flat = [t for g in groups for t in g]
    enc = tok(flat, padding=True, return_tensors="pt")
    rows = torch.tensor([owners[k] for k, g in enumerate(groups) for _ in g])
    states = image_embeds[rows]
    out = itm.text_encoder(input_ids=enc.input_ids, attention_mask=enc.attention_mask, encoder_hidden_states=states,
                           encoder_attention_mask=torch.ones(states.shape[:2], dtype=torch.long)).last_hidden_state
    logits = itm.itm_head(out[:, 0]).float()
    margin = logits[:, 1] - logits[:, 0]
    width = max(len(g) for g in groups)
    table = torch.full((len(groups), width), float("-inf"))
    start = 0
    for k, g in enumerate(groups):
        table[k, :len(g)] = margin[start:start + len(g)]
        start += len(g)
    right = float((table.argmax(1) == 0).float().mean())
    return F.cross_entropy(table, torch.zeros(len(groups), dtype=torch.long)), right


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    tok = build_tokenizer()
    pixels, scenes, groups = load_set(args.data)
    size = pixels.shape[1]
    config = make_config(tok, args.patch, size)
    captioner, itm = build_models(args, config)
    temp = torch.nn.Parameter(torch.tensor(0.07).log())
    extra: list[torch.nn.Parameter] = []
    teacher = None
    if args.distill_clip is not None:
        teacher = Teacher(args.distill_clip, config.vision_config.hidden_size)
        extra = list(teacher.heads.parameters())
    dense = None
    if args.dense_targets > 0:
        from training.pretrain_vit import DenseTargets
        dense = DenseTargets(config.vision_config.hidden_size, size // args.patch, args.positions, args.axis)
        extra += list(dense.heads.parameters())
    if args.itm_only:  # the ViT frozen: what it learnt of positions and binding stays as it is
        itm.vision_model.requires_grad_(False)
        trained = [p for p in itm.parameters() if p.requires_grad] + [temp]
    else:
        trained = [*captioner.parameters()]
        if not args.captioner_only:
            trained += [*itm.parameters(), temp]
    params = list({id(p): p for p in [*trained, *extra]}.values())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05, betas=(0.9, 0.98))
    batches = iter(GroupBatches(groups, args.batch, args.seed + 1))
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "train.log", "a")
    t0 = time.time()
    last = min(args.steps, args.stop_after or args.steps) - 1
    for step in range(last + 1):
        idx = next(batches)
        n = len(idx)
        bs = [scenes[i] for i in idx]
        images = to_tensor(pixels[idx])
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, args.steps, args.lr, 300)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            if args.itm_only:
                with torch.no_grad():
                    image_embeds = itm.vision_model(pixel_values=images).last_hidden_state
                loss = lm = torch.zeros(())
            else:
                image_embeds = captioner.vision_model(pixel_values=images).last_hidden_state
                loss = lm = lm_loss(captioner, tok, image_embeds, bs)
            ranked = None
            if not args.captioner_only:
                texts = [training_text(s, rng, args.one_object_share, args.size_share) for s in bs]
                enc = tok(texts, padding=True, return_tensors="pt")
                target = match_matrix(bs, parse_all(texts))
                itc, sim = itc_loss(itm, enc, image_embeds, temp, target)
                itm_l, logits, itm_labels, partial_rej = itm_loss(itm, tok, args, rng, bs, texts, enc, image_embeds, sim,
                                                     target)
                loss = loss + itc + itm_l
                ranked = (rank_loss(itm, tok, bs, texts, image_embeds, args.partial_negatives, rng)
                          if args.rank_weight > 0 else None)
                if ranked is not None:
                    loss = loss + args.rank_weight * ranked[0]
            if teacher is not None:
                distill_loss = teacher.loss(images, image_embeds)
                loss = loss + args.distill_weight * distill_loss
            if dense is not None:
                dense_loss, dense_figures = dense.loss(image_embeds, bs)
                loss = loss + args.dense_targets * dense_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 50 == 0 or step == last:
            parts = [f"step {step}", f"lm {lm.item():.3f}"]
            if teacher is not None:
                parts.append(f"distill {distill_loss.item():.3f}")
            if not args.captioner_only:
                parts += [f"itc {itc.item():.3f}", f"itm {itm_l.item():.3f}",
                          f"itm_acc {(logits.argmax(1) == itm_labels).float().mean().item():.3f}",
                          f"pos_acc {(logits[:n].argmax(1) == 1).float().mean().item():.3f}",
                          f"hardneg_rej {(logits[2 * n:3 * n].argmax(1) == 0).float().mean().item():.3f}",
                          f"partial_rej {partial_rej:.3f}"]
            if dense is not None:
                parts += [f"{k} {v:.3f}" for k, v in dense_figures.items() if k != "patch_shape_acc"]
            if ranked is not None:
                parts.append(f"ranked_right {ranked[1]:.3f}")
            msg = " ".join(parts + [f"{time.time() - t0:.0f}s"])
            print(msg, flush=True)
            log.write(msg + "\n")
            log.flush()
        if (step + 1) % 250 == 0 or step == last:
            save(captioner, itm, tok, args.out)


class Teacher:
    """The bundled CLIP's convnet (frozen) as a teacher for BLIP's ViT: patch tokens regress its
    layer-3 feature map (resized to the patch grid), the [CLS] token its image embedding. The two
    small heads are training-only; the saved BLIP models are unchanged in shape."""

    def __init__(self, folder: Path, width: int) -> None:
        import open_clip

        self.model = open_clip.create_model(f"local-dir:{folder}").eval().requires_grad_(False)
        with torch.no_grad():
            probe = torch.zeros(1, 3, SIZE, SIZE)
            channels = self.model.visual.trunk.forward_intermediates(probe, indices=[3], intermediates_only=True)[0].shape[1]
            dim = self.model.encode_image(probe).shape[1]
        self.heads = torch.nn.ModuleDict({"patch": torch.nn.Linear(width, channels), "cls": torch.nn.Linear(width, dim)})

    def loss(self, images: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            fmap = self.model.visual.trunk.forward_intermediates(images, indices=[3], intermediates_only=True)[0]
            side = int((states.shape[1] - 1) ** 0.5)
            target = F.interpolate(fmap, size=(side, side), mode="bilinear", align_corners=False)
            target = F.layer_norm(target.flatten(2).transpose(1, 2), (target.shape[1],))
            embedding = F.normalize(self.model.encode_image(images), dim=-1)
        patch = F.mse_loss(self.heads["patch"](states[:, 1:]), target)
        cls = 1 - F.cosine_similarity(self.heads["cls"](states[:, 0]), embedding, dim=-1).mean()
        return patch + cls


def save(captioner, itm, tok, out: Path) -> None:
    for model, name in ((captioner, "captioner"), (itm, "itm")):
        size = model.config.vision_config.image_size
        processor = BlipProcessor(
            image_processor=BlipImageProcessor(size={"height": size, "width": size}, image_mean=list(MEAN),
                                               image_std=list(STD), do_resize=True, resample=3),
            tokenizer=tok,
        )
        folder = out / name
        model.to(torch.float16).save_pretrained(folder)
        model.to(torch.float32)
        processor.save_pretrained(folder)


if __name__ == "__main__":
    main()
