"""Zero-shot tags, the CLIP paper's way: a picture's probability for each class of a vocabulary is
a softmax over the cosines between its vector and each class's prompt embedding, divided by the
temperature τ the model learnt (`logit_scale` = 1/τ). No other model: one matrix product per batch
of vectors already stored, so a changed vocabulary re-tags a library without re-embedding it.

A vocabulary is a plain file (`parse_vocabulary` says its grammar). Classes may give several tags,
and a tag's probability is the sum over the classes that give it: "red circle -> red, circle" and
"blue circle -> blue, circle" make "circle" as likely as the two together. Measured on the shapes
world this marginalisation is what keeps a second object's tags (a picture's mass is split between
its objects' classes, yet each object's shape sums its colours): see the model card.

Prompt ensembling as in the CLIP paper: each class embeds every template filled with each of its
phrases; the class vector is the normalised mean of those unit vectors."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from imgsearch.errors import ConfigError
from imgsearch.progress import waiting

# The CLIP paper's ensemble for photos (a subset of its 80 ImageNet templates that cover photos).
PHOTO_TEMPLATES = ("a photo of a {}.", "a photo of the {}.", "a blurry photo of a {}.", "a close-up photo of a {}.",
                   "a bright photo of a {}.", "a cropped photo of a {}.", "a good photo of a {}.")
DEFAULT_THRESHOLD = 0.2
LABEL = re.compile(r"^[\w][\w '&+.-]{0,59}$")  # no quotes, colons, commas or bars: the catalog stores labels as JSON keys
MAX_CLASSES = 5000


class VocabularyError(ConfigError):
    """A vocabulary file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class TagClass:
    phrases: tuple[str, ...]  # what fills the templates' {}
    tags: tuple[str, ...]  # the labels this class gives


@dataclass(frozen=True)
class Section:
    """One softmax: its classes compete with each other, not with another section's."""

    name: str
    templates: tuple[str, ...]
    threshold: float
    classes: tuple[TagClass, ...]


@dataclass(frozen=True)
class Vocabulary:
    sections: tuple[Section, ...]
    source: str  # the file it came from, for messages
    digest: str  # of the file's content: a changed file means re-tagging

    @property
    def labels(self) -> list[str]:
        return sorted({t for s in self.sections for c in s.classes for t in c.tags})


def parse_vocabulary(text: str, source: str = "<vocabulary>") -> Vocabulary:
    """The grammar, one statement a line (`#` starts a comment):

        threshold: 0.2                  a tag is kept at this probability or more
        template: a photo of a {}.      a prompt template (repeatable; none given: "{}")
        [section name]                  a new softmax; threshold/templates after it are its own
        dog                             a class: its phrase, and the tag it gives
        puppy | dog -> dog, animal      phrases (ensembled) -> the tags it gives
        a room | a street ->            a class that gives no tag (somewhere for the mass to go)

    Templates and the threshold given before the first section are every section's defaults."""
    defaults: dict[str, Any] = {"templates": [], "threshold": DEFAULT_THRESHOLD}
    sections: list[dict[str, Any]] = []
    current = defaults

    def fail(number: int, why: str) -> VocabularyError:
        return VocabularyError(f"{source}, line {number}: {why}")

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = {"name": line[1:-1].strip() or f"section {len(sections) + 1}", "templates": [],
                       "threshold": None, "classes": []}
            sections.append(current)
            continue
        key, _, value = line.partition(":")
        if key.strip() in ("threshold", "template") and _ and "->" not in key:
            value = value.strip()
            if key.strip() == "threshold":
                try:
                    current["threshold"] = float(value)
                except ValueError:
                    raise fail(number, f"threshold is a number between 0 and 1, not {value!r}") from None
                if not 0 < current["threshold"] <= 1:
                    raise fail(number, "threshold is a number above 0 and at most 1")
            else:
                if value.count("{}") != 1:
                    raise fail(number, "a template holds {} once, where the class's phrase goes")
                current["templates"].append(value)
            continue
        if current is defaults:
            sections.append({"name": "tags", "templates": [], "threshold": None, "classes": []})
            current = sections[-1]
        left, arrow, right = line.partition("->")
        phrases = tuple(p.strip() for p in left.split("|") if p.strip())
        tags = tuple(t.strip() for t in right.split(",") if t.strip()) if arrow else phrases[:1]
        if not phrases or not (tags or arrow):
            raise fail(number, "a class is `phrase [| phrase...] [-> tag, tag...]`")
        for tag in tags:
            if not LABEL.match(tag):
                raise fail(number, f"{tag!r} is not a usable tag: letters, digits, spaces and - ' & + . (60 at most)")
        current["classes"].append(TagClass(phrases, tags))

    built = []
    for s in sections:
        if not s["classes"]:
            continue
        threshold = s["threshold"] if s["threshold"] is not None else defaults["threshold"]
        templates = tuple(s["templates"] or defaults["templates"] or ["{}"])
        built.append(Section(s["name"], templates, threshold, tuple(s["classes"])))
    if not built:
        raise VocabularyError(f"{source} names no classes to tag with")
    if sum(len(s.classes) for s in built) > MAX_CLASSES:
        raise VocabularyError(f"{source} has more than {MAX_CLASSES:,} classes")
    return Vocabulary(tuple(built), source, hashlib.sha256(text.encode()).hexdigest())


