"""The held-out evaluation collection: shapes-world pictures drawn by the project's renderer with
a seed far from training's (1234..1250), the queries asked of it and which pictures each query
should find. Relevance is always `world.matches` on the written scenes, never a hand label, so
the figures follow the spec's rule (shared/shapes-world.md).

Half of the pictures come in relation triplets: a two-object picture beside its two hard
negatives (colours swapped, relation flipped), which CLIP alone tends to confuse and ITM
reranking exists to separate. The rest are single objects and random pairs (distractors, and
what attribute queries find)."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from imgsearch.shapes.render import (
    CLEAR_AXIS_RATIO, load_manifest, sample_scene, swapped_colours, write_collection,
)
from imgsearch.shapes.world import (
    FLIPPED, Scene, canonical_caption, caption_is_right, matches, parse, relation_between,
)

QUERIES_FILE = "queries.json"
KINDS = ("attribute", "relation")


@dataclass(frozen=True)
class Triplet:
    """File names of a relation picture and its two hard negatives."""

    positive: str
    swapped: str  # same objects and places, colours exchanged
    flipped: str  # same objects, the opposite relation


@dataclass(frozen=True)
class EvalQuery:
    text: str
    kind: str  # "attribute" or "relation"
    relevant: frozenset[str]  # file names that `world.matches`
    triplet: Triplet | None = None  # the triplet a relation query was made from


@dataclass(frozen=True)
class Collection:
    folder: Path
    seed: int
    scenes: dict[str, Scene]  # file name -> scene
    queries: tuple[EvalQuery, ...]

    def path(self, name: str) -> Path:
        return self.folder / name


def _distinct_pair(rng: random.Random, min_axis_ratio: float) -> Scene:
    """A two-object scene whose objects differ in colour, so swapping colours changes meaning."""
    while True:
        scene = sample_scene(rng, 2, min_axis_ratio=min_axis_ratio)
        if scene.objects[0].colour != scene.objects[1].colour:
            return scene


def _triplet_scenes(rng: random.Random, min_axis_ratio: float) -> tuple[Scene, Scene, Scene]:
    base = _distinct_pair(rng, min_axis_ratio)
    kinds = [(o.shape, o.colour, o.size) for o in base.objects]
    rel = base.relation
    assert rel is not None
    flipped = sample_scene(rng, 2, relation=FLIPPED[rel], objects=kinds, min_axis_ratio=min_axis_ratio)
    return base, swapped_colours(base), flipped


def _relation_text(scene: Scene, rng: random.Random) -> str:
    """The positive's sentence, phrased either way round ("X left of Y" or "Y right of X")."""
    a, b = scene.objects
    if rng.random() < 0.5:
        a, b = b, a
    return f"a {a.colour} {a.shape} {relation_between(a, b)} a {b.colour} {b.shape}"


def _attribute_texts(scenes: list[Scene], rng: random.Random, count: int) -> list[str]:
    """Attribute sentences drawn from objects that are there (so each finds something); about a
    third name the size too."""
    objects = [o for s in scenes for o in s.objects]
    texts: list[str] = []
    for _ in range(count * 50):
        if len(texts) >= count:
            break
        o = rng.choice(objects)
        text = f"a {o.size} {o.colour} {o.shape}" if rng.random() < 1 / 3 else f"a {o.colour} {o.shape}"
        if text not in texts:
            texts.append(text)
    return texts


def _relevant(text: str, scenes: dict[str, Scene]) -> frozenset[str]:
    q = parse(text)
    return frozenset(name for name, scene in scenes.items() if matches(q, scene))


