"""The running service against a hostile web page, a careless client and other local users: a
real `imgsearch watch` process on loopback, spoken to as a browser on another site would (raw
HTTP with its own Host, Origin and Sec-Fetch-Site headers)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from test_watch_service import Service, _cli, _env, wait_for

from conftest import make_shapes


def _request(url: str, method: str, path: str, headers: dict[str, str] | None = None,
             body: bytes | None = None) -> tuple[int, bytes]:
    """One request with exactly the headers given (urllib would set Host itself)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in {"Host": parts.netloc, **(headers or {})}.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _with_open_umask(fn):  # type: ignore[no-untyped-def]
    """Start children with a permissive umask, as a user's shell does: what is private in the
    index folder must be so by the product's doing."""
    old = os.umask(0o022)
    try:
        return fn()
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Path, Path]]:
    base = tmp_path_factory.mktemp("security")
    photos, private = base / "photos", base / "someone-private"
    for folder, seed in ((photos, 4), (private, 9)):
        make_shapes(folder, 6, seed=seed)
        (folder / "scenes.json").unlink()
    svc = _with_open_umask(lambda: Service(base / "home", str(photos), "--no-captions"))
    wait_for(lambda: svc.settled({str(p) for p in photos.iterdir()}), "the first pass", 120)
    yield svc, photos, private
    svc.stop(signal.SIGKILL)


def test_a_page_rebound_to_loopback_reads_nothing(running: tuple[Service, Path, Path]) -> None:
    svc, photos, _ = running
    image_id = min(svc.paths().values())
    port = urlsplit(svc.url).port
    for host in (f"evil.example:{port}", "evil.example", f"localhost:{port + 1}"):
        for path in ("/", "/api/status", "/api/search?q=a+red+circle&rerank_k=0", f"/api/images/{image_id}",
                     f"/api/images/{image_id}/original", f"/api/images/{image_id}/thumbnail"):
            code, body = _request(svc.url, "GET", path, {"Host": host})
            assert 400 <= code < 500, (host, path, code)
            assert str(photos).encode() not in body
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert _request(svc.url, "GET", "/api/status", {"Host": host})[0] == 200


def test_only_the_secret_the_cli_has_adds_a_folder(running: tuple[Service, Path, Path]) -> None:
    svc, _, private = running
    body = json.dumps({"paths": [str(private), "/etc"]}).encode()
    for headers in ({"Content-Type": "application/json"},
                    {"Content-Type": "application/json", "Host": "evil.example:80"},
                    {"Content-Type": "text/plain", "Origin": "http://evil.example"}):
        code, _ = _request(svc.url, "POST", "/api/index", headers, body)
        assert 400 <= code < 500, (headers, code)
    time.sleep(2)  # had a job been taken, it would have started by now
    roots = json.loads((svc.folder / "roots.json").read_text())
    assert str(private) not in roots and "/etc" not in roots
    assert not any(p.startswith(str(private)) for p in svc.paths())

    done = _cli("index", str(private), "--json", env=svc.env)  # the CLI reads service.json's secret
    assert done.returncode == 0, done.stderr
    assert {str(p) for p in private.iterdir()} <= set(svc.paths())