def load_vocabulary(path: Path) -> Vocabulary:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise VocabularyError(f"cannot read the tag vocabulary {path}: {e}. Check IMGSEARCH_TAGS_FILE.") from None
    return parse_vocabulary(text, str(path))


class Tagger:
    """A vocabulary's classes embedded with one CLIP model; `tag` turns picture vectors into tags.
    The classes are embedded on first use (a run with nothing to tag pays nothing) and kept in
    `cache_dir` under the tagger's id, with the model's temperature: the default vocabulary is
    ~2,100 prompts, ~90 s of a base-size text tower on 2 AVX2 cores (bench report), paid once per
    vocabulary and model. `clip` (a ClipEncoder) is asked for only when they are not kept, so
    tagging from kept classes loads no model."""

    def __init__(self, vocabulary: Vocabulary, clip_id: str, clip: Callable[[], Any],
                 cache_dir: Path | None = None) -> None:
        self.vocabulary, self._clip = vocabulary, clip
        self.id = f"{vocabulary.digest[:16]}@{clip_id}"
        name = hashlib.sha256(self.id.encode()).hexdigest()[:20]
        self._cache = None if cache_dir is None else Path(cache_dir) / f"tag-classes-{name}.npz"
        self._classes: list[np.ndarray] | None = None
        self._scale: float | None = None

    @property
    def classes(self) -> list[np.ndarray]:
        """Per section, the unit vector of each class (the mean of its prompts' unit vectors)."""
        if self._classes is None:
            self._classes, self._scale = self._load() or self._embed()
        return self._classes

    @property
    def scale(self) -> float:
        """1/τ as the model learnt it (CLIP clamps it at 100); a model without one gets CLIP's
        final value."""
        if self._scale is None:
            self.classes  # noqa: B018 - kept with the classes
        assert self._scale is not None
        return self._scale

    def _load(self) -> tuple[list[np.ndarray], float] | None:
        if self._cache is None or not self._cache.exists():
            return None
        try:
            with np.load(self._cache) as stored:
                classes = [stored[f"s{i}"] for i in range(len(self.vocabulary.sections))]
                scale = float(stored["scale"])
        except (OSError, KeyError, ValueError):
            return None  # damaged or of another layout: embedded again
        if [len(c) for c in classes] != [len(s.classes) for s in self.vocabulary.sections]:
            return None
        return classes, scale

    def _embed(self) -> tuple[list[np.ndarray], float]:
        clip = self._clip()
        learnt = getattr(clip.model, "logit_scale", None)
        scale = float(learnt.detach().exp()) if learnt is not None else 100.0
        classes = []
        with waiting("embedding the tag vocabulary, once for this model"):
            for section in self.vocabulary.sections:
                phrases = [p for c in section.classes for p in c.phrases]
                # (templates, phrases, dim): each template's words computed once (`encode_templated`)
                vectors = np.stack([clip.encode_templated(t, phrases) for t in section.templates])
                rows, start = [], 0
                for c in section.classes:
                    mean = vectors[:, start:start + len(c.phrases)].mean(axis=(0, 1))
                    rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
                    start += len(c.phrases)
                classes.append(np.stack(rows).astype(np.float32))
        if self._cache is not None:
            try:
                self._cache.parent.mkdir(parents=True, exist_ok=True)
                part = self._cache.with_suffix(".part.npz")
                np.savez(part, scale=np.float64(scale), **{f"s{i}": c for i, c in enumerate(classes)})
                os.replace(part, self._cache)
            except OSError:
                pass  # a read-only index folder only costs the embedding next time
        return classes, scale

    def tag(self, vectors: np.ndarray) -> list[dict[str, float]]:
        """Per picture: label -> probability, for the labels at or above their threshold."""
        out: list[dict[str, float]] = [{} for _ in range(len(vectors))]
        for label, threshold, p in self.probabilities(vectors):
            for row in np.flatnonzero(p >= threshold):
                out[row][label] = max(round(float(p[row]), 4), out[row].get(label, 0.0))
        return [dict(sorted(t.items(), key=lambda kv: -kv[1])) for t in out]

    def probabilities(self, vectors: np.ndarray) -> list[tuple[str, float, np.ndarray]]:
        """(label, its section's threshold, its probability per picture) for every label of
        every section: the sum of the softmax over the section's classes that give it."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        out = []
        for section, classes in zip(self.vocabulary.sections, self.classes):
            logits = vectors @ classes.T * self.scale
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            out += [(label, section.threshold, p[:, columns].sum(axis=1)) for label, columns in _columns(section).items()]
        return out


def _columns(section: Section) -> dict[str, list[int]]:
    columns: dict[str, list[int]] = {}
    for i, c in enumerate(section.classes):
        for tag in dict.fromkeys(c.tags):
            columns.setdefault(tag, []).append(i)
    return columns


__all__ = ["PHOTO_TEMPLATES", "Section", "TagClass", "Tagger", "Vocabulary", "VocabularyError", "load_vocabulary",
           "parse_vocabulary"]
