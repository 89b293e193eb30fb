"""`imgsearch watch` as users run it: a real process, real watchdog events on real folders, the
CLI going through it, a second writer refused, SIGTERM and SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import make_shapes


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "IMGSEARCH_HOME": str(home), "IMGSEARCH_MODELS": "tiny", "HF_HUB_OFFLINE": "1",
            "IMGSEARCH_BATCH_SIZE": "8", **extra}


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imgsearch.cli.app", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def wait_for(check: Callable[[], object], what: str, timeout: float = 30.0) -> object:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Service:
    def __init__(self, home: Path, *args: str, **env: str) -> None:
        self.home, self.env = home, _env(home, **env)
        self.folder = home / "imgsearch-tiny"
        self.log = open(home.parent / f"service-{time.time_ns()}.log", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "imgsearch.cli.app", "watch", "--port", "0", *args],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        info = wait_for(self._info, "the service to answer", 120)
        self.url, self.token = info["url"], info.get("token")

    def _info(self) -> dict | None:
        if self.proc.poll() is not None:
            self.log.seek(0)
            raise AssertionError(f"the service exited ({self.proc.returncode}):\n{self.log.read()}")
        try:
            info = json.loads((self.folder / "service.json").read_text())
            urllib.request.urlopen(info["url"] + "/api/health", timeout=2)
            return info
        except (OSError, ValueError, urllib.error.URLError) as e:
            if isinstance(e, urllib.error.HTTPError) and e.code == 401:
                return info
            return None

    def get(self, path: str, token: str | None = None) -> dict:
        request = urllib.request.Request(self.url + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=60) as r:
            return json.loads(r.read())

    def paths(self) -> dict[str, int]:
        """Indexed paths with their ids, read from the catalog as another process would."""
        with sqlite3.connect(f"file:{self.folder / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=5) as con:
            return dict(con.execute("select path, id from files where has_vector"))

    def settled(self, expected: set[str]) -> bool:
        status = self.get("/api/status", self.token)
        return set(self.paths()) == expected and status["vectors"] == status["images"] == len(expected)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Service, Path]]:
    photos = tmp_path / "photos"
    make_shapes(photos, 12, seed=3)
    (photos / "scenes.json").unlink()
    svc = Service(tmp_path / "home", str(photos))
    wait_for(lambda: svc.settled({str(p) for p in photos.iterdir()}), "the first pass")
    yield svc, photos
    svc.stop(signal.SIGKILL)


def test_the_index_follows_the_folders(service: tuple[Service, Path], tmp_path: Path) -> None:
    svc, photos = service
    outside = tmp_path / "elsewhere"
    make_shapes(outside, 6, seed=4)
    extra = sorted(p for p in outside.iterdir() if p.suffix != ".json")
    expected = {str(p) for p in photos.iterdir()}

    # a slow, chunked copy: only the complete file is indexed
    data = extra[0].read_bytes()
    slow = photos / "slow.jpg"
    with open(slow, "wb") as f:
        for i in range(0, len(data), len(data) // 4 + 1):
            f.write(data[i:i + len(data) // 4 + 1])
            f.flush()
            time.sleep(0.6)
    expected.add(str(slow))
    wait_for(lambda: svc.settled(expected), "the slowly written file", 15)

    # moved in: a file, and a folder with files
    shutil.move(extra[1], photos / extra[1].name)
    album = outside / "album"
    album.mkdir()
    for p in extra[2:4]:
        shutil.move(p, album / p.name)
    shutil.move(album, photos / "album")
    expected |= {str(photos / extra[1].name), *(str(photos / "album" / p.name) for p in extra[2:4])}
    wait_for(lambda: svc.settled(expected), "files and a folder moved in", 15)

    # a folder renamed: same ids (vectors and captions kept), new paths
    before = {Path(p).name: i for p, i in svc.paths().items() if "/album/" in p}
    (photos / "album").rename(photos / "holiday")
    expected = {p.replace("/album/", "/holiday/") for p in expected}
    wait_for(lambda: svc.settled(expected), "the renamed folder", 15)
    assert {Path(p).name: i for p, i in svc.paths().items() if "/holiday/" in p} == before

    # moved out and deleted
    victim = next(p for p in sorted(expected) if "/holiday/" not in p and not p.endswith("slow.jpg"))
    shutil.move(photos / "holiday", outside / "holiday")
    os.unlink(victim)
    expected = {p for p in expected if "/holiday/" not in p and p != victim}
    wait_for(lambda: svc.settled(expected), "files moved out and deleted", 15)


def test_a_root_deleted_and_created_again_is_watched_again(
    service: tuple[Service, Path], tmp_path: Path,
) -> None:
    """The watch of a deleted root ends with it (as with an unmounted drive); once a folder is
    back in its place the service watches it again and indexes what it holds, without a restart."""
    svc, photos = service
    spare = tmp_path / "spare"
    make_shapes(spare, 2, seed=5)
    first, second = sorted(p for p in spare.iterdir() if p.suffix != ".json")
    shutil.rmtree(photos)
    wait_for(lambda: svc.settled(set()), "the deleted files to leave the index")
    photos.mkdir()
    shutil.copy(first, photos / first.name)  # while no watch may be armed yet
    wait_for(lambda: svc.settled({str(photos / first.name)}), "the re-created folder's file", 60)
    shutil.copy(second, photos / second.name)  # and events flow again
    wait_for(lambda: svc.settled({str(photos / first.name), str(photos / second.name)}),
             "a file added to the re-created folder", 60)
    assert "watching " + str(photos) + " again" in (svc.folder / "service.log").read_text()


def test_cli_goes_through_the_service_and_queries_answer_while_it_indexes(
    service: tuple[Service, Path], tmp_path: Path,
) -> None:
    svc, photos = service
    status = json.loads(_cli("status", "--json", env=svc.env).stdout)
    assert status["service"] == svc.url and status["activity"]["state"] in ("idle", "captions")

    burst = tmp_path / "burst"
    make_shapes(burst, 60, seed=8)
    (burst / "scenes.json").unlink()
    shutil.copytree(burst, photos / "burst")
    # while the burst is indexed; no match cutoff: how many of the pictures indexed so far are
    # red circles is a matter of timing, that the query answers with three pictures is not
    query = _cli("query", "a red circle", "--json", "-n", "3", "--min-match", "0", env=svc.env)
    assert query.returncode == 0, query.stderr
    assert len(json.loads(query.stdout)) == 3
    expected = {str(p) for p in photos.rglob("*.*")}
    wait_for(lambda: svc.settled(expected), "the burst", 60)

    more = tmp_path / "more"
    make_shapes(more, 4, seed=9)
    (more / "scenes.json").unlink()
    report = _cli("index", str(more), "--json", "--precompute-rerank", env=svc.env)  # handed to the service
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["embedded"] == 4
    cached = {p.stem for p in (svc.folder / "itm-cache").rglob("*.safetensors")}
    assert len(cached) == len({p.read_bytes() for p in photos.rglob("*.*")} | {p.read_bytes() for p in more.iterdir()})
    # from now on the service watches that folder too
    (more / "0-late.png").write_bytes(next(more.iterdir()).read_bytes())
    expected |= {str(p) for p in more.iterdir()}
    wait_for(lambda: svc.settled(expected), "a file added to the newly indexed folder", 15)


def test_a_second_writer_is_refused(service: tuple[Service, Path]) -> None:
    svc, photos = service
    second = _cli("watch", "--port", "0", env=svc.env)
    assert second.returncode == 4
    assert "being written by service" in second.stderr
    from imgsearch.errors import StoreLockedError
    from imgsearch.indexer import run_index
    from imgsearch.settings import Settings

    with pytest.raises(StoreLockedError):
        run_index(Settings(home=svc.home, models="tiny"), [photos])


def test_sigterm_stops_cleanly(service: tuple[Service, Path]) -> None:
    svc, _ = service
    assert svc.stop(signal.SIGTERM) == 0
    assert not (svc.folder / "service.json").exists()
    status = json.loads(_cli("status", "--json", env=svc.env).stdout)  # works without the service
    assert "service" not in status and status["images"] == status["vectors"] == 12


def test_killed_mid_batch_then_restarted_beyond_loopback(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    make_shapes(photos, 120, seed=21)
    (photos / "scenes.json").unlink()
    home = tmp_path / "home"
    svc = Service(home, str(photos), "--no-captions", IMGSEARCH_BATCH_SIZE="4")
    wait_for(lambda: 8 <= len(svc.paths()) < 120 and svc.paths(), "part of the first pass", 120)
    svc.stop(signal.SIGKILL)

    svc = Service(home, "--host", "0.0.0.0")  # the roots are remembered
    try:
        assert svc.token, "binding beyond loopback must set a token"
        with pytest.raises(urllib.error.HTTPError) as refused:
            svc.get("/api/status")
        assert refused.value.code == 401
        wait_for(lambda: svc.settled({str(p) for p in photos.iterdir()}), "the repaired index", 120)
        with sqlite3.connect(svc.folder / "catalog.sqlite3") as con:
            paths = [p for (p,) in con.execute("select path from files")]
        assert len(paths) == len(set(paths)) == 120
        query = _cli("query", "a green square", "--json", env=svc.env)  # the CLI reads the token
        assert query.returncode == 0, query.stderr
    finally:
        assert svc.stop() == 0
