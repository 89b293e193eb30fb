"""`imgsearch index PATHS --ray ADDRESS`: the model work of an index run spread over a Ray cluster.

The driver (this process) runs `pipeline.index` itself, as a local run does (writer lock, repair,
backfill, scan, removals, the writes of every phase); its vectors phase is this module's
(`RayVectors`), and the captions and OCR phases send their pictures to the cluster too
(`distributed_texts`).
The files to embed go to Ray Data as a dataset of (path, size, mtime) rows, one block per batch,
mapped by a pool of model actors on the workers (`_ClipWorker`): each actor reads, hashes and
decodes its batch with the local reader (`reader.read_all`, same decode, same skip reasons) and
embeds the pictures with the profile's CLIP (`Models(settings).clip`). Only the outcomes (no
pixels) and the vectors come back; the driver writes them through the run as a local run does
(`pipeline.IndexRun`: `store`, `skip`, `reuse`).

- Every worker must read the files at the same paths as the driver (a shared mount): checked on
  every node before the run starts, and again for each file a worker could not find.
- A worker that dies mid-batch loses nothing: Ray Data restarts the actor and runs the batch again
  (its actors have `max_restarts=-1`, `max_task_retries=-1`). Nothing is written before a batch is
  back on the driver, so a killed driver leaves what a killed local run leaves, and the next run
  repairs it (`repair`).
- Files whose content is already indexed (moves, copies) are not decoded on the workers: they get
  the sorted 64-bit prefixes of the known content hashes (8 bytes a picture, in Ray's object store)
  and send back only the hash; the driver finds the stored vector (and, for the one-in-2^64 prefix
  that is not a real match, decodes and embeds the file itself).

Ray is imported here only, lazily (`pip install 'imgsearch[scale]'`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from imgsearch.errors import ConfigError, ImgsearchError
from imgsearch.progress import Progress
from imgsearch.settings import Settings

if TYPE_CHECKING:  # pipeline imports torch: a run imports it when it starts, not this module
    from .pipeline import IndexRun
    from .scan import FoundFile

# A test hook: the path of a marker file. The first actor call that finds it missing creates it and
# kills its own process mid-batch (as a crashed or preempted worker would), once per marker: the
# CLIP actors' at that path, the captions' and OCR's at that path + ".captions" and + ".text".
FAIL_ONCE_ENV = "IMGSEARCH_RAY_FAIL_ONCE"
INSTALL_HINT = "pip install 'imgsearch[scale]'"
SHARED_HINT = ("every Ray node must read the pictures at the same path as this machine "
               "(a shared mount: NFS, SMB, CephFS, ... mounted at the same place on each node)")


class RayIndexError(ImgsearchError):
    """The cluster cannot be used for this run (unreachable, a path its workers cannot read, a
    worker that cannot load the models); the message says what to do."""

    exit_code = 5


# --- the cluster ---------------------------------------------------------------------------------
def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ConfigError(f"--ray needs Ray (with Ray Data), which is not installed: {INSTALL_HINT} "
                          f"({e})") from None
    return ray


def connect(address: str) -> Any:
    """Join the cluster at `address` (host:port of its head, or ray://...), or with "auto" start a
    one-machine cluster in this process for this run. Returns the ray module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    for name in ("ray", "ray.data"):  # Ray Data's INFO lines ("Starting execution of Dataset ...")
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False, "configure_logging": True}
    if address == "auto":
        ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
        return ray
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise RayIndexError(f"--ray {address!r}: give the head's host:port (as `ray start --head` prints it, "
                            "e.g. 10.0.0.5:6379), a ray://host:port client address, or auto")
    try:  # ray.init retries an address that does not answer for minutes: ask once, quickly
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise RayIndexError(f"no Ray cluster answers at {address} ({e.strerror or e}). Start its head there "
                            "(`ray start --head --port PORT`) and give that address, or use --ray auto for a "
                            "cluster on this machine only.") from None
    local_ip = _loopback_ip(host)  # a head on this machine's loopback: so is this driver's node
    try:
        ray.init(address=address, **({"_node_ip_address": local_ip} if local_ip else {}), **quiet)
    except Exception as e:  # ConnectionError, ValueError (a malformed address), timeouts
        raise RayIndexError(
            f"cannot join the Ray cluster at {address!r} ({type(e).__name__}: {str(e).strip()[:300]}). "
            "Give the address of a running head (`ray start --head` prints it, host:port), "
            "or use --ray auto for a cluster on this machine only.") from None
    return ray


