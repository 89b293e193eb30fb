"""Teaching a concept by example, over the stores of an index: each example picture becomes a
CLIP vector — an indexed picture's stored one, else the picture embedded now — and the probe is
trained on them and on random pictures of the library, then kept in the catalog.

The same function serves the local index and the service. The service never reads a path it
was sent (`read_files=False`): an example it does not hold in its catalog must come as bytes,
and is listed in `need_data` until it does (the remote index then sends those bytes)."""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from imgsearch.concepts import (
    DEFAULT_C,
    DEFAULT_RANDOM_NEGATIVES,
    MAX_EXAMPLES,
    Concept,
    ConceptError,
    ConceptExample,
    check_name,
    fit,
    unique_examples,
)
from imgsearch.errors import ImgsearchError
from imgsearch.searcher.request import MAX_IMAGE_BYTES

if TYPE_CHECKING:  # the remote index and the CLI use this module without SQLAlchemy
    from imgsearch.stores import Stores

ImageEmbedder = Callable[[bytes, str], np.ndarray]  # (picture bytes, name) -> unit vector; ImgsearchError if none


@dataclass(frozen=True)
class Picture:
    """An example as a caller names it: an absolute path (on the caller's disk) and, when the
    index cannot be expected to find it by path, the picture's bytes."""

    path: str
    data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ConceptReport:
    """What `concept add` did: the concept as trained (None when nothing was trained), how many
    examples were new, the examples skipped and why, and (through the service) the examples it
    needs the bytes of before it can train."""

    concept: Concept | None
    added_positives: int = 0
    added_negatives: int = 0
    retrained: bool = False  # the concept existed and was trained again with its old examples
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason)
    need_data: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"concept": None if self.concept is None else self.concept.as_json(),
                "added_positives": self.added_positives, "added_negatives": self.added_negatives,
                "retrained": self.retrained, "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
                "need_data": list(self.need_data)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ConceptReport:
        return cls(None if d.get("concept") is None else Concept.from_json(d["concept"]),
                   int(d.get("added_positives", 0)), int(d.get("added_negatives", 0)), bool(d.get("retrained")),
                   tuple((s["path"], s["reason"]) for s in d.get("skipped", ())), tuple(d.get("need_data", ())))


