"""Query latency: the parts of a query in one warm process, and a whole cold CLI call.

In the warm process the models are loaded once, as a long-running searcher would hold them, and
each figure is a p50/p95 over many calls. "Cold rerank cache" empties the ITM vision-state cache
before the call (files stay in the OS page cache: this is the cache the product controls);
"warm" repeats the same query right after, so every one of its top K states is cached.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .child import Runner, child_env, load_timed
from .plan import QueryPlan
from .stats import percentiles_ms, summarize

TEXTS = (
    "a red bicycle leaning on a wall", "two dogs playing on the beach", "a birthday cake with candles",
    "snowy mountains at sunset", "a cat sleeping on a sofa", "people walking in a busy street",
    "a bowl of green salad", "an old wooden boat on a lake", "children in a school classroom",
    "a blue car parked outside a house", "fireworks over a city", "a plate of pasta",
    "a man riding a horse", "flowers in a garden", "a train at a station", "a laptop on a desk",
    "a lighthouse by the sea", "a group photo at a wedding", "autumn leaves in a park",
    "a close-up of a butterfly", "a kitchen with white cabinets", "a tent in a forest",
)

OPS = ("text_encode", "vector_search", "query_no_rerank", "query_rerank_warm", "query_rerank_cold")


def _times(calls: int, texts: list[str], fn: Callable[[str], object]) -> list[float]:
    out = []
    for text in itertools.islice(itertools.cycle(texts), calls):
        t = time.perf_counter()
        fn(text)
        out.append(time.perf_counter() - t)
    return out


def warm_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: load once, then time each part of a query many times."""
    from imgsearch.models import Models
    from imgsearch.searcher import search
    from imgsearch.settings import Settings
    from imgsearch.stores import open_stores

    plan = QueryPlan(**args["plan"])
    settings = Settings(home=Path(args["home"]), **args["settings"])
    models = Models(settings)
    loads = load_timed(models, "clip", "itm")
    clip = models.clip
    texts = list(TEXTS)
    t = time.perf_counter()
    stores = open_stores(settings, models.facts(), clip.dim)
    open_s = time.perf_counter() - t
    with stores:
        indexed = stores.vectors.count()
        k = min(plan.rerank_k, indexed)
        fetch = max(plan.limit, k)
        cache = settings.rerank_cache_dir
        # First calls pay one-off costs (allocations, kernel selection): not what a user waits for.
        search("warm up", stores, models, limit=plan.limit, rerank_k=k)
        vectors = {s: clip.encode_texts([s])[0] for s in texts}
        def reranked(s: str) -> object:
            return search(s, stores, models, limit=plan.limit, rerank_k=k)

        lat: dict[str, list[float]] = {
            "text_encode": _times(plan.text_encodes, texts, lambda s: clip.encode_texts([s])),
            "vector_search": _times(plan.searches, texts, lambda s: stores.vectors.search(vectors[s], fetch)),
            "query_no_rerank": _times(plan.plain_queries, texts,
                                      lambda s: search(s, stores, models, limit=plan.limit, rerank_k=0)),
            "query_rerank_cold": [], "query_rerank_warm": [],
        }
        for text in texts[:plan.cold_queries]:
            shutil.rmtree(cache, ignore_errors=True)
            lat["query_rerank_cold"] += _times(1, [text], reranked)
            lat["query_rerank_warm"] += _times(plan.warm_repeats, [text], reranked)
    return {"indexed": indexed, "rerank_k": k, **loads, "open_stores_s": open_s, "latency": {op: percentiles_ms(v) for op, v in lat.items()}}


def cold_cli(settings: dict[str, str], home: Path, text: str) -> dict[str, float]:
    """One `imgsearch query TEXT --no-rerank` in a new process: wall time and its peak RSS."""
    exe = Path(sys.executable).with_name("imgsearch")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from imgsearch.cli.app import main; main()"]
    variables = {f"IMGSEARCH_{k.upper()}": v for k, v in settings.items()}
    env = child_env({"IMGSEARCH_HOME": str(home), **variables})
    if "OPENBLAS_NUM_THREADS" not in os.environ:  # a user's shell would not have it
        del env["OPENBLAS_NUM_THREADS"]
    with tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen([*cmd, "query", text, "--no-rerank", "--json"], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # wait4: this child's own rusage
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"imgsearch query exited with {proc.returncode}: {err.read()[-2000:]}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024.0}


# ---- parent side ---------------------------------------------------------------------------------

def measure_queries(
    profile: str, settings: dict[str, str], home: Path, plan: QueryPlan, runs: int, runner: Runner,
) -> dict[str, Any]:
    """Warm-process latencies, one process per run (fresh unless the runner shares one)."""
    results = [runner.run("queries", {"settings": settings, "home": str(home), "plan": asdict(plan)})
               for _ in range(runs)]
    out: dict[str, Any] = {"profile": profile, "runs": runs, "indexed": results[-1]["indexed"],
                           "rerank_k": results[-1]["rerank_k"], "ops": {}}
    for op in OPS:
        out["ops"][op] = {
            "p50_ms": summarize([r["latency"][op]["p50_ms"] for r in results]),
            "p95_ms": summarize([r["latency"][op]["p95_ms"] for r in results]),
            "calls_per_run": results[-1]["latency"][op]["count"],
        }
    for key in ("clip_load_s", "itm_load_s", "open_stores_s", "peak_rss_mb"):
        out[key] = summarize([r[key] for r in results])
    out["process_runs"] = results
    return out


def measure_cli(
    profile: str, settings: dict[str, str], home: Path, runs: int, warmup: bool, via_service: bool = False,
) -> dict[str, Any]:
    """Cold CLI calls (a new interpreter each); the optional first call only warms the OS caches
    and byte-code, which a user's second query would also find warm. With `via_service`, an
    `imgsearch watch` runs meanwhile and the CLI finds it and asks it (no model load)."""
    service = _start_service(settings, home) if via_service else None
    try:
        if warmup:
            cold_cli(settings, home, TEXTS[0])
        calls = [cold_cli(settings, home, TEXTS[i % len(TEXTS)]) for i in range(runs)]
    finally:
        if service is not None:
            service.terminate()
            service.wait(timeout=120)
    return {"profile": profile, "runs": runs, "warmup": warmup, "via": "service" if via_service else "direct",
            "wall_s": summarize([c["wall_s"] for c in calls]),
            "peak_rss_mb": summarize([c["peak_rss_mb"] for c in calls])}


def _start_service(settings: dict[str, str], home: Path) -> subprocess.Popen[bytes]:
    """`imgsearch watch` on a free loopback port over the already indexed home; returns once it answers."""
    variables = {f"IMGSEARCH_{k.upper()}": v for k, v in settings.items()}
    env = child_env({"IMGSEARCH_HOME": str(home), **variables})
    proc = subprocess.Popen([sys.executable, "-m", "imgsearch.cli.app", "watch", "--port", "0", "--no-captions"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from imgsearch.service.client import find_service
    from imgsearch.settings import Settings

    target = Settings(home=home, **{k: v for k, v in settings.items()})
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"imgsearch watch exited with {proc.returncode}")
        if find_service(target) is not None:
            return proc
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("imgsearch watch did not answer within 300 s")
