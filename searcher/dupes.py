"""Duplicate groups: pictures that are the same photo (resized, recompressed, converted, cropped
a little, stripped of EXIF, or byte for byte), each group best first. Nothing is ever deleted.

1. Candidates from the vector engine: the NEIGHBOURS nearest of each picture whose CLIP cosine is
   at least the threshold (`search_many`, one planned batch per 512 pictures: HNSW searches, never
   an all-pairs scan).
2. Confirmation by pixels (`imgsearch.likeness`): a candidate pair is one photo when one picture,
   aligned onto the other (crops up to ~10 % a side), differs from it in almost no pixel. Two
   photos of one scene are not. Files with the same content hash need no look. Files are read
   only for candidate pairs, each at most once; one that is gone or unreadable is skipped and
   reported (`DupesReport.skipped`), its pairs unconfirmed.
3. Groups: union-find over the confirmed pairs. The picture to keep is the one with the most of
   the photo (not a crop of another), then the most pixels, EXIF, the oldest date (EXIF, else the
   file's), the least lossy encoding, the most bytes; every other member says what it lacks
   against it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from imgsearch.errors import BadImageError, ConfigError
from imgsearch.likeness import Match, compare
from imgsearch.likeness_files import PictureFile, read_picture
from imgsearch.progress import NoProgress, Progress
from imgsearch.stores import Stores
from imgsearch.stores.catalog import FileInfo
from imgsearch.stores.vectors import BATCH, PointFilter, VectorStore

DEFAULT_THRESHOLD = 0.85  # CLIP cosine of a candidate pair (the model card's duplicate section: recall vs cost)
NEIGHBOURS = 8  # nearest pictures looked at per picture; larger groups join through their members
MAX_PICTURES = 10_000_000  # every indexed picture, in practice
CACHE = 1024  # reduced pictures kept in memory at once
WHOLE = 0.03  # a member showing this much less of the photo than the most any shows is a crop


@dataclass(frozen=True)
class Member:
    """One picture of a group; `differs` says what it lacks against the one to keep."""

    info: FileInfo
    format: str | None
    quality: int | None
    exif: bool
    keep: bool
    cosine: float | None = None  # CLIP cosine to the one to keep (None for that one)
    scale: float | None = None  # its linear size against the kept picture's (same part of the photo)
    crop: float | None = None  # share of the kept picture's area it lacks
    differs: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        i = self.info
        return {"id": i.id, "path": i.path, "folder": os.path.dirname(i.path), "name": os.path.basename(i.path),
                "width": i.width, "height": i.height, "size": i.size, "format": self.format,
                "quality": self.quality, "exif": self.exif, "keep": self.keep, "cosine": self.cosine,
                "scale": self.scale, "crop": self.crop, "differs": list(self.differs)}


@dataclass(frozen=True)
class Group:
    members: tuple[Member, ...]  # the one to keep first

    @property
    def others(self) -> list[str]:
        return [m.info.path for m in self.members[1:]]

    def as_json(self) -> dict[str, Any]:
        """The one JSON shape of a group: the CLI's --json, the HTTP API and the page."""
        return {"keep": self.members[0].info.id, "members": [m.as_json() for m in self.members],
                "others": self.others}


@dataclass(frozen=True)
class DupesReport:
    groups: tuple[Group, ...]  # largest first, then by the kept picture's path
    pictures: int  # pictures looked at
    candidates: int  # pairs above the CLIP threshold
    compared: int  # pairs checked by pixels
    threshold: float
    skipped: tuple[tuple[str, str], ...] = field(default=())  # (path, why) of files that could not be read

    def as_json(self) -> dict[str, Any]:
        return {"groups": [g.as_json() for g in self.groups], "pictures": self.pictures,
                "candidates": self.candidates, "compared": self.compared, "threshold": self.threshold,
                "others": [p for g in self.groups for p in g.others],
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}


