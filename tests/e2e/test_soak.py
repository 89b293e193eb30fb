"""Soak: a real `imgsearch watch` process follows a folder through a long churn of creations,
rewrites, renames, moves of files and whole folders, and deletions; at the end the index is the
folder, exactly, and the service's memory did not grow with the work done.

Short by default (CI); `IMGSEARCH_SOAK=1` runs the long one (thousands of operations, minutes),
and `IMGSEARCH_SOAK=N` (N > 1) runs N operations. Same code either way."""

from __future__ import annotations

import io
import os
import random
import shutil
import signal
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from test_watch_service import Service, wait_for

from imgsearch.service.client import ServiceClient, find_service
from imgsearch.settings import Settings

psutil = pytest.importorskip("psutil")

_SOAK = int(os.environ.get("IMGSEARCH_SOAK", "0") or 0)
OPS = 5000 if _SOAK == 1 else _SOAK if _SOAK > 1 else 400
MAX_FILES = 400 if _SOAK else 120  # the folder's size stays bounded: memory must not follow the work
PACE = 0.04  # mean seconds between operations; bursts come without any
MB = 1024 * 1024


def picture(rng: random.Random, suffix: str) -> bytes:
    """A small real picture, different from every other one (random colours and shapes)."""
    colour = tuple(rng.randrange(256) for _ in range(3))
    img = Image.new("RGB", (64, 64), colour)
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x, y = rng.randrange(48), rng.randrange(48)
        draw.rectangle((x, y, x + rng.randrange(4, 16), y + rng.randrange(4, 16)),
                       fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    img.save(out, "PNG" if suffix == ".png" else "JPEG", quality=90)
    return out.getvalue()


@dataclass
class Churn:
    """The folder as the script left it: files and subfolders relative to `root`."""

    root: Path
    outside: Path  # on the same file system, not watched
    rng: random.Random
    files: set[str] = field(default_factory=set)
    dirs: set[str] = field(default_factory=lambda: {""})
    counter: int = 0
    history: list[tuple[str, str, str]] = field(default_factory=list)  # (what, path, new path)

    def _did(self, what: str, rel: str, new: str = "") -> None:
        self.history.append((what, rel, new))

    def story(self, path: str) -> list[str]:
        """What happened to the file at `path` (absolute), under its every name, oldest first."""
        current, lines = os.path.relpath(path, self.root), []
        for what, rel, new in reversed(self.history):
            if new and (current == new or current.startswith(new + os.sep)):  # it came from `rel`
                lines.append(f"{what} {rel} -> {new}")
                current = rel + current[len(new):]
            elif current == rel or current.startswith(rel + os.sep):
                lines.append(f"{what} {rel}" + (f" -> {new}" if new else ""))
        return lines[::-1]

    def _name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:05}"

    def _pick(self, items: set[str]) -> str:
        return self.rng.choice(sorted(items))

    def create(self) -> None:
        suffix = self.rng.choice([".png", ".jpg"])
        rel = os.path.join(self._pick(self.dirs), self._name("img") + suffix)
        (self.root / rel).write_bytes(picture(self.rng, suffix))
        self.files.add(rel)
        self._did("create", rel)

    def rewrite(self) -> None:
        rel = self._pick(self.files)
        (self.root / rel).write_bytes(picture(self.rng, os.path.splitext(rel)[1]))
        self._did("rewrite", rel)

    def rename(self) -> None:
        rel = self._pick(self.files)
        new = os.path.join(os.path.dirname(rel), self._name("ren") + os.path.splitext(rel)[1])
        os.rename(self.root / rel, self.root / new)
        self.files.remove(rel)
        self.files.add(new)
        self._did("rename", rel, new)

    def move(self) -> None:
        rel = self._pick(self.files)
        new = os.path.join(self._pick(self.dirs), os.path.basename(rel))
        if new in self.files:
            return
        shutil.move(self.root / rel, self.root / new)
        self.files.remove(rel)
        self.files.add(new)
        self._did("move", rel, new)

    def mkdir(self) -> None:
        parent = self._pick({d for d in self.dirs if d.count(os.sep) < 2})
        rel = os.path.join(parent, self._name("album"))
        (self.root / rel).mkdir()
        self.dirs.add(rel)
        self._did("mkdir", rel)

    def move_dir(self) -> None:
        movable = self.dirs - {""}
        if not movable:
            return
        src = self._pick(movable)
        targets = {d for d in self.dirs
                   if d != src and not d.startswith(src + os.sep) and d.count(os.sep) < 2}
        dest = os.path.join(self._pick(targets), self._name("moved"))
        shutil.move(self.root / src, self.root / dest)
        self._rebase(src, dest)
        self._did("move folder", src, dest)

    def delete(self) -> None:
        rel = self._pick(self.files)
        (self.root / rel).unlink()
        self.files.remove(rel)
        self._did("delete", rel)

    def delete_dir(self) -> None:
        small = {d for d in self.dirs - {""} if sum(f.startswith(d + os.sep) for f in self.files) <= 5}
        if small:
            rel = self._pick(small)
            shutil.rmtree(self.root / rel)
            self._rebase(rel, None)
            self._did("delete folder", rel)

    def move_out(self) -> None:
        """A file or folder moved out of the watched tree (to the trash, another drive)."""
        if self.rng.random() < 0.5:
            rel = self._pick(self.files)
            self.files.remove(rel)
        else:
            movable = self.dirs - {""}
            if not movable:
                return
            rel = self._pick(movable)
            self._rebase(rel, None)
        shutil.move(self.root / rel, self.outside / self._name("out"))
        self._did("move out", rel)

    def move_in(self) -> None:
        """A folder of new pictures (an import, a download) or one picture, moved in whole."""
        dest = os.path.join(self._pick(self.dirs), self._name("import"))
        staging = self.outside / self._name("staging")
        staging.mkdir()
        made = []
        for _ in range(self.rng.randrange(1, 5)):
            suffix = self.rng.choice([".png", ".jpg"])
            name = self._name("img") + suffix
            (staging / name).write_bytes(picture(self.rng, suffix))
            made.append(name)
        if len(made) == 1:  # a single file: "dest" names the file
            dest += os.path.splitext(made[0])[1]
            shutil.move(staging / made[0], self.root / dest)
            self.files.add(dest)
        else:
            shutil.move(staging, self.root / dest)
            self.dirs.add(dest)
            self.files |= {os.path.join(dest, n) for n in made}
        self._did("move in", dest)

    def _rebase(self, src: str, dest: str | None) -> None:
        def moved(p: str) -> str | None:
            if p != src and not p.startswith(src + os.sep):
                return p
            return None if dest is None else dest + p[len(src):]

        self.files = {m for m in map(moved, self.files) if m is not None}
        self.dirs = {m for m in map(moved, self.dirs) if m is not None}

    def step(self) -> None:
        if len(self.files) < 10:
            return self.create()
        ops = [(self.create, 30), (self.rewrite, 15), (self.rename, 15), (self.move, 15), (self.delete, 15),
               (self.mkdir, 4), (self.move_dir, 4), (self.delete_dir, 2), (self.move_out, 3),
               (self.move_in, 3)]
        if len(self.files) >= MAX_FILES:
            ops = [(op, w) for op, w in ops if op != self.create]
        op = self.rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
        op()