def _loopback_ip(host: str) -> str | None:
    try:
        ip = socket.gethostbyname(host)
    except OSError:
        return None
    return ip if ip.startswith("127.") else None


def _alive_nodes(ray: Any) -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive")]


def _working_nodes(ray: Any) -> list[dict[str, Any]]:
    """The nodes a model actor can run on (a head started with --num-cpus 0 is not one)."""
    return [n for n in _alive_nodes(ray) if n["Resources"].get("CPU", 0) > 0 or n["Resources"].get("GPU", 0) > 0]


def check_readable(ray: Any, paths: Sequence[str]) -> None:
    """Every node that may embed can open `paths` (the roots and a sample file); else
    RayIndexError naming the node and the path."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0, max_retries=1)
    def probe(items: list[str]) -> list[tuple[str, str]]:
        bad = []
        for p in items:
            try:
                if os.path.isdir(p):
                    os.listdir(p)
                else:
                    with open(p, "rb") as f:
                        f.read(1)
            except OSError as e:
                bad.append((p, "does not exist there" if isinstance(e, FileNotFoundError)
                            else (e.strerror or str(e)).lower()))
        return bad

    nodes = _working_nodes(ray)
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(list(paths)) for n in nodes]
    for node, bad in zip(nodes, ray.get(refs, timeout=300)):
        if bad:
            path, why = bad[0]
            raise RayIndexError(f"{path} is not readable on the Ray node {node.get('NodeManagerAddress')} "
                                f"({why}): {SHARED_HINT}.")


def plan_actors(ray: Any, settings: Settings) -> tuple[int, float, float]:
    """(actors, CPUs each, GPUs each): one actor per GPU when the cluster has GPUs and the device
    allows them, else one per `ray_worker_cpus` cores (at most a node's cores), or `ray_workers`."""
    total = ray.cluster_resources()
    gpus = int(total.get("GPU", 0))
    if gpus and settings.device != "cpu":
        return settings.ray_workers or gpus, 1.0, 1.0
    node_cpus = [n["Resources"]["CPU"] for n in _working_nodes(ray) if n["Resources"].get("CPU", 0) > 0]
    if not node_cpus:
        raise RayIndexError("the Ray cluster has no CPU to run on: start its nodes with --num-cpus N (N > 0)")
    each = min(float(settings.ray_worker_cpus), max(node_cpus))
    actors = settings.ray_workers or sum(max(1, int(c // each)) for c in node_cpus)
    return actors, each, 0.0


# --- the workers ---------------------------------------------------------------------------------
class _KnownPrefixes:
    """What `reader.read_one` asks of its `known` mapping (`sha in known`, `known[sha]`) from the
    sorted 64-bit prefixes of the indexed content hashes. A hit is only likely: the driver checks
    the full hash (`known[sha]` is None here)."""

    def __init__(self, prefixes: np.ndarray) -> None:
        self.prefixes = prefixes

    def __contains__(self, sha: object) -> bool:
        if not isinstance(sha, str) or not len(self.prefixes):
            return False
        key = np.uint64(int(sha[:16], 16))
        i = int(np.searchsorted(self.prefixes, key))
        return i < len(self.prefixes) and self.prefixes[i] == key

    def __getitem__(self, sha: str) -> None:
        return None


def sha_prefixes(shas: Sequence[str]) -> np.ndarray:
    return np.array(sorted({int(s[:16], 16) for s in shas}), dtype=np.uint64)


class _ClipWorker:
    """A Ray Data actor: reads, hashes and decodes a batch of files and embeds the pictures. Loads
    the profile's CLIP once (on this node's CPU or its GPU)."""

    def __init__(self, settings: Settings, prefixes: np.ndarray, threads: int, fail_once: str | None) -> None:
        import torch
        from imgsearch.models import Models

        torch.set_num_threads(max(1, threads))
        self.clip = Models(settings).clip
        self.known = _KnownPrefixes(prefixes)
        self.threads = max(1, threads)
        self.fail_once = fail_once
        self.node = node_name()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from .pipeline import ClipInput
        from .reader import Decoded, read_all
        from .scan import FoundFile

        files = [FoundFile(Path(p), int(s), int(m)) for p, s, m in zip(batch["path"], batch["size"], batch["mtime_ns"])]
        outcomes = list(read_all(files, ClipInput(lambda: self.clip), self.known, self.threads))
        decoded = [i for i, o in enumerate(outcomes) if isinstance(o, Decoded)]
        vectors = np.zeros((len(outcomes), self.clip.dim), dtype=np.float32)
        if decoded:
            pixels = torch.stack([outcomes[i].pixels for i in decoded])
            vectors[decoded] = self.clip.encode_pixels(pixels)
        fail_once(self.fail_once, self.node)
        blobs = [pickle.dumps(replace(o, pixels=None) if isinstance(o, Decoded) else o) for o in outcomes]
        return {"outcome": np.array(blobs, dtype=object), "vector": vectors,
                "node": np.array([self.node] * len(outcomes), dtype=object)}


def fail_once(marker: str | None, node: str) -> None:
    """The test hook (`FAIL_ONCE_ENV`): the first call that finds `marker` missing makes it and
    ends this process."""
    if marker and not os.path.exists(marker):
        Path(marker).write_text(f"killed mid-batch on {node}, pid {os.getpid()}\n")
        os._exit(17)  # as a crashed or preempted worker: no cleanup, the batch in hand is lost


def node_name() -> str:
    try:
        import ray

        return str(ray.util.get_node_ip_address())
    except Exception:
        return socket.gethostname()


def embed_on_cluster(ray: Any, settings: Settings, work: Sequence[Any], known_shas: Sequence[str],
                     image_batch: int) -> Any:
    """Ray Data's stream of result batches (numpy: outcome, vector, node) for the files `work`, in
    their order."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver draws its own bar
    ctx.execution_options.preserve_order = True  # same order as a local run: same ids, same report
    actors, cpus, gpus = plan_actors(ray, settings)
    items = [{"path": str(f.path), "size": f.size, "mtime_ns": f.mtime_ns} for f in work]
    ds = ray.data.from_items(items, override_num_blocks=max(1, math.ceil(len(items) / image_batch)))
    return ds.map_batches(
        _ClipWorker,
        fn_constructor_kwargs={"settings": settings, "prefixes": sha_prefixes(known_shas),
                               "threads": max(1, int(cpus)), "fail_once": os.environ.get(FAIL_ONCE_ENV)},
        batch_size=image_batch, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus, num_gpus=gpus,  # Ray Data's actors restart and rerun a lost batch (max_restarts=-1)
    ).iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2)


# --- the driver ----------------------------------------------------------------------------------
class RayVectors:
    """`pipeline.index`'s vectors phase on the Ray cluster at `address` (already joined, or joined
    here): the workers read and embed, this process writes through the run (`IndexRun.store`)."""

    def __init__(self, address: str) -> None:
        self.address = address

    def __call__(self, run: IndexRun, work: list[FoundFile]) -> None:
        if not work:
            return
        from .pipeline import ClipInput
        from .reader import Decoded, Failed, Reused, read_one

        clip, batch_size = ClipInput(lambda: run.models.clip), run.models.settings.batch_size
        batch: list[Decoded] = []
        vectors: list[np.ndarray] = []

        def store() -> None:
            if batch:
                run.store(batch, np.stack(vectors))
                batch.clear()
                vectors.clear()

        def embed_here(f: FoundFile) -> None:
            """The rare file the workers took for a known content that is not: decoded and embedded here."""
            outcome = read_one(f, clip, {})
            if isinstance(outcome, Failed):
                run.skip(outcome)
                return
            vectors.append(run.embed([outcome])[0])
            batch.append(replace(outcome, pixels=None))

        ray = connect(self.address)
        sample = [str(r) for r in run.roots if os.path.isdir(r)] + [str(work[0].path)]
        check_readable(ray, sample)
        try:
            for result in embed_on_cluster(ray, run.models.settings, work, list(run.reusable), batch_size):
                for blob, vector, node in zip(result["outcome"], result["vector"], result["node"]):
                    outcome = pickle.loads(blob)
                    if isinstance(outcome, Reused):
                        source = run.reusable.get(outcome.sha256)
                        if source is not None and run.reuse(replace(outcome, source=source)):
                            continue
                        embed_here(outcome.found)
                    elif isinstance(outcome, Failed):
                        check_here(outcome, node)
                        run.skip(outcome)
                    else:
                        assert isinstance(outcome, Decoded)
                        batch.append(outcome)
                        vectors.append(vector)
                    if len(batch) >= batch_size:
                        store()
                if run.cancelled():
                    break
        except ImgsearchError:
            raise
        except Exception as e:
            raise explain(ray, e) from None
        store()


def check_here(outcome: Any, node: str) -> None:
    """A worker that could not open a file (gone or unreadable there) this machine can open does
    not see the same files. Other reasons a file was skipped say nothing of the node."""
    from .reader import UNREADABLE, VANISHED

    if not (outcome.reason == VANISHED or outcome.reason.startswith(UNREADABLE)):
        return
    path = outcome.found.path
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError:
        return  # gone or unreadable here too: skipped as in a local run
    raise RayIndexError(f"{path} is not readable on the Ray node {node} ({outcome.reason}) but is here: "
                        f"{SHARED_HINT}.")


def explain(ray: Any, e: Exception) -> ImgsearchError:
    """A failure inside the cluster as an error that says what happened (an imgsearch error raised
    on a worker, such as a model it cannot load, keeps its own message)."""
    cause = e
    while cause is not None:
        if isinstance(cause, ImgsearchError):
            return RayIndexError(f"on a Ray worker: {cause}")
        cause = getattr(cause, "cause", None) or cause.__cause__
    return RayIndexError(f"the Ray cluster failed this run ({type(e).__name__}: {str(e).strip()[:500]}). "
                         "What was written so far stays; run the same command again to go on.")


def run_ray_index(
    settings: Settings,
    paths: Sequence[Path],
    address: str,
    *,
    captions: bool = True,
    texts: bool = True,
    precompute_rerank: bool = False,
    progress: Progress | None = None,
    client: object = None,
) -> Any:
    """`runner.run_index` with the model work on a Ray cluster: joins the cluster (or starts one
    here with "auto") before anything is opened or loaded, and leaves it after."""
    from .distributed_texts import RayTexts
    from .pipeline import ModelWork
    from .runner import run_index

    # Ray prints what its workers and raylets report ("(raylet) A worker died ...") to stdout,
    # which is the report's (--json): while it runs, stdout is stderr.
    with contextlib.redirect_stdout(sys.stderr):
        ray = connect(address)  # a clear message before anything is opened or loaded
        later = RayTexts(ray, settings)
        try:
            return run_index(settings, paths, captions=captions, texts=texts, precompute_rerank=precompute_rerank,
                             progress=progress, client=client, holder="imgsearch index --ray",
                             model_work=ModelWork(RayVectors(address), later.caption, later.read))
        finally:
            later.close()
            ray.shutdown()