def candidate_pairs(vectors: VectorStore, ids: Sequence[int], threshold: float, where: PointFilter | None = None,
                    progress: Progress | None = None) -> dict[tuple[int, int], float]:
    """(smaller id, larger id) -> cosine of every pair where one is among the other's NEIGHBOURS
    nearest at `threshold` or above, within the pictures `where` lets through."""
    progress = progress or NoProgress()
    progress.phase("nearest neighbours", len(ids))
    pairs: dict[tuple[int, int], float] = {}
    for start in range(0, len(ids), BATCH):
        part = list(ids[start:start + BATCH])
        found = vectors.get_vectors(part)
        rows = [i for i in part if i in found]
        if rows:
            matrix = np.stack([found[i] for i in rows])
            for i, hits in zip(rows, vectors.search_many(matrix, NEIGHBOURS + 1, where, min_score=threshold)):
                for j, score in hits:
                    if j != i:
                        pairs[(min(i, j), max(i, j))] = max(score, pairs.get((min(i, j), max(i, j)), -1.0))
        progress.advance(len(part))
    progress.done()
    return pairs


class UnionFind:
    """Union-find over ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, i: int) -> int:
        root = i
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while i != root:
            self.parent[i], i = root, self.parent.get(i, i)
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        self.parent.setdefault(ra, ra)
        self.parent.setdefault(rb, rb)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        by_root: dict[int, list[int]] = {}
        for i in list(self.parent):
            by_root.setdefault(self.find(i), []).append(i)
        return [sorted(members) for members in by_root.values() if len(members) > 1]


class _Files:
    """Picture files read when needed, the last CACHE kept (a reduced picture is ~200 KB); a file
    that cannot be read is remembered with why, and not tried again."""

    def __init__(self, infos: dict[int, FileInfo]) -> None:
        self.infos = infos
        self.read: OrderedDict[int, PictureFile] = OrderedDict()
        self.failed: set[int] = set()
        self.skipped: dict[str, str] = {}

    def get(self, i: int) -> PictureFile | None:
        if i in self.failed:
            return None
        if i in self.read:
            self.read.move_to_end(i)
            return self.read[i]
        path = self.infos[i].path
        try:
            found = read_picture(path)
        except FileNotFoundError:
            self.failed.add(i)
            self.skipped[path] = "the file is gone (run `imgsearch index` to update the index)"
            return None
        except (OSError, BadImageError) as e:
            self.failed.add(i)
            self.skipped[path] = f"cannot be read: {e}"
            return None
        self.read[i] = found
        if len(self.read) > CACHE:
            self.read.popitem(last=False)
        return found


def find_dupes(stores: Stores, *, threshold: float = DEFAULT_THRESHOLD, folders: Sequence[str] = (),
               progress: Progress | None = None) -> DupesReport:
    """Groups of indexed pictures (under `folders`, any of them; all when empty) that are one photo."""
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"the threshold is a CLIP cosine above 0 and at most 1, not {threshold}")
    progress = progress or NoProgress()
    folders = tuple(os.path.abspath(f) for f in folders)
    rows = stores.catalog.listing(folders, None, None, None, False, MAX_PICTURES, 0)
    infos = {r.id: r for r in rows}
    where = PointFilter(folders=folders) if folders else None
    pairs = candidate_pairs(stores.vectors, sorted(infos), threshold, where, progress)
    files, sets = _Files(infos), UnionFind()
    compared = 0
    progress.phase("comparing pixels", len(pairs))
    for (a, b), _ in sorted(pairs.items(), key=lambda kv: -kv[1]):
        progress.advance()
        if a not in infos or b not in infos or sets.find(a) == sets.find(b):
            continue  # a point the catalog lost, or already one group through others
        if infos[a].sha256 and infos[a].sha256 == infos[b].sha256:
            sets.union(a, b)
            continue
        fa, fb = files.get(a), files.get(b)
        if fa is None or fb is None:
            continue
        compared += 1
        if compare(fa.picture, fb.picture).same:
            sets.union(a, b)
    progress.done()
    groups = [_group(members, files, pairs) for members in sets.groups()]
    groups = [g for g in groups if len(g.members) > 1]
    groups.sort(key=lambda g: (-len(g.members), g.members[0].info.path))
    return DupesReport(tuple(groups), len(infos), len(pairs), compared, threshold,
                       tuple(sorted(files.skipped.items())))


def _group(ids: list[int], files: _Files, pairs: dict[tuple[int, int], float]) -> Group:
    """The members ranked (the one to keep first) and each other one's differences to it."""
    readable = [i for i in ids if files.get(i) is not None]
    if len(readable) < 2:
        return Group(())
    largest = max(readable, key=lambda i: _pixels(files, i))
    ref = files.get(largest)
    assert ref is not None
    coverage = {largest: 1.0}
    for i in readable:
        if i != largest:
            coverage[i] = _coverage(compare(ref.picture, _pf(files, i).picture))
    # showing the whole photo is a yes or no: alignment is good to a pixel or two, not a percent
    most = max(coverage.values())
    whole = {i: coverage[i] >= most - WHOLE for i in readable}
    best = max(readable, key=lambda i: _rank(files, i, whole[i]))
    kept = _pf(files, best)
    members = [_member(files, best, best, None, None)]
    for i in sorted((i for i in readable if i != best), key=lambda i: _rank(files, i, whole[i]), reverse=True):
        match = compare(kept.picture, _pf(files, i).picture)
        members.append(_member(files, i, best, match, pairs.get((min(i, best), max(i, best)))))
    return Group(tuple(members))


