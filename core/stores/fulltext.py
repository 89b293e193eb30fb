"""Words against each picture's file name, folder names, caption and text: on SQLite the catalog's
FTS5 table (migrations 0003/0004, kept in step by triggers), ranked by BM25; on PostgreSQL the
generated `tsvector` column `files.fts` (migration 0007: one weight per field, English stemming),
ranked by `ts_rank` with the same field weights. Hybrid search fuses these candidates with
CLIP's; `evidence` says which of a query's words matched where (the ranking's text score, the
cutoff's name match, `--explain`). On another database `available` is False and searches stay
vector-only.

The two engines agree on what a word is (letters and digits; punctuation separates) and both
stem, but not on everything: PostgreSQL drops English stop words from the index and does not
fold accents (`unaccent` is no immutable function, so no generated column can use it)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, bindparam, column, func, inspect, literal_column, select, table, text

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
# PostgreSQL (migration 0007): each field's weight letter in `files.fts`, and ts_rank's weights
# for {D, C, B, A} = text, caption, folders, name: _WEIGHTS scaled to at most 1.
_PG_FIELD = {"name": "A", "folders": "B", "caption": "C", "text": "D"}
_PG_RANK = literal_column("'{0.75, 0.5, 0.75, 1.0}'::float4[]")
_PG_FTS = literal_column("files.fts")
_PG_NEAR = 2  # as FTS5's NEAR(..., 2): at most two other words between the first and the last


def _pg_query() -> Any:
    """The query's tsquery. Built on PostgreSQL only: the dialect's import (which gives
    `func.to_tsquery` its type) is not a SQLite catalog's cost (~25 ms of a cold query)."""
    from sqlalchemy.dialects import postgresql  # noqa: F401

    return func.to_tsquery("english", bindparam("match", type_=Text))


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


def _pg_match(words: Sequence[str], field: str | None = None) -> str:
    """A PostgreSQL tsquery: any of the words (quoted; `query_words` leaves no quote in them), in
    one field's weight if given."""
    weight = f":{_PG_FIELD[field]}" if field else ""
    return " | ".join(f"'{w}'{weight}" for w in words)


def _near(positions: Sequence[set[int]]) -> bool:
    """Some window holds one position of each word with at most _PG_NEAR others between."""
    tagged = sorted((p, k) for k, ps in enumerate(positions) for p in ps)
    n, have, start = len(positions), {}, 0
    for end, (p, k) in enumerate(tagged):
        have[k] = have.get(k, 0) + 1
        while tagged[start][0] < p - (n - 1 + _PG_NEAR):
            kk = tagged[start][1]
            have[kk] -= 1
            if not have[kk]:
                del have[kk]
            start += 1
        if len(have) == n:
            return True
    return False


class _CommonWords:
    """Which (field, word) pairs are in more than half of the files, remembered for the catalog
    across searches (a search asks for each of its words and fields: 9 counting queries, most of
    a hybrid query's word evidence) and forgotten after `TTL` seconds, so words that became
    common as pictures were added by any process count as such soon after."""

    TTL = 60.0

    def __init__(self) -> None:
        self.since = time.monotonic()
        self.total: int | None = None
        self.known: dict[tuple[str, str], bool] = {}

    @classmethod
    def of(cls, catalog: Catalog) -> _CommonWords:
        memo = catalog.memo.get("common_words")
        if memo is None or time.monotonic() - memo.since > cls.TTL:
            memo = catalog.memo["common_words"] = cls()
        return memo


