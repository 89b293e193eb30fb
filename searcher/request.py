"""One search, as a value: what to look for (words, pictures, pictures already indexed, each with
a weight; `--not` terms weigh less than zero), which pictures may answer (folders, a date range,
a camera), in what order and which page. The CLI, the HTTP API and the page all build one; the
searcher alone interprets it (`searcher.run`). It travels to the service as JSON (`as_json` /
`from_json`), pictures as base64, so a client never needs the service's disk."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field, replace
from typing import Any

from imgsearch.dates import period

from .limits import MAX_QUERY_CHARS, QueryLimitError, check_limit, check_rerank_k, check_words

TEXT, IMAGE, INDEXED = "text", "image", "indexed"  # words; picture bytes; an indexed picture's id
SORTS = ("relevance", "newest", "oldest")
HYBRID, VECTOR, WORDS_ONLY = "hybrid", "vector", "text"
MODES = (HYBRID, VECTOR, WORDS_ONLY)  # candidates from CLIP and the full-text index; CLIP; full text
DEFAULT_LIMIT = 20
DEFAULT_RERANK_K = 20
MAX_IMAGE_BYTES = 50 * 1024**2
MAX_TERMS = 32
_WEIGHT = re.compile(r"^([0-9]+(?:\.[0-9]+)?):(.+)$", re.S)


@dataclass(frozen=True)
class Term:
    kind: str  # TEXT | IMAGE | INDEXED
    text: str = ""  # the words (TEXT), or a name for the picture (IMAGE: its path or URL, shown only)
    weight: float = 1.0  # < 0: push away (`--not`)
    data: bytes = field(default=b"", repr=False)  # IMAGE: the picture's bytes
    image_id: int = 0  # INDEXED

    def as_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "weight": self.weight}
        if self.kind == TEXT or self.text:
            d["text"] = self.text
        if self.kind == IMAGE:
            d["data"] = base64.b64encode(self.data).decode()
        if self.kind == INDEXED:
            d["id"] = self.image_id
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Term:
        kind = d.get("kind")
        weight = d.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not -100 <= weight <= 100:
            raise QueryLimitError("a term's weight is a number between -100 and 100")
        text = d.get("text", "")
        if not isinstance(text, str):
            raise QueryLimitError("a term's text is a string")
        if kind == TEXT:
            return cls(TEXT, text, float(weight))
        if kind == IMAGE:
            try:
                data = base64.b64decode(str(d.get("data", "")), validate=True)
            except (binascii.Error, ValueError):
                raise QueryLimitError("a picture term's data is base64") from None
            return cls(IMAGE, text[:300], float(weight), data=data)
        if kind == INDEXED:
            image_id = d.get("id")
            if not isinstance(image_id, int) or isinstance(image_id, bool) or not 0 <= image_id < 2**63:
                raise QueryLimitError("an indexed picture term names its id (an integer)")
            return cls(INDEXED, text[:300], float(weight), image_id=image_id)
        raise QueryLimitError(f"a term's kind is {TEXT}, {IMAGE} or {INDEXED}")


def words(text: str, negative: bool = False) -> Term:
    """A term from what a user typed: `beach`, or `2:beach` for twice the weight."""
    m = _WEIGHT.match(text.strip())
    weight, text = (float(m.group(1)), m.group(2)) if m else (1.0, text)
    return Term(TEXT, text, -weight if negative else weight)


@dataclass(frozen=True)
class SearchRequest:
    terms: tuple[Term, ...] = ()
    folders: tuple[str, ...] = ()  # folder subtrees, OR-ed (absolute paths)
    date_from: str | None = None  # YYYY, YYYY-MM or YYYY-MM-DD: the whole period named
    date_until: str | None = None
    camera: str | None = None  # EXIF make or model, case-insensitive substring
    tags: tuple[str, ...] = ()  # zero-shot tags (`imgsearch tags`), all of them, any case
    concepts: tuple[str, ...] = ()  # concepts taught by example (`imgsearch concept`): rank by, cut at, all of them
    sort: str = "relevance"
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    rerank_k: int = DEFAULT_RERANK_K
    mode: str = HYBRID
    min_match: float | None = None  # only hits this likely to match (0-1); 0: no cutoff; None: the index's default
    explain: bool = False  # hits say why they matched

    @property
    def positive_words(self) -> list[str]:
        return [t.text for t in self.terms if t.kind == TEXT and t.weight > 0]

    @property
    def searches(self) -> bool:
        """Something to rank by (terms or concepts); else the filters alone list by date."""
        return bool(self.terms or self.concepts)

    @property
    def negative_words(self) -> list[str]:
        return [t.text for t in self.terms if t.kind == TEXT and t.weight < 0]

    def check(self) -> SearchRequest:
        """Raise QueryLimitError (exit code 2, HTTP 422) for anything outside the limits; else self."""
        if len(self.terms) > MAX_TERMS:
            raise QueryLimitError(f"at most {MAX_TERMS} query terms")
        for term in self.terms:
            if term.kind == TEXT:
                check_words(term.text)
            elif term.kind == IMAGE and not 0 < len(term.data) <= MAX_IMAGE_BYTES:
                raise QueryLimitError(f"a picture to search by is 1 byte to {MAX_IMAGE_BYTES // 1024**2} MB")
            if term.weight == 0:
                raise QueryLimitError("a term's weight cannot be 0")
        if self.terms and all(t.weight < 0 for t in self.terms) and not self.concepts:
            raise QueryLimitError("say what to look for, not only what to leave out (--not needs a QUERY)")
        check_limit(self.limit)
        check_rerank_k(self.rerank_k)
        if not 0 <= self.offset <= 100_000:
            raise QueryLimitError(f"the offset must be between 0 and 100,000 (got {self.offset:,})")
        if self.mode not in MODES:
            raise QueryLimitError(f"mode is one of {', '.join(MODES)} (got {self.mode!r})")
        if self.mode == WORDS_ONLY and self.terms and not self.positive_words:
            raise QueryLimitError("the text mode searches by words: give some")
        if self.min_match is not None and not 0 <= self.min_match <= 1:
            raise QueryLimitError(f"min_match is a probability between 0 and 1 (got {self.min_match})")
        if self.sort not in SORTS:
            raise QueryLimitError(f"sort is one of {', '.join(SORTS)} (got {self.sort!r})")
        for value in (self.date_from, self.date_until):
            if value is not None:
                period(value)
        if self.camera is not None and not 0 < len(self.camera) <= 100:
            raise QueryLimitError("a camera is 1 to 100 characters")
        if len(self.tags) > 20 or any(not 0 < len(t.strip()) <= 60 for t in self.tags):
            raise QueryLimitError("tags (--tag) are 1 to 60 characters each, at most 20")
        if len(self.concepts) > 10 or any(not 0 < len(c.strip()) <= 100 for c in self.concepts):
            raise QueryLimitError("concepts (--concept) are named by 1 to 100 characters, at most 10")

        if len(self.folders) > 100 or any(not f.startswith("/") or "\x00" in f for f in self.folders):
            raise QueryLimitError("folders (--in) are absolute paths, at most 100")
        return self

    def as_json(self) -> dict[str, Any]:
        return {"terms": [t.as_json() for t in self.terms], "folders": list(self.folders),
                "from": self.date_from, "until": self.date_until, "camera": self.camera, "tags": list(self.tags),
                "concepts": list(self.concepts),
                "sort": self.sort,
                "limit": self.limit, "offset": self.offset, "rerank_k": self.rerank_k, "mode": self.mode,
                "min_match": self.min_match, "explain": self.explain}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SearchRequest:
        """From JSON a client sent: shapes checked here, limits by `check()`."""
        if not isinstance(d, dict):
            raise QueryLimitError("a search is a JSON object")
        terms, folders, tags = d.get("terms", []), d.get("folders", []), d.get("tags", [])
        concepts = d.get("concepts", [])
        if not isinstance(terms, list) or not all(isinstance(t, dict) for t in terms):
            raise QueryLimitError("terms is a list of objects")
        if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
            raise QueryLimitError("folders is a list of paths")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise QueryLimitError("tags is a list of labels")
        if not isinstance(concepts, list) or not all(isinstance(c, str) for c in concepts):
            raise QueryLimitError("concepts is a list of names")
        plain: dict[str, Any] = {}
        for key, name, kind in (("from", "date_from", str), ("until", "date_until", str), ("camera", "camera", str),
                                ("sort", "sort", str), ("limit", "limit", int), ("offset", "offset", int),
                                ("rerank_k", "rerank_k", int), ("mode", "mode", str)):
            value = d.get(key)
            if value is None:
                continue
            if not isinstance(value, kind) or isinstance(value, bool):
                raise QueryLimitError(f"{key} is a{'n integer' if kind is int else ' string'}")
            plain[name] = value
        min_match, explain = d.get("min_match"), d.get("explain", False)
        if min_match is not None:
            if not isinstance(min_match, (int, float)) or isinstance(min_match, bool):
                raise QueryLimitError("min_match is a number between 0 and 1")
            plain["min_match"] = float(min_match)
        if not isinstance(explain, bool):
            raise QueryLimitError("explain is true or false")
        return cls(tuple(Term.from_json(t) for t in terms), tuple(folders), tags=tuple(tags),
                   concepts=tuple(concepts), explain=explain, **plain).check()

    def page(self, offset: int, limit: int) -> SearchRequest:
        return replace(self, offset=offset, limit=limit)


__all__ = ["DEFAULT_LIMIT", "DEFAULT_RERANK_K", "HYBRID", "IMAGE", "INDEXED", "MAX_QUERY_CHARS", "MODES", "SORTS",
           "SearchRequest", "TEXT", "Term", "VECTOR", "WORDS_ONLY", "words"]
