"""Words against each picture's file name, folder names and caption: the catalog's FTS5 table
(migration 0003, kept in step by triggers), ranked by BM25. Hybrid search fuses these
candidates with CLIP's; `evidence` says which of a query's words matched where (the ranking's
text score, the cutoff's name match, `--explain`). SQLite only: on another database `available`
is False and searches stay vector-only."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import column, func, inspect, select, table, text

from imgsearch.stores.catalog import Catalog, passing
from imgsearch.stores.schema import FileRow

FIELDS = ("name", "folders", "caption", "text")
# Words too common to say anything about a picture; a query of only these has no text part.
STOPWORDS = frozenset(
    "a an the of and or in on at to with by for from is are was be it its this that these those some "
    "any my our your their his her photo photos picture pictures image images".split())
_WORD = re.compile(r"[^\W_]+")  # as FTS5's unicode61: letters and digits; '_' and '-' separate
_FTS = table("files_fts", column("rowid"))
_WEIGHTS = (2.0, 1.5, 1.0, 1.5)  # bm25 column weights: a word in the file name says most


def query_words(texts: Iterable[str]) -> list[str]:
    """The distinct words that count, in order, lower-cased."""
    seen: dict[str, None] = {}
    for t in texts:
        for w in _WORD.findall(t.casefold()):
            if w not in STOPWORDS:
                seen.setdefault(w, None)
    return list(seen)


def _match(words: Sequence[str], field: str | None = None) -> str:
    """An FTS5 query: any of the words (each quoted, so no word is read as an operator)."""
    terms = " OR ".join(f'"{w}"' for w in words)
    return f"{{{field}}} : ({terms})" if field else terms


class FullText:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._available: bool | None = None
        self._total: int | None = None
        self._common_words: dict[tuple[str, str], bool] = {}

    @property
    def available(self) -> bool:
        if self._available is None:
            engine = self.catalog.engine
            self._available = engine.dialect.name == "sqlite" and inspect(engine).has_table("files_fts")
        return self._available

    def search(self, words: Sequence[str], limit: int, folders: Sequence[str] = (),
               date_from: datetime | None = None, date_until: datetime | None = None,
               cameras: Sequence[str] | None = None) -> list[tuple[int, float]]:
        """(file id, BM25 relevance: higher is better) of indexed pictures holding any of the
        words and passing the filters, best first."""
        if not words or not self.available or (cameras is not None and not cameras) or limit <= 0:
            return []
        relevance = -func.bm25(text("files_fts"), *_WEIGHTS)
        q = (select(FileRow.id, relevance.label("relevance"))
             .select_from(_FTS.join(FileRow.__table__, FileRow.id == _FTS.c.rowid))
             .where(text("files_fts MATCH :match")))
        q = passing(q, folders, date_from, date_until, cameras).order_by(text("relevance DESC")).limit(limit)
        with self.catalog.session() as s:
            return [(i, float(r)) for i, r in s.execute(q, {"match": _match(words)})]

    def evidence(self, ids: Iterable[int], words: Sequence[str]) -> dict[int, dict[str, list[str]]]:
        """For each id: field -> the query's words found in it (stemmed as the index is). A word
        in the names of most pictures (`home`, the user's name, `photos`, `jpg`) says nothing of
        one picture: it is left out of the name and folder fields."""
        ids = list(ids)
        found: dict[int, dict[str, list[str]]] = {i: {f: [] for f in FIELDS} for i in ids}
        if not ids or not words or not self.available:
            return found
        q = select(_FTS.c.rowid).where(text("files_fts MATCH :match"), _FTS.c.rowid.in_(ids))
        with self.catalog.session() as s:
            for field in FIELDS:
                telling = words if field in ("caption", "text") else [w for w in words if not self._common(s, field, w)]
                for w in telling:
                    for (i,) in s.execute(q, {"match": _match([w], field)}):
                        found[i][field].append(w)
        return found

    def named(self, ids: Iterable[int], words: Sequence[str]) -> set[int]:
        """The ids whose file name, or whose folder names, hold every word close together (at
        most two other words between, any order: "grandma-birthday", "day at the beach"); words
        common to most pictures' names do not count."""
        ids = list(ids)
        if not ids or not words or not self.available:
            return set()
        q = select(_FTS.c.rowid).where(text("files_fts MATCH :match"), _FTS.c.rowid.in_(ids))
        out: set[int] = set()
        with self.catalog.session() as s:
            for field in ("name", "folders", "text"):
                if field != "text" and any(self._common(s, field, w) for w in words):
                    continue
                near = f"{{{field}}} : NEAR({' '.join(f'{chr(34)}{w}{chr(34)}' for w in words)}, 2)"
                out |= {i for (i,) in s.execute(q, {"match": near})}
        return out

    def _common(self, s: Any, field: str, word: str) -> bool:
        """In this field of more than half of the files (counting stops once past half)."""
        if (field, word) not in self._common_words:
            if self._total is None:
                self._total = s.scalar(select(func.count()).select_from(_FTS)) or 0
            half = self._total // 2
            q = text("SELECT count(*) FROM (SELECT rowid FROM files_fts WHERE files_fts MATCH :match LIMIT :n)")
            self._common_words[field, word] = (
                self._total > 2 and (s.scalar(q, {"match": _match([word], field), "n": half + 1}) or 0) > half)
        return self._common_words[field, word]
