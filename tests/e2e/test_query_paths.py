"""`imgsearch query` gives the same JSON through a running service as without one: the same keys,
the same pictures in the same order, for words, a picture, `--not`, filters, paging and sort."""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime
from pathlib import Path

import pytest
from test_watch_service import Service, _cli, wait_for

from conftest import make_shapes

QUERIES = [
    ["a red circle", "--limit", "5"],
    ["a star", "--in", "{photos}/b", "--sort", "newest", "--rerank-k", "5", "--min-match", "0"],
    ["{picture}", "--limit", "4"],
    ["a circle", "--not", "a red circle", "--limit", "6", "--rerank-k", "12", "--min-match", "0"],
    ["--in", "{photos}/a", "--limit", "3", "--offset", "2"],
    ["a square", "--from", "2021-03", "--until", "2021-05", "--no-rerank", "--limit", "50"],
    ["a blue square", "-n", "4", "--offset", "3", "--sort", "oldest", "--min-match", "0"],
    ["b", "--mode", "text", "--limit", "4"],  # a folder's name: the full-text index, through both paths
    ["a red circle", "--min-match", "0.2", "--limit", "3"],
]
KEYS = {"id", "path", "folder", "name", "score", "clip_score", "itm_score", "caption", "width", "height", "size",
        "taken_at", "date", "date_source", "camera", "match", "explain", "text", "tags"}


def _answers(env: dict[str, str], photos: Path) -> list[list[dict]]:
    picture = str(sorted((photos / "a").iterdir())[0])
    out = []
    for args in QUERIES:
        args = [a.format(photos=photos, picture=picture) for a in args]
        done = _cli("query", *args, "--json", env=env)
        assert done.returncode == 0, (args, done.stderr)
        out.append(json.loads(done.stdout))
    return out


def _without_scores(hit: dict) -> dict:
    """A hit's fields but its model scores (the match probability is one), which may differ in
    the last float bits between the service's process and this one."""
    return {k: v for k, v in hit.items() if "score" not in k and k != "match"}


def test_the_same_json_with_and_without_the_service(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for sub, seed in (("a", 1), ("b", 2)):
        make_shapes(photos / sub, 15, seed=seed)
        (photos / sub / "scenes.json").unlink()
    for i, path in enumerate(sorted(photos.rglob("img*"))):
        stamp = datetime(2021, 1 + i % 12, 1 + i % 27, 8).timestamp()
        os.utime(path, (stamp, stamp))
    svc = Service(tmp_path / "home", str(photos), "--no-captions")
    try:
        wait_for(lambda: svc.settled({str(p) for p in photos.rglob("img*")}), "the first pass", 120)
        through = _answers(svc.env, photos)
    finally:
        assert svc.stop(signal.SIGTERM) == 0
    alone = _answers(svc.env, photos)
    for args, a, b in zip(QUERIES, through, alone):
        assert a and all(set(h) == KEYS for h in a + b), args
        assert [h["path"] for h in a] == [h["path"] for h in b], args
        for x, y in zip(a, b):
            assert _without_scores(x) == _without_scores(y)
            for key in ("score", "clip_score", "itm_score"):
                assert (x[key] is None) == (y[key] is None) and (x[key] is None or x[key] == pytest.approx(y[key], abs=0.02))
    listing = through[4]
    assert all(h["score"] is None and h["folder"] == str(photos / "a") for h in listing) and len(listing) == 3
