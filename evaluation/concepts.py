"""How well concepts taught by example work, against the best single text query for the same idea.

A held-out shapes collection (seed far from training's) is indexed with the product's indexer;
each concept below is something the world's sentences cannot say in one phrase. It is taught
through the product's own `add_concept` with 5 or 20 example pictures (and 0 or 5 `--not`
pictures that do not show it), drawn at random from the collection, several times over; then
every other picture is scored. Reported, averaged over the draws: precision@10 by the concept's
probability, the same through the vector engine's nearest search along `direction()` (what a
`query --concept` gets), and recall and precision of the pictures at probability >= 0.5. The text
baseline: each phrasing's CLIP text vector ranks the same pictures; the best phrasing's P@10.

`python -m imgsearch.evaluation.concepts OUT_DIR [--n 400] [--seed 4242] [--trials 5]`"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from imgsearch.shapes.render import sample_scene, write_collection
from imgsearch.shapes.world import Scene

DEFAULT_SEED = 4242  # training used 1234; the search evaluation 2026


@dataclass(frozen=True)
class ConceptSpec:
    name: str
    says: str  # in words, for the report
    holds: Callable[[Scene], bool]
    phrasings: tuple[str, ...]  # the text queries it is compared with (the world's sentences)


def _same_colour(s: Scene) -> bool:
    return len(s.objects) == 2 and s.objects[0].colour == s.objects[1].colour


CONCEPTS = (
    ConceptSpec("star-on-black", "any star on a black background",
                lambda s: s.background == "black" and any(o.shape == "star" for o in s.objects),
                ("a star on a black background", "a large star on a black background",
                 "a small star on a black background", "a yellow star on a black background")),
    ConceptSpec("same-colour-pair", "two objects of the same colour", _same_colour,
                ("a red circle left of a red square", "a blue star above a blue triangle",
                 "a green square right of a green circle", "a yellow triangle below a yellow star")),
    ConceptSpec("warm-only", "only warm colours (every object red, orange or yellow)",
                lambda s: all(o.colour in ("red", "orange", "yellow") for o in s.objects),
                ("a red circle", "a orange square", "a yellow star", "a red triangle")),
    ConceptSpec("large-alone", "one large object alone",
                lambda s: len(s.objects) == 1 and s.objects[0].size == "large",
                ("a large circle", "a large square", "a large star", "a large triangle")),
)


def build(folder: Path, n: int, seed: int, per_concept: int | None = None) -> dict[str, Scene]:
    """`n` random scenes, plus `per_concept` more showing each concept (drawn until one does), so
    every concept has enough pictures to be taught with 20 and still be searched for."""
    rng = random.Random(seed)
    scenes = [sample_scene(rng) for _ in range(n)]
    for spec in CONCEPTS:
        for _ in range(max(30, n // 10) if per_concept is None else per_concept):
            while True:
                scene = sample_scene(rng, 2 if spec.name == "same-colour-pair" else None)
                if spec.holds(scene):
                    scenes.append(scene)
                    break
    random.Random(seed + 1).shuffle(scenes)
    return write_collection(folder, scenes, seed)


def _precision_at(order: Sequence[int], relevant: np.ndarray, k: int = 10) -> float:
    return float(relevant[list(order[:k])].sum()) / k


def evaluate(workdir: Path, n: int = 400, seed: int = DEFAULT_SEED, trials: int = 5, shots: Sequence[int] = (5, 20),
             nots: Sequence[int] = (0, 5), models: str = "tiny", c: float | None = None,
             per_concept: int | None = None) -> dict[str, Any]:
    from imgsearch.concepts import DEFAULT_C
    from imgsearch.indexer import index
    from imgsearch.library.concepts import Picture, add_concept
    from imgsearch.models import Models
    from imgsearch.searcher.embed import TorchEmbedder
    from imgsearch.settings import Settings
    from imgsearch.stores import open_stores

    scenes = build(workdir / "pictures", n, seed, per_concept)
    settings = Settings(home=workdir / "home", models=models, batch_size=32, decode_workers=2, ocr=False)
    loaded = Models(settings)
    result: dict[str, Any] = {"pictures": len(scenes), "seed": seed, "trials": trials, "c": c or DEFAULT_C,
                              "clip": loaded.facts()["clip_model"], "concepts": {}}
    t0 = time.perf_counter()
    with open_stores(settings, loaded.facts(), loaded.clip.dim) as stores:
        index([workdir / "pictures"], stores, loaded, captions=False, texts=False)
        result["index_s"] = time.perf_counter() - t0
        known = stores.catalog.files_under([str(workdir / "pictures")])
        names = sorted(p for p in known if Path(p).name in scenes)
        ids = [known[p].id for p in names]
        stored = stores.vectors.get_vectors(ids)
        vectors = np.stack([stored[i] for i in ids])
        embed = TorchEmbedder(loaded).image
        t0 = time.perf_counter()
        for spec in CONCEPTS:
            truth = np.array([spec.holds(scenes[Path(p).name]) for p in names])
            texts = loaded.clip.encode_texts(list(spec.phrasings))
            row: dict[str, Any] = {"says": spec.says, "share": float(truth.mean()), "runs": {}}
            for k in shots:
                for n_not in nots:
                    runs = []
                    for trial in range(trials):
                        rng = np.random.default_rng(1000 * trial + 17 * k + n_not)
                        pos = rng.choice(np.flatnonzero(truth), size=k, replace=False)
                        neg = rng.choice(np.flatnonzero(~truth), size=n_not, replace=False)
                        name = f"{spec.name}-{k}-{n_not}-{trial}"
                        report = add_concept(stores, embed, name, [Picture(names[i]) for i in pos],
                                             [Picture(names[i]) for i in neg], **({"c": c} if c else {}))
                        concept = report.concept
                        held = np.setdiff1d(np.arange(len(names)), np.concatenate([pos, neg]))
                        p = concept.probability(vectors[held])
                        order = np.argsort(-p, kind="stable")
                        rel = truth[held]
                        shown = p >= 0.5
                        found = stores.vectors.search(concept.direction(), 10 + k + n_not)
                        trained = {ids[i] for i in np.concatenate([pos, neg])}
                        engine_top = [i for i, _ in found if i not in trained][:10]
                        by_id = {ids[i]: bool(truth[i]) for i in range(len(ids))}
                        text = [_precision_at(np.argsort(-(vectors[held] @ t), kind="stable"), rel) for t in texts]
                        runs.append({
                            "p_at_10": _precision_at(order, rel),
                            "engine_p_at_10": sum(by_id[i] for i in engine_top) / 10,
                            "recall_at_half": float((shown & rel).sum() / max(1, rel.sum())),
                            "precision_at_half": float((shown & rel).sum() / max(1, shown.sum())),
                            "text_best_p_at_10": max(text), "text_p_at_10": text,
                        })
                    row["runs"][f"{k}+{n_not}"] = {key: float(np.mean([r[key] for r in runs]))
                                                   for key in runs[0] if key != "text_p_at_10"}
            result["concepts"][spec.name] = row
        result["train_and_score_s"] = time.perf_counter() - t0
    return result


def to_markdown(r: dict[str, Any]) -> str:
    lines = [(f"Held-out collection: {r['pictures']} pictures (seed {r['seed']}), CLIP `{r['clip']}`, C = {r['c']:g}, "
              f"mean of {r['trials']} random draws of the examples; k+m = k example pictures and m `--not`."), "",
             "| concept | share | k+m | P@10 | P@10 (engine) | recall @0.5 | precision @0.5 | best text P@10 |",
             "|---|---|---|---|---|---|---|---|"]
    for row in r["concepts"].values():
        for setting, m in row["runs"].items():
            lines.append(f"| {row['says']} | {row['share']:.2f} | {setting} | {m['p_at_10']:.2f} | "
                         f"{m['engine_p_at_10']:.2f} | {m['recall_at_half']:.2f} | {m['precision_at_half']:.2f} | "
                         f"{m['text_best_p_at_10']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imgsearch.evaluation.concepts", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", type=Path, help="where the pictures, the index and concepts.json/.md go (empty)")
    p.add_argument("--n", type=int, default=400, help="random pictures (plus max(30, n/10) showing each concept)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="collection seed")
    p.add_argument("--trials", type=int, default=5, help="random draws of the examples per setting")
    p.add_argument("--c", type=float, default=None, help="the probe's C (default: the product's)")
    p.add_argument("--models", default="tiny", help="model profile")
    args = p.parse_args(argv)
    result = evaluate(args.out_dir, args.n, args.seed, args.trials, models=args.models, c=args.c)
    (args.out_dir / "concepts.json").write_text(json.dumps(result, indent=1))
    report = to_markdown(result)
    (args.out_dir / "concepts.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
