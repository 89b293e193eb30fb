"""Where concepts are kept (`imgsearch.stores.concepts`), on SQLite and on PostgreSQL: a probe and
its examples come back as stored (bytes, floats, JSON), and training's reads of the catalog."""

from __future__ import annotations

import numpy as np

from imgsearch.concepts import Concept, ConceptExample
from imgsearch.stores.catalog import NewFile, open_catalog
from imgsearch.stores.concepts import ConceptStore, now


def test_a_concept_comes_back_as_stored_and_training_reads_the_catalog(catalog_url: str) -> None:
    cat = open_catalog(catalog_url)
    ids = cat.put_pending([NewFile(f"/p/{i}.jpg", 1, 1, f"{i:064x}", 4, 3, None) for i in range(6)])
    cat.mark_vectors(ids[:5])  # the last one has no vector yet: no training example
    store = ConceptStore(cat)
    weights = np.random.default_rng(0).normal(size=8).astype(np.float32)
    examples = [ConceptExample("/p/0.jpg", True, weights), ConceptExample("cat.png", False, -weights, False)]
    concept = Concept("sunset", weights, -0.25, "ViT-B-32", ("/p/0.jpg",), ("cat.png",), now(), now(), 3, 2.0)
    store.put(concept, examples)
    back = store.get("sunset")
    assert back is not None and back.bias == -0.25 and back.c == 2.0 and back.random_negatives == 3
    assert np.array_equal(back.weights, weights) and (back.positives, back.negatives) == (concept.positives, concept.negatives)
    assert [(e.name, e.positive, e.indexed) for e in store.examples("sunset")] == [
        ("/p/0.jpg", True, True), ("cat.png", False, False)]
    store.put(Concept("sunset", -weights, 0.5, "ViT-B-32", (), (), now(), now()), [])  # replaced
    assert [c.bias for c in store.all()] == [0.5]
    assert store.indexed(["/p/0.jpg", "/p/5.jpg", "/p/none.jpg"]) == {"/p/0.jpg": (ids[0], f"{0:064x}")}
    drawn = store.random_pictures(10, {ids[1]}, {f"{2:064x}"}, seed=1)
    assert drawn == sorted({ids[0], ids[3], ids[4]}) == store.random_pictures(10, {ids[1]}, {f"{2:064x}"}, seed=1)
    assert store.remove("sunset") and not store.remove("sunset") and store.get("sunset") is None
    cat.close()
