"""Where concepts are kept: the catalog's `concepts` table (migration 0006), one row per concept
with its probe (weights, bias), the CLIP model it belongs to and the examples it learnt from
(their vectors included, so more examples retrain it without the old files). Also what training
reads of the catalog: which of some paths are indexed pictures, and a random draw of the rest."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import numpy as np
from imgsearch.concepts import DEFAULT_C, Concept, ConceptExample, UnknownConceptError
from imgsearch.stores.catalog import Catalog
from imgsearch.stores.schema import ConceptRow, FileRow
from sqlalchemy import delete, or_, select


def _row_concept(row: ConceptRow) -> Concept:
    params = json.loads(row.params or "{}")
    examples = json.loads(row.examples or "[]")
    return Concept(row.name, np.frombuffer(row.weights, dtype="<f4").astype(np.float32), float(row.bias),
                   row.clip_model, tuple(e["name"] for e in examples if e["positive"]),
                   tuple(e["name"] for e in examples if not e["positive"]), row.created_at, row.updated_at,
                   int(params.get("random_negatives", 0)), float(params.get("c", DEFAULT_C)))


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


class ConceptStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    # --- concepts -------------------------------------------------------------------------------
    def get(self, name: str) -> Concept | None:
        with self.catalog.session() as s:
            row = s.get(ConceptRow, name)
            return _row_concept(row) if row is not None else None

    def named(self, name: str) -> Concept:
        """The concept of this name; UnknownConceptError when there is none."""
        found = self.get(name)
        if found is None:
            raise UnknownConceptError(name)
        return found

    def all(self) -> list[Concept]:
        """Every concept, by name."""
        with self.catalog.session() as s:
            return [_row_concept(r) for r in s.scalars(select(ConceptRow).order_by(ConceptRow.name))]

    def examples(self, name: str) -> list[ConceptExample]:
        with self.catalog.session() as s:
            row = s.get(ConceptRow, name)
            return [] if row is None else [ConceptExample.from_json(e) for e in json.loads(row.examples or "[]")]

    def put(self, concept: Concept, examples: Sequence[ConceptExample]) -> None:
        """Insert or replace the concept of this name."""
        with self.catalog.session() as s, s.begin():
            row = s.get(ConceptRow, concept.name) or ConceptRow(name=concept.name)
            row.clip_model = concept.clip_model
            row.weights = np.asarray(concept.weights, dtype="<f4").tobytes()
            row.bias = float(concept.bias)
            row.examples = json.dumps([e.as_json() for e in examples])
            row.params = json.dumps({"random_negatives": concept.random_negatives, "c": concept.c})
            row.created_at, row.updated_at = concept.created_at, concept.updated_at
            s.add(row)

    def remove(self, name: str) -> bool:
        """True when there was such a concept."""
        with self.catalog.session() as s, s.begin():
            return bool(s.execute(delete(ConceptRow).where(ConceptRow.name == name)).rowcount)

    # --- what training reads of the catalog -----------------------------------------------------
    def indexed(self, paths: Iterable[str]) -> dict[str, tuple[int, str | None]]:
        """path -> (id, sha256) of those paths that are indexed pictures (with a vector)."""
        paths = list(dict.fromkeys(paths))
        out: dict[str, tuple[int, str | None]] = {}
        with self.catalog.session() as s:
            for start in range(0, len(paths), 500):
                q = select(FileRow.path, FileRow.id, FileRow.sha256).where(
                    FileRow.path.in_(paths[start:start + 500]), FileRow.has_vector, FileRow.error.is_(None))
                out.update({p: (i, sha) for p, i, sha in s.execute(q)})
        return out

    def random_pictures(self, n: int, exclude_ids: set[int], exclude_shas: set[str], seed: int) -> list[int]:
        """Up to `n` ids of indexed pictures drawn at random (the same draw for the same seed and
        catalog), leaving out these ids and any copy of these contents."""
        q = select(FileRow.id).where(FileRow.has_vector, FileRow.error.is_(None)).order_by(FileRow.id)
        if exclude_shas:
            q = q.where(or_(FileRow.sha256.is_(None), FileRow.sha256.not_in(sorted(exclude_shas))))
        with self.catalog.session() as s:
            pool = [i for i in s.scalars(q) if i not in exclude_ids]
        return sorted(random.Random(seed).sample(pool, min(n, len(pool))))


__all__ = ["ConceptStore", "now"]
