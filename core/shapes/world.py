"""The shapes world (see shared/shapes-world.md): scenes, the sentences that describe them, and
what counts as a match. Pure data and logic; drawing lives in `render`."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

SHAPES = ("circle", "square", "triangle", "star")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("small", "large")
BACKGROUNDS = ("white", "gray", "black")
RELATIONS = ("left of", "right of", "above", "below")
FLIPPED = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

# Every word a sentence of this world can hold: the bundled tokenizers' vocabulary.
WORDS = sorted(
    {"a", "on", "background", "of", "left", "right", "above", "below"}
    | set(SHAPES) | set(COLOURS) | set(SIZES) | set(BACKGROUNDS)
)


@dataclass(frozen=True)
class Obj:
    shape: str
    colour: str
    size: str
    cx: float  # centre, in pixels
    cy: float
    extent: float  # width of the shape's bounding box, in pixels
    rotation: float = 0.0  # degrees


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    background: str
    objects: tuple[Obj, ...]

    @property
    def relation(self) -> str | None:
        """How objects[0] stands to objects[1], judged from the centres."""
        if len(self.objects) != 2:
            return None
        return relation_between(self.objects[0], self.objects[1])


def relation_between(a: Obj, b: Obj) -> str:
    dx, dy = b.cx - a.cx, b.cy - a.cy
    if abs(dx) > abs(dy):
        return "left of" if dx > 0 else "right of"
    return "above" if dy > 0 else "below"


@dataclass(frozen=True)
class Query:
    """A parsed sentence: one object's attributes, or two objects and a relation."""

    text: str
    first: dict[str, str]
    relation: str | None = None
    second: dict[str, str] = field(default_factory=dict)
    background: str | None = None

    @property
    def kind(self) -> str:
        return "relation" if self.relation else "attribute"


_OBJ = r"a(?: (?P<{p}size>small|large))? (?P<{p}colour>\w+) (?P<{p}shape>\w+)"
_ONE = re.compile("^" + _OBJ.format(p="a") + r"(?: on a (?P<bg>\w+) background)?$")
_TWO = re.compile(
    "^" + _OBJ.format(p="a") + r" (?P<rel>left of|right of|above|below) " + _OBJ.format(p="b") + "$"
)


def parse(text: str) -> Query:
    """Parse a sentence of the world; raises ValueError for anything else."""
    clean = " ".join(text.lower().split())
    if m := _TWO.match(clean):
        first = _attrs(m, "a")
        second = _attrs(m, "b")
        return Query(text, first, m["rel"], second)
    if m := _ONE.match(clean):
        return Query(text, _attrs(m, "a"), background=m["bg"])
    raise ValueError(f"not a sentence of the shapes world: {text!r}")


def _attrs(m: re.Match[str], p: str) -> dict[str, str]:
    attrs = {k: m[p + k] for k in ("size", "colour", "shape") if m[p + k]}
    if attrs["colour"] not in COLOURS or attrs["shape"] not in SHAPES:
        raise ValueError(f"unknown colour or shape in {m.string!r}")
    return attrs


def _has(obj: Obj, attrs: dict[str, str]) -> bool:
    return all(getattr(obj, k) == v for k, v in attrs.items())


def matches(query: Query | str, scene: Scene) -> bool:
    """The spec's rule: attributes match any object holding them all; a relation needs both
    objects and the relation between them."""
    q = parse(query) if isinstance(query, str) else query
    if q.background and q.background != scene.background:
        return False
    if q.relation is None:
        return any(_has(o, q.first) for o in scene.objects)
    if len(scene.objects) != 2:
        return False
    for a, b in (scene.objects, scene.objects[::-1]):
        if _has(a, q.first) and _has(b, q.second) and relation_between(a, b) == q.relation:
            return True
    return False


def describe(scene: Scene, rng: random.Random | None = None) -> str:
    """One true sentence for a scene, drawn at random among the spec's forms."""
    rng = rng or random.Random(0)
    if len(scene.objects) == 1:
        o = scene.objects[0]
        words = ["a"]
        if rng.random() < 0.5:
            words.append(o.size)
        words += [o.colour, o.shape]
        if rng.random() < 0.3:
            words += ["on", "a", scene.background, "background"]
        return " ".join(words)
    a, b = scene.objects
    if rng.random() < 0.5:
        a, b = b, a
    return f"a {a.colour} {a.shape} {relation_between(a, b)} a {b.colour} {b.shape}"


def canonical_caption(scene: Scene) -> str:
    """The single sentence the captioner learns to write: size for one object, and for two the
    left-most (or top-most) object first, so the target is deterministic."""
    if len(scene.objects) == 1:
        o = scene.objects[0]
        return f"a {o.size} {o.colour} {o.shape}"
    a, b = scene.objects
    rel = relation_between(a, b)
    if rel in ("right of", "below"):
        a, b, rel = b, a, FLIPPED[rel]
    return f"a {a.colour} {a.shape} {rel} a {b.colour} {b.shape}"


def hard_negatives(sentence: str) -> list[str]:
    """Sentences that share a true sentence's words but not its meaning: colours swapped,
    shapes swapped, relation flipped (the cases ITM must reject)."""
    q = parse(sentence)
    if q.relation is None:
        return []
    a, b = q.first, q.second
    out = []
    if a["colour"] != b["colour"]:
        out.append(f"a {b['colour']} {a['shape']} {q.relation} a {a['colour']} {b['shape']}")
    if a["shape"] != b["shape"]:
        out.append(f"a {a['colour']} {b['shape']} {q.relation} a {b['colour']} {a['shape']}")
    out.append(f"a {a['colour']} {a['shape']} {FLIPPED[q.relation]} a {b['colour']} {b['shape']}")
    return out


def caption_is_right(caption: str, scene: Scene) -> bool:
    """A caption is right when it names colour and shape of every object and, for two, the
    relation (the evaluation's rule for captioners)."""
    try:
        q = parse(caption)
    except ValueError:
        return False
    if len(scene.objects) == 1:
        return q.relation is None and matches(q, scene)
    return q.relation is not None and matches(q, scene)