class Rss:
    """The service process's resident memory, sampled every `interval` seconds while on."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.process, self.interval = psutil.Process(pid), interval
        self.samples: list[int] = []
        self.on = threading.Event()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            if self.on.is_set():
                self.samples.append(self.process.memory_info().rss)

    def stop(self) -> list[int]:
        self._halt.set()
        self._thread.join()
        return self.samples


def idle(client: ServiceClient) -> bool:
    activity = client.get("/api/status")["activity"]
    return activity["state"] == "idle" and activity["queued"] == 0


def still_idle(client: ServiceClient) -> bool:
    """Idle twice a second apart: not a pause between two events' handling."""
    if not idle(client):
        return False
    time.sleep(1.0)
    return idle(client)


def log_lines(svc: Service, path: str) -> list[str]:
    """The service log's lines that name this file (what it made of it, for a failure's message)."""
    try:
        text = (svc.folder / "service.log").read_text(errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if os.path.basename(path) in line][-10:]


def catalog_rows(svc: Service) -> list[tuple[str, bool, str | None]]:
    with sqlite3.connect(f"file:{svc.folder / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=5) as con:
        return [(p, bool(v), e) for p, v, e in con.execute("select path, has_vector, error from files")]


@pytest.fixture
def soak(tmp_path: Path) -> Iterator[tuple[Service, Churn, ServiceClient]]:
    root = tmp_path / "photos"
    churn = Churn(root, tmp_path / "outside", random.Random(int(os.environ.get("IMGSEARCH_SOAK_SEED", "7"))))
    root.mkdir()
    churn.outside.mkdir()
    for _ in range(3):
        churn.mkdir()
    for _ in range(30):
        churn.create()
    svc = Service(tmp_path / "home", str(root))
    client = wait_for(lambda: find_service(Settings(home=svc.home, models="tiny")), "the service's address")
    assert isinstance(client, ServiceClient) and client.url == svc.url
    wait_for(lambda: idle(client), "the first pass", 120)
    yield svc, churn, client
    svc.stop(signal.SIGKILL)


def test_the_index_stays_the_folder_through_a_long_churn_without_leaking(soak) -> None:
    """After OPS random operations the index holds every image file on disk, once, and nothing
    else (catalog rows, vectors and the API agree). Memory: the median RSS of the churn's last
    quarter is at most max(25 %, 60 MB) above its first quarter's (after a warm-up of a fifth of
    the operations) — a bound for "no leak", not a budget."""
    svc, churn, client = soak
    rss = Rss(svc.proc.pid)
    rng = random.Random(11)
    burst = 0
    for i in range(OPS):
        if i == OPS // 5:
            rss.on.set()
        churn.step()
        if burst:
            burst -= 1
        elif rng.random() < 0.02:
            burst = rng.randrange(10, 40)  # a burst: many operations between two events' handling
        else:
            time.sleep(rng.uniform(0, 2 * PACE))
        assert svc.proc.poll() is None, "the service died during the churn"
    samples = rss.stop()

    time.sleep(2.0)  # the last events reach the service
    wait_for(lambda: still_idle(client), "the service to settle", max(120.0, OPS * 0.1))
    on_disk = {str(p) for p in churn.root.rglob("*") if p.is_file()}
    assert on_disk == {str(churn.root / f) for f in churn.files}, "the script lost track of its folder"
    rows = catalog_rows(svc)
    paths = [p for p, _, _ in rows]
    assert len(paths) == len(set(paths)), "a path indexed twice"
    unfinished = [(p, e) for p, v, e in rows if not v or e]
    assert not unfinished, "rows without a vector: " + "; ".join(
        f"{p} ({e}); its story: {' / '.join(churn.story(p))}; the log on it: {' / '.join(log_lines(svc, p))}"
        for p, e in unfinished[:3])
    wrong = sorted(set(paths) ^ on_disk)
    assert not wrong, (f"indexed but gone: {sorted(set(paths) - on_disk)[:5]}; on disk, not indexed: "
                       f"{sorted(on_disk - set(paths))[:5]}; what happened to {wrong[0]}:\n"
                       + "\n".join(churn.story(wrong[0])))
    status = client.get("/api/status")
    assert status["images"] == status["vectors"] == len(on_disk)

    quarter = max(1, len(samples) // 4)
    first, last = statistics.median(samples[:quarter]), statistics.median(samples[-quarter:])
    print(f"{OPS} operations, {len(on_disk)} files at the end; RSS median {first / MB:.0f} MB "
          f"-> {last / MB:.0f} MB over {len(samples)} samples")
    assert len(samples) >= 8, "too few memory samples to judge"
    assert last - first <= max(0.25 * first, 60 * MB), f"RSS grew {first / MB:.0f} -> {last / MB:.0f} MB"
