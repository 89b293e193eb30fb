"""Concepts taught by example: the CLIP paper's linear probe as a feature. A concept is a
regularised logistic regression over L2-normalised CLIP image vectors, trained on a few pictures
that show it (positives), pictures that do not (`--not`) and random pictures of the library;
its probability scores any picture of the same CLIP model, and its weight direction is a query
vector a nearest-neighbour search ranks by the concept's logit (cosine = w·x / |w|, and the
logit is w·x + b, so both orders agree).

Pure data and arithmetic here (numpy; scikit-learn only inside `fit`): where examples come from
is `imgsearch.library.concepts`, where concepts are kept is `imgsearch.stores.concepts`."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from imgsearch.errors import ConfigError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_RULE = "1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"
# Inverse regularisation strength of the probe (scikit-learn's C; the loss is
# C * sum(weighted log-loss) + |w|^2 / 2, the sample weights summing to the number of pictures).
# CLIP vectors are unit length and pictures of one library sit close together, so a concept's
# evidence is a small difference along a few directions that 5 examples pin down poorly: too weak
# a penalty (C >= 10) lets them fit their own noise in 128-512 free weights, too strong a one
# (C <= 0.01) shrinks |w| until no probability leaves the classes' share. Swept over 0.01-100 on
# the held-out shapes world (5 draws each of 5 and 20 examples, 200 random negatives): precision@10
# and recall at p >= 0.5 were best and flat over C = 0.1-1 and fell on either side; 1 (also
# scikit-learn's default) is kept. Standardising each dimension first was worse at every C.
DEFAULT_C = 1.0
# Random library pictures drawn as negatives besides the `--not` ones: enough to cover what a
# library holds, few enough that the rare ones among them that show the concept (unlabelled
# positives) weigh little against the examples.
DEFAULT_RANDOM_NEGATIVES = 200
# A random negative counts this much of a `--not` example: it is only probably not the concept.
RANDOM_WEIGHT = 0.5
MAX_EXAMPLES = 1000


class ConceptError(ConfigError):
    """A concept that cannot be made or found: bad name, no usable example, unknown name."""


class UnknownConceptError(ConceptError):
    """No concept of that name; the one message for it, wherever it is asked for."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no concept named {name!r} (imgsearch concept list shows them; "
                         f"imgsearch concept add {name} PICTURE... teaches it)")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConceptError(f"a concept name is {NAME_RULE}, not {name[:80]!r}" if isinstance(name, str)
                           else f"a concept name is {NAME_RULE}")
    return name


