"""`python -m bench.caption_decoding OUT [--pictures N] [--rounds R]`: the captioner's greedy
decoding with finished captions dropped (`imgsearch.models.blip_decoder.generate`, what the
product runs) against transformers' `generate` (every row computed until the last caption ends),
on the bundled tiny captioner and pictures of its shapes world, whose captions end at different
lengths (base BLIP with random weights never ends a caption before the cap, so `bench.blip_runtime`
cannot show this).

The vision states are computed once; only decoding is timed, in the product's caption batches, the
two alternating within every round; ratios are taken round by round. The ids must be the same.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from .image_runtime import machine

def measure(out: Path, pictures: int, rounds: int) -> dict[str, Any]:
    import torch
    from imgsearch.models import Models
    from imgsearch.models.blip_decoder import generate, transformers_generate
    from imgsearch.settings import Settings
    from imgsearch.shapes.render import sample_scene, write_collection
    from PIL import Image

    folder = out / "shapes"
    if not folder.exists():
        rng = random.Random(7)
        write_collection(folder, [sample_scene(rng) for _ in range(pictures)], 7)
    files = sorted(p for p in folder.iterdir() if p.suffix in (".png", ".jpg"))[:pictures]
    images = [Image.open(p).convert("RGB") for p in files]
    models = Models(Settings(home=out / "home", models="tiny", dtype="float32", image_runtime="torch"))
    captioner, batch = models.captioner, models.settings.caption_batch_size
    model, config = captioner.model, captioner.model.config.text_config
    with torch.inference_mode():
        pixels = captioner.processor(images=images, return_tensors="pt").pixel_values
        states = model.vision_model(pixel_values=pixels)[0]
        batches = [states[i:i + batch] for i in range(0, len(states), batch)]
        runs = {"upstream": lambda s: transformers_generate(model.text_decoder, config, s, captioner.max_tokens),
                "dropping": lambda s: generate(model.text_decoder, config, s, captioner.max_tokens)}
        for run in runs.values():
            run(batches[0][:2])  # warm-up
        times: dict[str, list[float]] = {name: [] for name in runs}
        ids: dict[str, list[Any]] = {}
        for r in range(rounds):
            for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
                t = time.perf_counter()
                ids[name] = [runs[name](b) for b in batches]
                times[name].append(time.perf_counter() - t)
    same = all(torch.equal(a, b) for a, b in zip(ids["upstream"], ids["dropping"]))
    row_steps = {"upstream": sum(b.shape[0] * (b.shape[1] - 1) for b in ids["upstream"]),
                 "dropping": sum(int(((b != config.pad_token_id).sum(1) - 1).sum()) for b in ids["dropping"])}
    ratios = [u / d for u, d in zip(times["upstream"], times["dropping"])]
    return {"pictures": len(images), "batch": batch, "rounds": rounds, "same_ids": same, "row_steps": row_steps,
            "s": times, "s_median": {k: statistics.median(v) for k, v in times.items()},
            "speedup_median": statistics.median(ratios), "speedup_min": min(ratios), "speedup_max": max(ratios)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--pictures", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), **measure(args.out, args.pictures, args.rounds)}
    (args.out / "caption_decoding.json").write_text(json.dumps(result, indent=1))
    m = result["machine"]
    print(f"CPU: {m['cpu']}, {m['cpus']} CPUs; {result['pictures']} tiny captions in batches of {result['batch']}: "
          f"transformers' generate {result['s_median']['upstream']:.2f} s, dropping ended captions "
          f"{result['s_median']['dropping']:.2f} s (median of {result['rounds']}); speed-up "
          f"{result['speedup_median']:.2f} ({result['speedup_min']:.2f}-{result['speedup_max']:.2f}); row-steps "
          f"{result['row_steps']['upstream']} -> {result['row_steps']['dropping']}; same ids: {result['same_ids']}")
    return 0 if result["same_ids"] else 1


if __name__ == "__main__":
    sys.exit(main())
