"""The probe itself (imgsearch.concepts), on synthetic unit vectors: what the searcher relies on."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from imgsearch.concepts import Concept, ConceptError, ConceptExample, check_name, fit, unique_examples


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _clusters(rng: np.random.Generator, dim: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    common, concept = rng.normal(size=dim), rng.normal(size=dim)
    pos = _unit(common + 0.6 * concept + 0.3 * rng.normal(size=(8, dim)))
    neg = _unit(common + 0.3 * rng.normal(size=(60, dim)))
    test = _unit(common + np.where(np.arange(40)[:, None] < 20, 0.6, 0.0) * concept + 0.3 * rng.normal(size=(40, dim)))
    return pos, neg, test


def _concept(weights: np.ndarray, bias: float) -> Concept:
    when = datetime(2026, 11, 30, 12, 0, 0)
    return Concept("c", weights, bias, "clip-x", ("a.jpg",), ("b.jpg",), when, when, 60, 10.0)


def test_fit_separates_and_the_direction_ranks_by_the_logit() -> None:
    pos, neg, test = _clusters(np.random.default_rng(0))
    weights, bias = fit(pos, neg[:5], neg[5:])
    concept = _concept(weights, bias)
    p = concept.probability(test)
    assert p.dtype == np.float32 and p.shape == (40,) and ((p >= 0) & (p <= 1)).all()
    assert (p[:20] > 0.5).mean() >= 0.9 and (p[20:] < 0.5).mean() >= 0.9
    d = concept.direction()
    assert d.dtype == np.float32 and np.linalg.norm(d) == pytest.approx(1.0, abs=1e-5)
    assert list(np.argsort(-(test @ d))) == list(np.argsort(-concept.logits(test)))
    assert concept.probability(test[0]).shape == (1,)


def test_probability_is_the_sigmoid_without_overflow() -> None:
    concept = _concept(np.array([1000.0, 0.0], np.float32), 0.0)
    p = concept.probability(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], np.float32))
    assert p.tolist() == [1.0, 0.0, 0.5]
    with pytest.raises(ConceptError, match="2-dimensional"):
        concept.probability(np.zeros((1, 3), np.float32))


def test_json_round_trip_keeps_everything() -> None:
    pos, neg, _ = _clusters(np.random.default_rng(1))
    concept = _concept(*fit(pos, neg))
    back = Concept.from_json(concept.as_json())
    assert np.array_equal(back.weights, concept.weights) and back.bias == concept.bias
    assert back.summary() == concept.summary() and "weights" not in concept.summary()
    example = ConceptExample("/p/a.jpg", True, pos[0])
    assert np.array_equal(ConceptExample.from_json(example.as_json()).vector, pos[0])


def test_no_positive_or_nothing_to_tell_it_from_is_an_error() -> None:
    pos, neg, _ = _clusters(np.random.default_rng(2))
    with pytest.raises(ConceptError, match="no example"):
        fit(pos[:0], neg)
    with pytest.raises(ConceptError, match="--not"):
        fit(pos, neg[:0], None)


@pytest.mark.parametrize("name", ["stars", "Black-bg_2", "a.b", "x" * 64])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", ".x", "..", "a/b", "a b", "x" * 65, "é", "a\x00"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ConceptError, match="a concept name is"):
        check_name(name)


def test_an_example_given_again_takes_its_new_side() -> None:
    v = np.zeros(2, np.float32)
    merged = unique_examples([ConceptExample("a", True, v), ConceptExample("b", True, v)],
                             [ConceptExample("a", False, v), ConceptExample("c", True, v)])
    assert [(e.name, e.positive) for e in merged] == [("a", False), ("b", True), ("c", True)]
