"""What the relevance cutoff and hybrid retrieval give a user, measured through `search()`:

- the cutoff: for each query, precision and recall of the *set* a search returns with
  `min_match` (a long page, so the limit is not what stops it), per query kind and threshold;
- nonsense: queries for things the world does not have, which should return nothing;
- names: a collection whose folders and files carry a user's names ("lisbon", "grandma-birthday",
  "IMG_2043.jpg"): a query of a folder's name should rank that folder's pictures first."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgsearch.searcher import search
from imgsearch.shapes.render import sample_scene, write_collection
from imgsearch.stores import Stores

from .collection import EvalQuery

NONSENSE = ("a cat", "a tax report", "a red car", "quarterly tax report", "a dog on the beach")
CUTOFF_LIMIT = 200  # the page is long enough that only the cutoff ends the list
# Folders named as people name them, and how someone would type the name in a query.
NAMED_FOLDERS = {"lisbon": "lisbon", "grandma-birthday": "grandma birthday", "Paris 2019": "paris 2019",
                 "summer_garden": "summer garden", "school trip": "school trip"}
NAMED_FILE, NAMED_FILE_QUERY = "IMG_2043.jpg", "IMG_2043"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def cutoff_scores(queries: Sequence[EvalQuery], stores: Stores, models: Any, thresholds: Sequence[float],
                  rerank_k: int, mode: str = "hybrid") -> dict[str, Any]:
    """Per threshold and kind: mean precision (over queries that returned something), mean
    recall, how many returned nothing, mean size returned; per query the counts."""
    out: dict[str, Any] = {}
    for t in thresholds:
        per_query = []
        for q in queries:
            got = [Path(h.path).name for h in search(q.text, stores, models, limit=CUTOFF_LIMIT, rerank_k=rerank_k,
                                                      mode=mode, min_match=t)]
            right = sum(1 for name in got if name in q.relevant)
            per_query.append({"text": q.text, "kind": q.kind, "returned": len(got), "right": right,
                              "relevant": len(q.relevant)})
        kinds: dict[str, Any] = {}
        for kind in ("attribute", "relation", "all"):
            rows = [r for r in per_query if kind == "all" or r["kind"] == kind]
            if not rows:
                continue
            kinds[kind] = {
                "queries": len(rows),
                "precision": _mean([r["right"] / r["returned"] for r in rows if r["returned"]]),
                "recall": _mean([r["right"] / r["relevant"] for r in rows if r["relevant"]]),
                "empty": sum(1 for r in rows if not r["returned"]),
                "mean_returned": _mean([r["returned"] for r in rows]),
            }
        out[f"{t:g}"] = {"threshold": t, "kinds": kinds, "queries": per_query}
    return out


def nonsense_scores(stores: Stores, models: Any, threshold: float, rerank_k: int) -> dict[str, Any]:
    returned = {q: len(search(q, stores, models, limit=CUTOFF_LIMIT, rerank_k=rerank_k, min_match=threshold))
                for q in NONSENSE}
    return {"threshold": threshold, "returned": returned, "empty": sum(1 for n in returned.values() if n == 0),
            "of": len(NONSENSE)}


@dataclass(frozen=True)
class NamedCollection:
    folder: Path
    members: dict[str, set[str]]  # query -> the paths (relative to folder) it should rank first


def build_named_collection(folder: Path, seed: int, per_folder: int = 6, others: int = 30) -> NamedCollection:
    """Shapes pictures in folders named by a person, one renamed file, and unnamed others."""
    rng = random.Random(seed)
    members: dict[str, set[str]] = {}
    for name, query in NAMED_FOLDERS.items():
        written = write_collection(folder / name, [sample_scene(rng) for _ in range(per_folder)], seed)
        (folder / name / "scenes.json").unlink(missing_ok=True)
        members[query] = {f"{name}/{f}" for f in written}
    written = write_collection(folder / "misc", [sample_scene(rng) for _ in range(others)], seed + 1)
    (folder / "misc" / "scenes.json").unlink(missing_ok=True)
    first = sorted(written)[0]
    os.replace(folder / "misc" / first, folder / "misc" / NAMED_FILE)
    members[NAMED_FILE_QUERY] = {f"misc/{NAMED_FILE}"}
    return NamedCollection(folder, members)


def names_scores(named: NamedCollection, stores: Stores, models: Any, rerank_k: int,
                 modes: Sequence[str] = ("hybrid", "vector")) -> dict[str, Any]:
    """Per mode: for each name query, whether its pictures fill the first places, and P@size."""
    out: dict[str, Any] = {}
    for mode in modes:
        rows = []
        for query, wanted in named.members.items():
            hits = search(query, stores, models, limit=len(wanted), rerank_k=rerank_k, mode=mode, min_match=0.0)
            got = [os.path.relpath(h.path, named.folder) for h in hits]
            right = sum(1 for p in got if p in wanted)
            rows.append({"query": query, "size": len(wanted), "right_in_first": right,
                         "first": right == len(wanted)})
        out[mode] = {"queries": rows, "first_share": sum(r["first"] for r in rows) / len(rows)}
    return out
