"""`imgsearch index --ray ADDRESS` on a real two-node Ray cluster on this machine (`ray start --head`
plus a second `ray start --address`, one CPU each, each node on its own loopback address): the index
it builds equals a local run's on the same pictures (files, skipped files and reasons, vectors
within 1e-5 cosine, tags, captions, the text read in them, the top hits of a query), and a worker
killed mid-batch, in any phase, costs nothing.
The cluster must start: a machine where it cannot fails these tests, it does not skip them.
docs/scale-out.md ("Indexing on a Ray cluster")."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import ray  # noqa: F401  -- required, never skipped: `pip install '.[scale]'`, as CI does
from PIL import Image, ImageDraw, ImageFont

from conftest import make_shapes
from imgsearch.library.local import LocalIndex
from imgsearch.searcher.request import VECTOR, SearchRequest, words
from imgsearch.settings import Settings

RAY = str(Path(sys.executable).with_name("ray"))
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"  # not 127.0.0.1: Ray would swap that for the LAN address
# The same for every process of the test's cluster and its drivers, whatever ~/.ray holds (Ray turns
# token auth on by itself where a ~/.ray/auth_token exists): a loopback-only cluster without tokens.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`ray start ... --block` in a session of its own: stopping it stops what it started."""
    with open(log, "wb") as out:
        return subprocess.Popen([RAY, "start", "--block", "--num-cpus", "1", "--disable-usage-stats", *args],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_started(proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Ray runtime started" in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    pytest.fail(f"the Ray node did not start (exit {proc.poll()}); its log:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the node: `ray start` and every process it started (its raylet's workers run in
    sessions of their own, so by pid, not by group). A drain (SIGTERM) would take 30 s."""
    try:
        family = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)
    proc.wait()


def _nodes_alive(address: str, env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", (
        "import ray,sys; ray.init(address=sys.argv[1], _node_ip_address=sys.argv[2], log_to_driver=False);"
        "print(sum(1 for n in ray.nodes() if n['Alive']))"), address, HEAD_IP],
        env=env, capture_output=True, text=True, timeout=120)
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A head and a worker node, one CPU each, on loopback addresses; the head's address."""
    base = tmp_path_factory.mktemp("r")  # short: Ray's socket paths live under it
    env = {**os.environ, **RAY_ENV, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    port = _free_port(HEAD_IP)
    address = f"{HEAD_IP}:{port}"
    head_log, worker_log = base / "head.log", base / "worker.log"
    head = _start(["--head", "--node-ip-address", HEAD_IP, "--port", str(port), "--include-dashboard=false",
                   "--temp-dir", str(base / "t"), "--ray-client-server-port", str(_free_port(HEAD_IP)),
                   "--dashboard-agent-listen-port", str(_free_port(HEAD_IP))], head_log, env)
    worker = None
    try:
        _wait_started(head, head_log)
        worker = _start(["--address", address, "--node-ip-address", WORKER_IP,
                         "--dashboard-agent-listen-port", str(_free_port(WORKER_IP))], worker_log, env)
        _wait_started(worker, worker_log)
        deadline = time.monotonic() + 60
        while _nodes_alive(address, env) < 2:
            if time.monotonic() > deadline:
                pytest.fail("the second Ray node did not join the head")
            time.sleep(1)
        yield address
    finally:
        for proc in (worker, head):
            if proc is not None:
                _stop(proc)


def _sign(path: Path, text: str) -> None:
    """Dark words on a light board: a picture with text for the OCR phase."""
    picture = Image.new("RGB", (480, 160), (236, 228, 205))
    ImageDraw.Draw(picture).text((24, 40), text, fill=(30, 30, 40), font=ImageFont.load_default(size=54))
    picture.save(path, quality=92)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """18 shapes pictures (PNG and JPEG) and two signs in two folders, and a file that is not a
    picture. The broken file comes last in scan order, so a local run's batches (of 4 decoded
    pictures) and the cluster's (blocks of 4 files) hold the same pictures: CLIP's output on this
    CPU depends on what else is in its batch by up to 5e-5 cosine (oneDNN picks its convolution by
    batch size; two local runs with other batch sizes differ as much), more than the 1e-5 asked
    here. The captions phase's batches are alike on both sides (all its pictures decode)."""
    folder = tmp_path_factory.mktemp("pics") / "photos"
    make_shapes(folder, 12, seed=11)
    make_shapes(folder / "more", 6, seed=12)
    for extra in folder.rglob("scenes.json"):
        extra.unlink()
    _sign(folder / "sign-cafe.jpg", "CAFE MOZART")
    _sign(folder / "more" / "sign-museum.jpg", "MUSEUM")
    (folder / "more" / "zz-broken.jpg").write_bytes(b"not a picture at all")
    return folder


def _env(home: Path, **extra: str) -> dict[str, str]:
    """fp32 in every process: where bf16 is fast (AMX) each process times it for itself, and on a
    busy machine the cluster's workers and the local run may choose differently (bf16 vectors are
    ~2e-5 in cosine from fp32's, beyond this test's 1e-5)."""
    return {**os.environ, "IMGSEARCH_HOME": str(home), "IMGSEARCH_MODELS": "tiny", "IMGSEARCH_BATCH_SIZE": "4",
            "IMGSEARCH_OCR": "1", "IMGSEARCH_DTYPE": "float32", "HF_HUB_OFFLINE": "1", **RAY_ENV, **extra}


def _index(folder: Path, home: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """A run with every phase (vectors, tags, captions, OCR)."""
    done = subprocess.run([sys.executable, "-m", "imgsearch.cli.app", "index", str(folder), "--json", *extra],
                          env=env or _env(home), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


def _snapshot(home: Path) -> dict[str, Any]:
    """Every file the catalog holds: its row's facts, tags, caption, text, skip reason and vector."""
    with LocalIndex(Settings(home=home, models="tiny")) as idx:
        stores = idx._open_stores()
        known = stores.catalog.files_under(["/"])
        infos = stores.catalog.get([k.id for k in known.values()])
        vectors = stores.vectors.get_vectors([k.id for k in known.values() if k.has_vector])
    out = {}
    for path, k in known.items():
        info = infos.get(k.id)
        out[path] = {"sha256": k.sha256, "size": k.size, "error": k.error, "has_vector": k.has_vector,
                     "width": info and info.width, "height": info and info.height, "tags": info and info.tags,
                     "caption": info and info.caption, "text": info and info.text,
                     "vector": vectors.get(k.id)}
    return out


@pytest.fixture(scope="module")
def local_run(pictures: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any], Path]:
    home = tmp_path_factory.mktemp("local-home")
    return _index(pictures, home), _snapshot(home), home


def _same_index(ray_snap: dict[str, Any], local_snap: dict[str, Any]) -> None:
    assert sorted(ray_snap) == sorted(local_snap)
    assert sum(1 for f in local_snap.values() if f["has_vector"]) == 20
    assert all(f["caption"] for f in local_snap.values() if f["has_vector"])
    assert "MOZART" in (local_snap[next(p for p in local_snap if p.endswith("sign-cafe.jpg"))]["text"] or "")
    for path, want in local_snap.items():
        got = ray_snap[path]
        for key in ("sha256", "size", "error", "has_vector", "width", "height", "caption", "text"):
            assert got[key] == want[key], (path, key)
        if want["has_vector"]:
            assert got["vector"] is not None, path
            cosine = float(np.dot(got["vector"], want["vector"]) /
                           (np.linalg.norm(got["vector"]) * np.linalg.norm(want["vector"])))
            assert cosine > 1 - 1e-5, (path, cosine)
            assert set(got["tags"]) == set(want["tags"]), path
            for label, p in want["tags"].items():
                assert got["tags"][label] == pytest.approx(p, abs=1e-4), (path, label)


def _top(home: Path, queries: list[str]) -> list[list[str]]:
    with LocalIndex(Settings(home=home, models="tiny")) as idx:
        return [[h.path for h in idx.search(SearchRequest((words(q),), mode=VECTOR, limit=5, rerank_k=0,
                                                          min_match=0.0))] for q in queries]


def test_an_index_built_on_the_cluster_equals_a_local_one_though_a_worker_died(
        cluster: str, pictures: Path, local_run: Any, tmp_path: Path) -> None:
    """One run on the cluster, in which the test hook kills a model actor's process mid-batch in
    each phase (after it embedded, captioned or read, before it answered): the actor restarts and
    runs the batch again, and the index equals a local run's."""
    local_report, local_snap, local_home = local_run
    home = tmp_path / "home"
    marker = tmp_path / "killed-once"
    report = _index(pictures, home, "--ray", cluster, env=_env(home, IMGSEARCH_RAY_FAIL_ONCE=str(marker)))
    for phase in ("killed-once", "killed-once.captions", "killed-once.text"):
        assert "killed mid-batch" in (tmp_path / phase).read_text(), f"no worker was killed ({phase})"
    assert report.keys() == local_report.keys()  # the same --json shape
    assert report == local_report  # seen, embedded, tagged, captioned, texts read, skipped with the same reasons
    assert report["embedded"] == 20 and report["captioned"] == 20 and report["texts_read"] == 20
    assert report["skipped"] == [
        {"path": str(pictures / "more" / "zz-broken.jpg"), "reason": "not an image (unrecognised content)"}]
    _same_index(_snapshot(home), local_snap)
    queries = ["a red circle", "a blue square", "a green triangle"]
    assert _top(home, queries) == _top(local_home, queries)


def test_ray_auto_starts_a_cluster_on_this_machine_and_builds_the_same_index(
        pictures: Path, local_run: Any, tmp_path: Path) -> None:
    """`--ray auto`: no cluster to give, the run starts a one-machine cluster for itself (and leaves
    no Ray process behind)."""
    local_report, local_snap, _ = local_run
    home = tmp_path / "home"
    before = {p.pid for p in psutil.process_iter(["name"]) if "raylet" in (p.info["name"] or "")}
    report = _index(pictures, home, "--ray", "auto")
    assert report == local_report
    _same_index(_snapshot(home), local_snap)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = {p.pid for p in psutil.process_iter(["name"]) if "raylet" in (p.info["name"] or "")} - before
        if not left:
            break
        time.sleep(0.5)
    assert not left, "the run's own Ray cluster outlived it"


def test_an_address_nobody_answers_at_is_a_clear_error(tmp_path: Path, pictures: Path) -> None:
    port = _free_port(HEAD_IP)
    done = subprocess.run([sys.executable, "-m", "imgsearch.cli.app", "index", str(pictures), "--ray",
                           f"{HEAD_IP}:{port}"], env=_env(tmp_path / "home"), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 5
    assert f"no Ray cluster answers at {HEAD_IP}:{port}" in " ".join(done.stderr.split())
    assert not (tmp_path / "home" / "imgsearch-tiny" / "catalog.sqlite3").exists()


def test_without_ray_the_message_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from imgsearch.errors import ConfigError
    from imgsearch.indexer.distributed import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'imgsearch\[scale\]'"):
        import_ray()
