"""Quick probe of ITM checkpoints as the relevance cutoff reads them (not the evaluation: that is
`python -m imgsearch.evaluation`, through search). Every picture of an evaluation-style
collection is scored for every query by the product's own ITM loader; at each threshold the set
a query would return (probability >= t) gives precision and recall per kind of query, and the
world's nonsense queries should return nothing. No CLIP candidates are involved, so the figures
bound what the cutoff can do with a checkpoint.

    python -m training.cutoff_probe core/bundled/tiny/itm runs/itm/itm --seed 5150
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

from imgsearch.evaluation.collection import build_collection, load_collection
from imgsearch.evaluation.relevance import NONSENSE
from imgsearch.models.blip import load_itm
from imgsearch.models.runtime import pick_runtime


def set_scores(probs: torch.Tensor, relevant: torch.Tensor, threshold: float) -> tuple[float, float, int]:
    """Mean precision over queries that return something, mean recall, queries returning nothing."""
    got = probs >= threshold
    right = (got & relevant).sum(1).float()
    returned = got.sum(1).float()
    some = returned > 0
    precision = float((right[some] / returned[some]).mean()) if some.any() else float("nan")
    recall = float((right / relevant.sum(1).clamp(min=1)).mean())
    return precision, recall, int((~some).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("itm", type=Path, nargs="+", help="ITM model folders to compare")
    ap.add_argument("--folder", type=Path, default=Path("runs/cutoff-probe"))
    ap.add_argument("--seed", type=int, default=5150, help="collection seed (not an evaluation seed)")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--thresholds", default="0.3,0.5,0.7,0.9")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folder = args.folder / str(args.seed)
    collection = load_collection(folder) if (folder / "queries.json").exists() else build_collection(
        folder, args.n, args.seed)
    names = sorted(collection.scenes)
    images = [Image.open(collection.path(name)).convert("RGB") for name in names]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    for ref in args.itm:
        scorer = load_itm(str(ref), pick_runtime("cpu"))
        states = torch.cat([scorer.vision_states(images[i:i + 64]) for i in range(0, len(images), 64)])
        print(f"\n{ref}")
        for kind in ("attribute", "relation"):
            queries = [q for q in collection.queries if q.kind == kind]
            probs = torch.tensor([scorer.score(q.text, states)[0] for q in queries])
            relevant = torch.tensor([[name in q.relevant for name in names] for q in queries])
            for t in thresholds:
                p, r, empty = set_scores(probs, relevant, t)
                print(f"  {kind:9s} t={t:g}: precision {p:.3f} recall {r:.3f} (empty {empty} of {len(queries)})")
        nonsense = torch.tensor([scorer.score(q, states)[0] for q in NONSENSE])
        for t in thresholds:
            print(f"  nonsense  t={t:g}: empty {int(((nonsense >= t).sum(1) == 0).sum())} of {len(NONSENSE)}")


if __name__ == "__main__":
    main()