class FullText:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._available: bool | None = None

    @property
    def available(self) -> bool:
        if self._available is None:
            engine = self.catalog.engine
            if self._pg:
                self._available = any(c["name"] == "fts" for c in inspect(engine).get_columns("files"))
            else:
                self._available = engine.dialect.name == "sqlite" and inspect(engine).has_table("files_fts")
        return self._available

    @property
    def _pg(self) -> bool:
        return self.catalog.engine.dialect.name == "postgresql"

    def _hits(self) -> Any:
        """SELECT the ids of rows matching `:match` (an FTS5 query, or a tsquery on PostgreSQL)."""
        if self._pg:
            return select(FileRow.id).where(_PG_FTS.op("@@")(_pg_query()))
        return select(_FTS.c.rowid).where(text("files_fts MATCH :match"))

    def _among(self, rowid: Any, ids: list[int]) -> Any:
        """`rowid IN ids` for a MATCH query. On SQLite written as `rowid + 0`: a bare rowid
        constraint is handed to FTS5, which then runs the MATCH once per id (measured: 59 ms
        against 0.5 ms for `evidence` over 200 candidates); as an expression, SQLite filters the
        MATCH's own rows by it."""
        return self.catalog.among(rowid if self._pg else rowid + 0, ids)

    def _query(self, words: Sequence[str], field: str | None = None) -> str:
        return _pg_match(words, field) if self._pg else _match(words, field)

    def search(self, words: Sequence[str], limit: int, folders: Sequence[str] = (),
               date_from: datetime | None = None, date_until: datetime | None = None,
               cameras: Sequence[str] | None = None, tags: Sequence[str] = ()) -> list[tuple[int, float]]:
        """(file id, BM25 relevance: higher is better) of indexed pictures holding any of the
        words and passing the filters, best first."""
        if not words or not self.available or (cameras is not None and not cameras) or limit <= 0:
            return []
        if self._pg:
            tsquery = _pg_query()
            relevance = func.ts_rank(_PG_RANK, _PG_FTS, tsquery)
            q = select(FileRow.id, relevance.label("relevance")).where(_PG_FTS.op("@@")(tsquery))
        else:
            q = (select(FileRow.id, (-func.bm25(text("files_fts"), *_WEIGHTS)).label("relevance"))
                 .select_from(_FTS.join(FileRow.__table__, FileRow.id == _FTS.c.rowid))
                 .where(text("files_fts MATCH :match")))
        q = passing(q, folders, date_from, date_until, cameras, tags).order_by(text("relevance DESC")).limit(limit)
        with self.catalog.session() as s:
            return [(i, float(r)) for i, r in s.execute(q, {"match": self._query(words)})]

    def evidence(self, ids: Iterable[int], words: Sequence[str]) -> dict[int, dict[str, list[str]]]:
        """For each id: field -> the query's words found in it (stemmed as the index is). A word
        in the names of most pictures (`home`, the user's name, `photos`, `jpg`) says nothing of
        one picture: it is left out of the name and folder fields."""
        ids = list(ids)
        found: dict[int, dict[str, list[str]]] = {i: {f: [] for f in FIELDS} for i in ids}
        if not ids or not words or not self.available:
            return found
        hits = self._hits()
        q = hits.where(self._among(hits.selected_columns[0], ids))
        with self.catalog.session() as s:
            for field in FIELDS:
                telling = words if field in ("caption", "text") else [w for w in words if not self._common(s, field, w)]
                for w in telling:
                    for (i,) in s.execute(q, {"match": self._query([w], field)}):
                        found[i][field].append(w)
        return found

    def named(self, ids: Iterable[int], words: Sequence[str]) -> set[int]:
        """The ids whose file name, or whose folder names, hold every word close together (at
        most two other words between, any order: "grandma-birthday", "day at the beach"); words
        common to most pictures' names do not count."""
        ids = list(ids)
        if not ids or not words or not self.available:
            return set()
        if self._pg:
            return self._pg_named(ids, words)
        q = select(_FTS.c.rowid).where(text("files_fts MATCH :match"), self._among(_FTS.c.rowid, ids))
        out: set[int] = set()
        with self.catalog.session() as s:
            for field in ("name", "folders", "text"):
                if field != "text" and any(self._common(s, field, w) for w in words):
                    continue
                near = f"{{{field}}} : NEAR({' '.join(f'{chr(34)}{w}{chr(34)}' for w in words)}, 2)"
                out |= {i for (i,) in s.execute(q, {"match": near})}
        return out

    def _pg_named(self, ids: list[int], words: Sequence[str]) -> set[int]:
        """`named` on PostgreSQL: the words' lexemes and their positions in each field of
        `files.fts`, and the window test of FTS5's NEAR in Python (a few candidates' rows)."""
        out: set[int] = set()
        with self.catalog.session() as s:
            stems = [set(s.scalars(text("SELECT unnest(tsvector_to_array(to_tsvector('english', :w)))"),
                                   {"w": w})) for w in words]
            stems = [st for st in stems if st]  # a stop word: not in the index, so not asked for
            if not stems:
                return out
            q = text("SELECT f.id, t.lexeme, t.positions, t.weights FROM files AS f, unnest(f.fts) AS t "
                     "WHERE f.id = ANY(:ids) AND t.lexeme = ANY(:lexemes)")
            rows = s.execute(q, {"ids": ids, "lexemes": sorted(set().union(*stems))}).all()
            fields = [f for f in ("name", "folders", "text")
                      if f == "text" or not any(self._common(s, f, w) for w in words)]
        for i in {r[0] for r in rows}:
            for field in fields:
                weight = _PG_FIELD[field]
                at = [{p for fid, lexeme, ps, ws in rows if fid == i and lexeme in st
                       for p, wt in zip(ps, ws) if wt == weight} for st in stems]
                if all(at) and _near(at):
                    out.add(i)
                    break
        return out

    def _common(self, s: Any, field: str, word: str) -> bool:
        """In this field of more than half of the files (counting stops once past half)."""
        common = _CommonWords.of(self.catalog)
        if (field, word) not in common.known:
            if common.total is None:
                source = FileRow.__table__ if self._pg else _FTS
                common.total = s.scalar(select(func.count()).select_from(source)) or 0
            half = common.total // 2
            hits = self._hits().limit(bindparam("n")).subquery()
            q = select(func.count()).select_from(hits)
            common.known[field, word] = (
                common.total > 2 and (s.scalar(q, {"match": self._query([word], field), "n": half + 1}) or 0) > half)
        return common.known[field, word]