def _vector_b64(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


def _vector_from_b64(s: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype="<f4").astype(np.float32)


@dataclass(frozen=True)
class ConceptExample:
    """A picture a concept was taught with: its name (an indexed picture's path, else the file's
    name), which side it was on, its CLIP vector (kept, so adding examples retrains without the
    old files) and whether it came from the index."""

    name: str
    positive: bool
    vector: np.ndarray = field(repr=False)
    indexed: bool = True

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "positive": self.positive, "indexed": self.indexed,
                "vector": _vector_b64(self.vector)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ConceptExample:
        return cls(str(d["name"]), bool(d["positive"]), _vector_from_b64(d["vector"]), bool(d.get("indexed", True)))


@dataclass(frozen=True)
class Concept:
    """A trained concept: p(concept | picture) = sigmoid(weights · x + bias) for the picture's
    L2-normalised CLIP vector x of model `clip_model`."""

    name: str
    weights: np.ndarray = field(repr=False)  # float32, shape (dim,)
    bias: float
    clip_model: str
    positives: tuple[str, ...]  # the examples' names
    negatives: tuple[str, ...]  # the `--not` examples' names (random library pictures not kept)
    created_at: datetime
    updated_at: datetime
    random_negatives: int = 0  # how many random library pictures the last training drew
    c: float = DEFAULT_C

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        """w·x + b per row of `vectors` ((n, dim), or one (dim,) vector: shape (1,))."""
        x = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if x.shape[1] != self.dim:
            raise ConceptError(f"concept {self.name!r} takes {self.dim}-dimensional vectors of {self.clip_model}, "
                               f"not {x.shape[1]}-dimensional ones")
        return x @ self.weights + np.float32(self.bias)

    def probability(self, vectors: np.ndarray) -> np.ndarray:
        """sigmoid(w·x + b) per row, float32 in [0, 1]."""
        z = self.logits(vectors).astype(np.float64)
        return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)  # the sigmoid, without overflow

    def direction(self) -> np.ndarray:
        """w / |w| (float32): the query vector whose cosine with a unit x is w·x / |w|, so the
        vector engine's nearest search ranks pictures by the concept's logit."""
        norm = float(np.linalg.norm(self.weights))
        if norm == 0.0:
            return np.zeros_like(self.weights, dtype=np.float32)
        return (self.weights / norm).astype(np.float32)

    def summary(self) -> dict[str, Any]:
        """What `concept show` prints: everything but the weights."""
        return {"name": self.name, "clip_model": self.clip_model, "dim": self.dim,
                "positives": list(self.positives), "negatives": list(self.negatives),
                "random_negatives": self.random_negatives, "c": self.c, "bias": self.bias,
                "weight_norm": float(np.linalg.norm(self.weights)),
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat()}

    def as_json(self) -> dict[str, Any]:
        """The summary and the weights (a list of floats): what the service sends."""
        return {**self.summary(), "weights": [float(w) for w in self.weights]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Concept:
        return cls(str(d["name"]), np.asarray(d["weights"], dtype=np.float32), float(d["bias"]), str(d["clip_model"]),
                   tuple(d.get("positives", ())), tuple(d.get("negatives", ())),
                   datetime.fromisoformat(d["created_at"]), datetime.fromisoformat(d["updated_at"]),
                   int(d.get("random_negatives", 0)), float(d.get("c", DEFAULT_C)))


def fit(positives: np.ndarray, negatives: np.ndarray, random_negatives: np.ndarray | None = None,
        c: float = DEFAULT_C) -> tuple[np.ndarray, float]:
    """(weights float32 (dim,), bias) of an L2-regularised logistic regression (scikit-learn,
    L-BFGS, as the CLIP paper's linear probes) separating `positives` from `negatives` and
    `random_negatives` (each (n, dim), unit rows). Classes are balanced (the few positives weigh
    as much as all negatives), and a random negative weighs RANDOM_WEIGHT of a chosen one."""
    from sklearn.linear_model import LogisticRegression

    dim = positives.shape[1] if positives.ndim == 2 else 0
    if len(positives) == 0:
        raise ConceptError("no example picture shows the concept")
    chosen = np.asarray(negatives, dtype=np.float32).reshape(-1, dim)
    drawn = (np.zeros((0, dim), np.float32) if random_negatives is None
             else np.asarray(random_negatives, dtype=np.float32).reshape(-1, dim))
    if len(chosen) + len(drawn) == 0:
        raise ConceptError("no picture to tell the concept from: give --not examples or index some pictures")
    x = np.concatenate([positives.astype(np.float32), chosen, drawn])
    y = np.concatenate([np.ones(len(positives)), np.zeros(len(chosen) + len(drawn))])
    weight = np.concatenate([np.ones(len(positives) + len(chosen)), np.full(len(drawn), RANDOM_WEIGHT)])
    # balanced: each class's weights sum to half the total
    pos, neg = weight[y == 1].sum(), weight[y == 0].sum()
    weight[y == 1] *= (pos + neg) / (2 * pos)
    weight[y == 0] *= (pos + neg) / (2 * neg)
    model = LogisticRegression(C=c, max_iter=1000)
    model.fit(x, y, sample_weight=weight)
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def unique_examples(old: Sequence[ConceptExample], new: Sequence[ConceptExample]) -> list[ConceptExample]:
    """The old examples and the new ones; a picture given again takes its new side and vector."""
    merged = {(e.name, e.indexed): e for e in old}
    for e in new:
        merged[e.name, e.indexed] = e
    return list(merged.values())


__all__ = ["DEFAULT_C", "DEFAULT_RANDOM_NEGATIVES", "Concept", "ConceptError", "ConceptExample",
           "UnknownConceptError", "check_name", "fit", "unique_examples"]