def build_collection(
    folder: Path, n: int = 400, seed: int = 2026, min_axis_ratio: float = CLEAR_AXIS_RATIO,
) -> Collection:
    """Write `n` pictures (plus scenes.json and queries.json) into an empty or new `folder`.
    Two objects stand with the larger gap at least `min_axis_ratio` times the smaller (the
    default keeps relations clear-cut; 1.0 is every placement the spec allows)."""
    if n < 12:
        raise ValueError("an evaluation collection needs at least 12 pictures")
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: stale pictures would join the collection")
    rng = random.Random(seed)
    n_triplets = max(1, n // 6)  # 3 pictures each: about half of the collection
    n_rest = n - 3 * n_triplets
    n_pairs = n_rest * 2 // 5
    groups: list[list[Scene]] = [list(_triplet_scenes(rng, min_axis_ratio)) for _ in range(n_triplets)]
    groups += [[_distinct_pair(rng, min_axis_ratio)] for _ in range(n_pairs)]
    groups += [[sample_scene(rng, 1)] for _ in range(n_rest - n_pairs)]
    order = list(range(len(groups)))
    rng.shuffle(order)  # triplets must not sit in neighbouring ids
    scenes = [s for g in order for s in groups[g]]
    written = write_collection(folder, scenes, seed)
    names = list(written)
    # Each triplet's pictures are written in a row; find them back by position.
    starts, pos = {}, 0
    for g in order:
        starts[g] = pos
        pos += len(groups[g])
    queries: list[EvalQuery] = []
    for g in range(n_triplets):
        i = starts[g]
        trip = Triplet(names[i], names[i + 1], names[i + 2])
        text = _relation_text(written[trip.positive], rng)
        queries.append(EvalQuery(text, "relation", _relevant(text, written), trip))
    for text in _attribute_texts(scenes, rng, max(4, n_triplets)):
        queries.append(EvalQuery(text, "attribute", _relevant(text, written)))
    collection = Collection(folder, seed, written, tuple(queries))
    _save_queries(collection)
    return collection


def _save_queries(c: Collection) -> None:
    rows = [
        {"text": q.text, "kind": q.kind, "relevant": sorted(q.relevant),
         "triplet": [q.triplet.positive, q.triplet.swapped, q.triplet.flipped] if q.triplet else None}
        for q in c.queries
    ]
    data = {"seed": c.seed, "pictures": len(c.scenes), "queries": rows}
    (c.folder / QUERIES_FILE).write_text(json.dumps(data, indent=1))


def load_collection(folder: Path) -> Collection:
    """Read back a collection written by `build_collection`; relevance is recomputed from the
    scenes, so a changed match rule can never hide behind a stored label."""
    scenes = load_manifest(folder)
    data = json.loads((folder / QUERIES_FILE).read_text())
    queries = tuple(
        EvalQuery(r["text"], r["kind"], _relevant(r["text"], scenes),
                  Triplet(*r["triplet"]) if r["triplet"] else None)
        for r in data["queries"]
    )
    return Collection(folder, int(data["seed"]), scenes, queries)


def judge_captions(collection: Collection, captions: Mapping[str, str | None]) -> dict[str, object]:
    """Right / total / share of captions (by picture name; None = no caption) that
    `caption_is_right` for their scene, for one-object, two-object and all pictures, plus a few
    wrong ones beside the truth."""
    tally = {"one": [0, 0], "two": [0, 0], "all": [0, 0]}
    wrong: list[dict[str, str | None]] = []
    for name in sorted(captions):
        scene, caption = collection.scenes[name], captions[name]
        right = caption is not None and caption_is_right(caption, scene)
        for key in ("one" if len(scene.objects) == 1 else "two", "all"):
            tally[key][0] += right
            tally[key][1] += 1
        if not right and len(wrong) < 8:
            wrong.append({"picture": name, "caption": caption, "truth": canonical_caption(scene)})
    out: dict[str, object] = {k: {"right": r, "total": n, "share": r / n if n else 0.0}
                              for k, (r, n) in tally.items()}
    out["wrong_examples"] = wrong
    return out


def diagnose(
    collection: Collection, rankings: Mapping[str, Sequence[Sequence[str]]]
) -> list[dict[str, object]]:
    """Per query and ranking config (rankings: config -> one ranked name list per query, in the
    collection's order): the rank of the first relevant picture, and for relation queries where
    positive, swapped and flipped landed (None: not in the list). What to read when a figure drops."""
    def rank(ranked: Sequence[str], wanted: frozenset[str]) -> int | None:
        return next((r for r, name in enumerate(ranked, 1) if name in wanted), None)

    rows: list[dict[str, object]] = []
    for i, q in enumerate(collection.queries):
        row: dict[str, object] = {"text": q.text, "kind": q.kind, "relevant": len(q.relevant),
                                  "first_relevant": {c: rank(r[i], q.relevant) for c, r in rankings.items()}}
        if q.triplet:
            members = (q.triplet.positive, q.triplet.swapped, q.triplet.flipped)
            row["triplet_ranks"] = {c: [rank(r[i], frozenset({m})) for m in members]
                                    for c, r in rankings.items()}
        rows.append(row)
    return rows