def gather(paths: Iterable[Path | str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The picture files that EXAMPLE arguments name (a folder: every picture file below it, as
    `index` would find them), absolute; and the arguments that name nothing, with why."""
    from imgsearch.indexer.scan import ScanProblem, scan

    files: dict[str, None] = {}
    missing: list[tuple[str, str]] = []
    for arg in paths:
        path = Path(os.path.abspath(os.path.expanduser(str(arg))))
        if path.is_dir():
            found = list(scan([path]))
            missing += [(str(f.path), f.reason) for f in found if isinstance(f, ScanProblem)]
            pictures = [str(f.path) for f in found if not isinstance(f, ScanProblem)]
            if not pictures:
                missing.append((str(path), "no picture files in this folder"))
            files.update(dict.fromkeys(pictures))
        elif path.is_file():
            files[str(path)] = None
        else:
            missing.append((str(arg), "no such file or folder"))
    return list(files), missing


def read_picture(path: str) -> bytes:
    """A picture file's bytes, within the size a query may send; ImgsearchError saying why not."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_IMAGE_BYTES + 1)
    except OSError as e:
        raise ImgsearchError(f"cannot read it: {e.strerror or e}") from None
    if not data or len(data) > MAX_IMAGE_BYTES:
        raise ImgsearchError(f"not a picture of 1 byte to {MAX_IMAGE_BYTES // 1024**2} MB")
    return data


def _resolve(stores: Stores, embed: ImageEmbedder, pictures: Sequence[Picture], positive: bool,
             read_files: bool, skipped: list[tuple[str, str]], need_data: list[str]) -> tuple[list[ConceptExample], set[int], set[str]]:
    """Examples with their vectors; also the catalog ids and content hashes they are (so no random
    negative is one of them)."""
    from imgsearch.stores.concepts import ConceptStore

    known = ConceptStore(stores.catalog).indexed(p.path for p in pictures if p.data is None)
    stored = stores.vectors.get_vectors([i for i, _ in known.values()]) if known else {}
    examples: list[ConceptExample] = []
    ids: set[int] = set()
    shas: set[str] = set()
    for p in pictures:
        if p.path in known and known[p.path][0] in stored:
            fid, sha = known[p.path]
            examples.append(ConceptExample(p.path, positive, stored[fid], indexed=True))
            ids.add(fid)
            if sha:
                shas.add(sha)
            continue
        if p.data is None and not read_files:
            need_data.append(p.path)
            continue
        try:
            data = p.data if p.data is not None else read_picture(p.path)
            vector = embed(data, os.path.basename(p.path))
        except ImgsearchError as e:
            skipped.append((p.path, str(e)))
            continue
        examples.append(ConceptExample(os.path.basename(p.path), positive, vector, indexed=False))
        shas.add(hashlib.sha256(data).hexdigest())  # a copy of it in the library is no random negative
    return examples, ids, shas


def unusable(name: str, skipped: Sequence[tuple[str, str]]) -> ConceptError:
    """The error when no example given could be used, with the first reasons."""
    shown = "; ".join(f"{os.path.basename(p)}: {r}" for p, r in skipped[:3])
    return ConceptError(f"no example picture of {name!r} could be used" + (f" ({shown})" if shown else ""))


def add_concept(stores: Stores, embed: ImageEmbedder, name: str, positives: Sequence[Picture],
                negatives: Sequence[Picture] = (), *, random_negatives: int = DEFAULT_RANDOM_NEGATIVES,
                read_files: bool = True, c: float = DEFAULT_C) -> ConceptReport:
    """Train the concept `name` on these examples (and its old ones, when it exists) and keep it.
    An example the index holds is taken by path with its stored vector and kept under its path;
    another is embedded now and kept under its file name. An example that is no picture is
    skipped (in the report); with no positive example left at all, ConceptError."""
    from imgsearch.stores.concepts import ConceptStore, now

    check_name(name)
    if len(positives) + len(negatives) > MAX_EXAMPLES:
        raise ConceptError(f"at most {MAX_EXAMPLES} examples at a time")
    if not 0 <= random_negatives <= 10_000:
        raise ConceptError("random negatives: 0 to 10,000")
    store = ConceptStore(stores.catalog)
    old = store.get(name)
    skipped: list[tuple[str, str]] = []
    need_data: list[str] = []
    pos, pos_ids, pos_shas = _resolve(stores, embed, positives, True, read_files, skipped, need_data)
    neg, neg_ids, _ = _resolve(stores, embed, negatives, False, read_files, skipped, need_data)
    if need_data:
        return ConceptReport(None, skipped=tuple(skipped), need_data=tuple(need_data))
    old_examples = store.examples(name) if old is not None else []
    examples = unique_examples(old_examples, pos + neg)
    if not pos + neg:
        raise unusable(name, skipped)
    if not any(e.positive for e in examples):
        raise ConceptError(f"{name!r} needs at least one example picture that shows it")
    # The old examples that were indexed pictures are left out of the draw too (by path)
    old_ids = {i for i, _ in store.indexed(e.name for e in old_examples if e.indexed).values()}
    drawn_ids = store.random_pictures(random_negatives, pos_ids | neg_ids | old_ids, pos_shas,
                                      seed=zlib.crc32(name.encode()))
    drawn = stores.vectors.get_vectors(drawn_ids) if drawn_ids else {}
    plus = np.stack([e.vector for e in examples if e.positive])
    minus = [e.vector for e in examples if not e.positive]
    weights, bias = fit(plus, np.stack(minus) if minus else np.zeros((0, plus.shape[1]), np.float32),
                        np.stack(list(drawn.values())) if drawn else None, c=c)
    when = now()
    concept = Concept(name, weights, bias, stores.catalog.meta().get("clip_model", ""),
                      tuple(e.name for e in examples if e.positive), tuple(e.name for e in examples if not e.positive),
                      old.created_at if old else when, when, len(drawn), c)
    store.put(concept, examples)
    return ConceptReport(concept, len(pos), len(neg), old is not None, tuple(skipped))


__all__ = ["ConceptReport", "Picture", "add_concept", "gather", "read_picture", "unusable"]
