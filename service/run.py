"""`imgsearch watch`: start the service and run it until SIGTERM or Ctrl-C.

Start: take the writer lock (one service per data directory), load the models, open the stores,
start watching, then serve HTTP while the worker does an incremental pass over every root. Stop:
uvicorn ends on SIGTERM/SIGINT; the worker finishes the batch in hand, both stores are flushed
and closed, the lock is dropped, exit 0. SIGTERM while still starting (models loading) ends it
the same clean way. After a kill -9 the next start's `repair` mends the stores (every index run
begins with it).

`--query-only`: a stateless query node in front of shared stores (a Qdrant server or cluster, and
a catalog on PostgreSQL or a SQLite file the node can read), beside a writer elsewhere (another
service, `imgsearch index`, an `index --ray` job). It takes no writer lock, watches and indexes
nothing, and answers everything else as a service does; several can serve one index."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import secrets
import signal
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from imgsearch.errors import ConfigError
from imgsearch.models import Models
from imgsearch.private import make_private
from imgsearch.settings import Settings
from imgsearch.stores import open_stores
from imgsearch.stores.lock import WriterLock
from imgsearch.stores.writers import WriterLease

from .api import create_app
from .engine import Engine
from .guard import Access, is_loopback
from .watcher import ChangeCollector, Watcher
from .worker import Roots, Worker

log = logging.getLogger("imgsearch.service")


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _logging(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(folder / "service.log", maxBytes=5_000_000, backupCount=3)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.addFilter(lambda r: r.name.startswith("imgsearch") or r.levelno >= logging.WARNING)
    root.addHandler(console)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}. Pick another --port "
                          "(0 lets the system choose).") from None
    sock.listen(128)
    return sock


def _write_service_file(settings: Settings, url: str, token: str) -> None:
    path = settings.service_file
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may hold the token
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "url": url, "token": token, "profile": settings.models}, f)
    os.replace(tmp, path)


def run_service(
    settings: Settings, paths: Sequence[Path] = (), *, captions: bool = True,
    echo: object = print, stop: threading.Event | None = None, query_only: bool = False,
) -> None:
    """Returns when stopped (exit 0 for the caller), also when SIGTERM or Ctrl-C came while
    starting. From the first moment on, a stop signal only sets `stop`: an exception raised at
    an arbitrary point of loading (inside torch, SQLite, Qdrant) could leave a lock held and the
    exit hanging. Start-up looks at it between its steps; once serving, uvicorn takes the
    signals over and is told to stop if one came just before."""
    stop = stop or threading.Event()  # the CLI's, set by a signal that came while it imported us
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in STOP_SIGNALS}
    try:
        _serve(settings, paths, captions, echo, stop, query_only)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_query_only(settings: Settings, paths: Sequence[Path]) -> None:
    """What a query-only node needs, said before anything loads."""
    from .client import running_service_file

    if paths:
        raise ConfigError("a query-only node watches no folders: start it without them (the writer indexes them)")
    if not settings.qdrant_url:
        raise ConfigError("a query-only node reads the vectors from the Qdrant server the writer writes to: set "
                          "--qdrant-url (IMGSEARCH_QDRANT_URL); the embedded vector store belongs to one process")
    running = running_service_file(settings)
    if running is not None:
        raise ConfigError(f"a service already runs for {settings.index_dir} (pid {running['pid']}): give each "
                          "query node a --home of its own (and the shared catalog's IMGSEARCH_CATALOG_URL)")


def _serve(settings: Settings, paths: Sequence[Path], captions: bool, echo: object,
           stop: threading.Event, query_only: bool = False) -> None:
    if stop.is_set():
        log.info("stopped while starting")
        return
    if query_only:
        _check_query_only(settings, paths)
    host, port = settings.host, settings.port
    # The secret the CLI reads from service.json: needed for every request beyond loopback (or
    # when --token was given), and on loopback for what makes the service read new folders.
    secret = settings.token or secrets.token_urlsafe(24)
    if not is_loopback(host) and not settings.token:
        echo(f"bound beyond loopback: requests need this token (also in {settings.service_file}):\n  {secret}")
    index_dir = settings.index_dir
    make_private(index_dir)
    lock = None if query_only else WriterLock(index_dir, "service").acquire()
    _logging(index_dir)
    echo(f"starting the imgsearch service for {index_dir} (loading models)")
    stores = watcher = worker = lease = None
    try:
        sock = _bind(host, port)
        models = Models(settings)
        if stop.is_set():
            return
        clip = models.clip
        if stop.is_set():
            return
        stores = open_stores(settings, models.facts(), clip.dim)
        if stop.is_set():
            return
        engine = Engine(settings, models, stores)
        watching: list[Path] = []
        if not query_only:  # a writer for its lifetime: its batches and claims known to other writers
            lease = WriterLease(stores.catalog, "imgsearch service").acquire()
            stores.writer = lease.id
            roots = Roots(index_dir, [*settings.roots, *paths])
            watching = roots.paths
            collector = ChangeCollector(ignore=(str(settings.home.absolute()),))
            watcher = Watcher(collector, polling=settings.polling)
            watcher.start(roots.paths)  # events first, then the pass: nothing falls in between
            worker = Worker(engine, roots, collector, watcher, rescan_seconds=settings.rescan_minutes * 60,
                            captions=captions, texts=settings.ocr)
            worker.start()
        threading.Thread(target=engine.warm_up, name="imgsearch-warm-up", daemon=True).start()
        bound_host, bound_port = sock.getsockname()[:2]
        access = Access.for_bind(host, bound_port, secret, token_given=bool(settings.token),
                                 extra_names=settings.allowed_hosts)
        app = create_app(engine, access, worker)
        url = f"http://{'[' + bound_host + ']' if ':' in bound_host else bound_host}:{bound_port}"
        _write_service_file(settings, url, secret)
        if query_only:
            log.info("serving %s on %s, queries only", index_dir, url)
            echo(f"imgsearch query node on {url} (queries only: it watches and indexes nothing; "
                 f"log: {index_dir / 'service.log'})")
        else:
            log.info("serving %s on %s, watching %s", index_dir, url, ", ".join(map(str, watching)) or "nothing yet")
            echo(f"imgsearch service on {url} (watching {len(watching)} folder(s); log: {index_dir / 'service.log'})")
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
        # uvicorn handles SIGTERM/SIGINT while it serves, then re-raises the signal under the handler
        # it found (ours: it sets `stop`). A signal that came before uvicorn took over stops it too.
        def stop_serving() -> None:  # `stop` set by a signal before uvicorn took over, or by an embedder
            stop.wait()
            server.should_exit = True

        threading.Thread(target=stop_serving, name="imgsearch-stop", daemon=True).start()
        if not stop.is_set():
            server.run(sockets=[sock])
    finally:
        if stop.is_set() and worker is None and not query_only:
            log.info("stopped while starting")
        settings.service_file.unlink(missing_ok=True)
        if worker is not None:
            log.info("stopping: finishing the batch in hand")
            worker.stop()
        if watcher is not None:
            watcher.stop()
        if worker is not None:
            worker.join()
        if lease is not None:
            lease.release()
        if stores is not None:
            stores.vectors.flush()
            stores.close()
        if lock is not None:
            lock.release()
        log.info("stopped")