def _as_another_user(url: str, path: str) -> int:
    """The status another local user gets: a forked child drops to `nobody`, then asks."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.setgid(65534)
            os.setuid(65534)
            code = _request(url, "GET", path)[0]
        finally:
            os.write(write, str(code).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        answer = f.read()
    os.waitpid(pid, 0)
    return int(answer or 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root (CI runs as root)")
def test_another_user_of_the_machine_is_refused(running: tuple[Service, Path, Path]) -> None:
    svc, _, _ = running
    image_id = min(svc.paths().values())
    for path in ("/api/status", f"/api/images/{image_id}/original", "/"):
        assert _as_another_user(svc.url, path) == 403, path
        assert _request(svc.url, "GET", path)[0] == 200, path


def test_a_cross_site_form_post_does_not_reveal(running: tuple[Service, Path, Path]) -> None:
    svc, _, _ = running
    image_id = min(svc.paths().values())
    form = {"Content-Type": "text/plain", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    code, _ = _request(svc.url, "POST", f"/api/images/{image_id}/reveal", form, b"a=b")
    assert code == 403
    page = {"Content-Type": "application/json", "Origin": svc.url, "Sec-Fetch-Site": "same-origin"}
    assert _request(svc.url, "POST", f"/api/images/{image_id}/reveal", page)[0] == 200


def test_ids_past_64_bits_answer_404_not_500(running: tuple[Service, Path, Path]) -> None:
    svc, _, _ = running
    for path in ("/api/images/{}", "/api/images/{}/original", "/api/images/{}/similar", "/api/images/{}/thumbnail"):
        for big in (2**63, 2**64, 10**40):
            code, _ = _request(svc.url, "GET", path.format(big))
            assert code in (404, 422), (path, big, code)
    assert _request(svc.url, "POST", f"/api/images/{2**63}/reveal")[0] in (404, 422)
    assert "Traceback" not in (svc.folder / "service.log").read_text()


def test_the_index_folder_is_private_to_its_owner(running: tuple[Service, Path, Path]) -> None:
    svc, _, _ = running
    image_id = min(svc.paths().values())
    assert _request(svc.url, "GET", f"/api/images/{image_id}/thumbnail")[0] == 200  # a thumbnail exists
    _assert_private(svc.folder)
    assert (svc.folder / "service.log").exists() and list((svc.folder / "thumbnails").glob("*/*.webp"))


def test_limits_and_their_message_are_the_same_with_and_without_the_service(
    running: tuple[Service, Path, Path], tmp_path: Path,
) -> None:
    svc, _, _ = running
    alone = _env(tmp_path / "no-service-home")
    for args in (["a red circle", "-n", "20000"], ["a red circle", "--rerank-k", "5000"],
                 ["tax report " * 1000, "--no-rerank"]):
        through, direct = _cli("query", *args, env=svc.env), _cli("query", *args, env=alone)
        assert through.returncode == direct.returncode == 2, (through.stderr, direct.stderr)
        assert through.stderr == direct.stderr and "tax report tax" not in through.stderr
    ok = _cli("query", "a red circle", "-n", "3", "--rerank-k", "0", "--json", env=svc.env)
    assert ok.returncode == 0 and len(json.loads(ok.stdout)) == 3


def test_sigterm_while_starting_exits_cleanly(tmp_path: Path) -> None:
    env = _env(tmp_path / "home")
    folder = tmp_path / "home" / "imgsearch-tiny"
    proc = _with_open_umask(lambda: subprocess.Popen(
        [sys.executable, "-m", "imgsearch.cli.app", "watch", "--port", "0"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    try:
        # the writer lock is the service's first act; models load after it
        wait_for(lambda: (folder / "writer.lock").exists() and (folder / "writer.lock").read_text(),
                 "the service to take its lock", 60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait()
    assert not (folder / "service.json").exists()
    direct = _cli("status", "--json", env=env)  # the lock was let go
    assert direct.returncode == 0, direct.stderr


def test_a_direct_index_run_keeps_its_files_private(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    make_shapes(photos, 3, seed=2)
    env = _env(tmp_path / "home")
    done = _with_open_umask(lambda: _cli("index", str(photos), env=env))
    assert done.returncode == 0, done.stderr
    _assert_private(tmp_path / "home")


def _assert_private(top: Path) -> None:
    loose = []
    for folder, dirs, files in os.walk(top):
        for name, want in [*((d, 0o700) for d in dirs), *((f, 0o600) for f in files)]:
            path = os.path.join(folder, name)
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            if mode & 0o077:
                loose.append(f"{path}: {mode:o}")
    assert stat.S_IMODE(top.stat().st_mode) & 0o077 == 0, f"{top}: {stat.S_IMODE(top.stat().st_mode):o}"
    assert not loose, loose