def _pf(files: _Files, i: int) -> PictureFile:
    f = files.get(i)
    assert f is not None
    return f


def _pixels(files: _Files, i: int) -> int:
    p = _pf(files, i).picture
    return p.width * p.height


def _coverage(match: Match) -> float:
    """How much of the photo the second picture of `compare(ref, it)` shows, against ref's 1."""
    if not match.same:
        return 1.0
    area = 1.0 - match.crop
    return area if match.container == 0 else 1.0 / max(area, 1e-6)


def _rank(files: _Files, i: int, whole: bool) -> tuple[Any, ...]:
    f, info = _pf(files, i), files.infos[i]
    date = info.date.timestamp() if info.date else 0.0
    # a copy is made after its original: with as many pixels and EXIF alike, the older file is
    # kept before the better-encoded one (a copy re-saved at a higher quality is no better)
    return (whole, _pixels(files, i), f.exif, -date, f.fidelity, f.bytes, info.path)


def _member(files: _Files, i: int, best: int, match: Match | None, cosine: float | None) -> Member:
    f, kept = _pf(files, i), _pf(files, best)
    if match is None:
        return Member(files.infos[i], f.format, f.quality, f.exif, keep=True)
    scale = crop = None
    if match.same:
        left, _, right, _ = match.box
        if match.container == 0:  # this one shows a part of the kept picture
            crop, scale = match.crop, f.picture.width / (kept.picture.width * (right - left))
        else:
            crop, scale = 0.0, f.picture.width * (right - left) / kept.picture.width
    identical = files.infos[i].sha256 is not None and files.infos[i].sha256 == files.infos[best].sha256
    return Member(files.infos[i], f.format, f.quality, f.exif, False, cosine,
                  None if scale is None else round(scale, 3), None if crop is None else round(crop, 3),
                  tuple(_differs(f, kept, scale, crop, identical)))


def _differs(f: PictureFile, kept: PictureFile, scale: float | None, crop: float | None,
             identical: bool) -> list[str]:
    """Short phrases: what this copy lacks against the kept picture."""
    if identical:
        return ["identical file"]
    out: list[str] = []
    p, k = f.picture, kept.picture
    cropped_only = crop is not None and crop >= 0.01 and scale is not None and abs(scale - 1) < 0.02
    if (p.width, p.height) != (k.width, k.height) and not cropped_only:
        size = f"{p.width}×{p.height} against {k.width}×{k.height}"
        out.append(f"smaller: {size} ({scale:.0%})" if scale is not None and scale < 0.98 else f"size {size}")
    if crop is not None and crop >= 0.01:
        out.append(f"cropped: {crop:.0%} of the picture missing")
    if f.format != kept.format:
        out.append(f"{f.format} instead of {kept.format}")
    if f.quality is not None and f.fidelity < kept.fidelity - 2:
        out.append(f"lower JPEG quality: ~{f.quality} against ~{kept.quality or 100}")
    if kept.exif and not f.exif:
        out.append("no EXIF")
    if crop is None:
        out.append("not aligned with the kept picture (the group joined through another copy)")
    return out or ["re-encoded copy"]
