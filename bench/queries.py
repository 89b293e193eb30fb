"""Query latency: the parts of a query in one warm process, and a whole cold CLI call.

In the warm process the models are loaded once, as a long-running searcher would hold them, and
each figure is a p50/p95 over many calls. "Cold rerank cache" empties the ITM vision-state cache
before the call (files stay in the OS page cache: this is the cache the product controls);
"warm" repeats the same query right after, so every one of its top K states is cached.

Today's query rows run in `vector` mode without a cutoff (`min_match` 0), as every query did
before hybrid retrieval and the cutoff. Beside them: the same query without rerank in `hybrid`
mode (the full-text index's overhead), and the product's default query with its default cutoff
(hybrid, `min_match` 0.5) on a cold cache, whose rerank goes deeper while batches still find
matches. How deep it went, in pictures ITM scored, is counted (`ItmProbe`): with random weights
ITM's probabilities mean nothing, so that depth, not the figure's speed, says what was measured.
So the same query is also made to take its deepest path: the probe, after ITM has scored each
batch, says exactly one picture of it matches, so the rerank goes on batch after batch (every
picture is still decoded, passed through the vision tower and scored: only the probabilities
are replaced).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .child import Runner, child_env, load_timed
from .plan import QueryPlan
from .stats import percentiles_ms, ratios, summarize

TEXTS = (
    "a red bicycle leaning on a wall", "two dogs playing on the beach", "a birthday cake with candles",
    "snowy mountains at sunset", "a cat sleeping on a sofa", "people walking in a busy street",
    "a bowl of green salad", "an old wooden boat on a lake", "children in a school classroom",
    "a blue car parked outside a house", "fireworks over a city", "a plate of pasta",
    "a man riding a horse", "flowers in a garden", "a train at a station", "a laptop on a desk",
    "a lighthouse by the sea", "a group photo at a wedding", "autumn leaves in a park",
    "a close-up of a butterfly", "a kitchen with white cabinets", "a tent in a forest",
)

OPS = ("text_encode", "vector_search", "query_no_rerank", "query_no_rerank_hybrid", "query_rerank_warm",
       "query_rerank_cold", "query_cutoff_cold", "query_cutoff_deepest_cold")
COLD = ("query_rerank_cold", "query_cutoff_cold", "query_cutoff_deepest_cold")  # their ITM depth is counted


def _times(calls: int, texts: list[str], fn: Callable[[str], object]) -> list[float]:
    out = []
    for text in itertools.islice(itertools.cycle(texts), calls):
        t = time.perf_counter()
        fn(text)
        out.append(time.perf_counter() - t)
    return out


def _paired_times(calls: int, texts: list[str], first: Callable[[str], object],
                  second: Callable[[str], object]) -> tuple[list[float], list[float]]:
    """Both functions on the same texts, interleaved (and which goes first alternating), so drift
    on a busy machine hits both alike: their ratio is what is reported."""
    a: list[float] = []
    b: list[float] = []
    for i, text in enumerate(itertools.islice(itertools.cycle(texts), calls)):
        for fn, out in ((first, a), (second, b)) if i % 2 == 0 else ((second, b), (first, a)):
            out += _times(1, [text], fn)
    return a, b


class ItmProbe:
    """Counts what the ITM model is asked, by wrapping the loaded scorer's methods on the instance
    (the product's code is not touched): pictures scored (`score`, one call per phrase: the bench's
    queries have no `--not` phrase, so one per query), vision passes computed (cache misses), and
    the match probabilities it gave. With `one_match` set, each `score` call (one rerank batch)
    answers 1.0 for its first picture and 0.0 for the others, after the model has run."""

    def __init__(self, itm: Any) -> None:
        self.scored = self.computed = 0
        self.probabilities: list[float] = []
        self.one_match = False
        score, states = itm.score, itm.vision_states

        def counted_score(text: str, stacked: Any) -> Any:
            match, itc = score(text, stacked)
            self.scored += len(match)
            self.probabilities += match
            if self.one_match:
                match = [1.0 if i == 0 else 0.0 for i in range(len(match))]
            return match, itc

        def counted_states(images: Any) -> Any:
            self.computed += len(images)
            return states(images)

        itm.score, itm.vision_states = counted_score, counted_states

    def take(self) -> dict[str, Any]:
        """What the calls since the last `take` asked, and reset."""
        out = {"scored": self.scored, "computed": self.computed, "probabilities": self.probabilities}
        self.scored = self.computed = 0
        self.probabilities = []
        return out


def warm_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: load once, then time each part of a query many times."""
    from imgsearch.models import Models
    from imgsearch.searcher import search
    from imgsearch.searcher.limits import MAX_RERANK_K
    from imgsearch.searcher.request import HYBRID, VECTOR
    from imgsearch.searcher.rerank import MATCH_DEPTH_BATCHES
    from imgsearch.settings import Settings
    from imgsearch.stores import open_stores

    plan = QueryPlan(**args["plan"])
    settings = Settings(home=Path(args["home"]), **args["settings"])
    cutoff = settings.min_match if plan.min_match is None else plan.min_match
    models = Models(settings)
    loads = load_timed(models, "clip", "itm")
    clip = models.clip
    probe = ItmProbe(models.itm)
    texts = list(TEXTS)
    t = time.perf_counter()
    stores = open_stores(settings, models.facts(), clip.dim)
    open_s = time.perf_counter() - t
    with stores:
        indexed = stores.vectors.count()
        k = min(plan.rerank_k, indexed)
        fetch = max(plan.limit, k)
        cache = settings.rerank_cache_dir

        def query(mode: str, rerank_k: int, min_match: float = 0.0) -> Callable[[str], object]:
            return lambda s: search(s, stores, models, limit=plan.limit, rerank_k=rerank_k, mode=mode,
                                    min_match=min_match)

        reranked, with_cutoff = query(VECTOR, k), query(HYBRID, k, cutoff)
        # First calls pay one-off costs (allocations, kernel selection, SQLite statements): not what a
        # user waits for.
        reranked("warm up")
        query(HYBRID, 0)("warm up")
        probe.take()
        vectors = {s: clip.encode_texts([s])[0] for s in texts}
        lat: dict[str, list[float]] = {
            "text_encode": _times(plan.text_encodes, texts, lambda s: clip.encode_texts([s])),
            "vector_search": _times(plan.searches, texts, lambda s: stores.vectors.search(vectors[s], fetch)),
            **dict(zip(("query_no_rerank", "query_no_rerank_hybrid"),
                       _paired_times(plan.plain_queries, texts, query(VECTOR, 0), query(HYBRID, 0)))),
            "query_rerank_cold": [], "query_cutoff_cold": [], "query_cutoff_deepest_cold": [],
            "query_rerank_warm": [],
        }
        depth: dict[str, list[dict[str, Any]]] = {op: [] for op in COLD}
        for i, text in enumerate(texts[:plan.cold_queries]):
            order = [("query_rerank_cold", reranked), ("query_cutoff_cold", with_cutoff)]
            for op, fn in order if i % 2 == 0 else order[::-1]:  # neither always first
                shutil.rmtree(cache, ignore_errors=True)
                probe.take()
                lat[op] += _times(1, [text], fn)
                depth[op].append({"text": text, **probe.take()})
                if op == "query_rerank_cold":
                    lat["query_rerank_warm"] += _times(plan.warm_repeats, [text], reranked)
        for text in texts[:plan.deepest_queries]:
            shutil.rmtree(cache, ignore_errors=True)
            probe.take()
            probe.one_match = True
            try:
                lat["query_cutoff_deepest_cold"] += _times(1, [text], with_cutoff)
            finally:
                probe.one_match = False
            depth["query_cutoff_deepest_cold"].append({"text": text, **probe.take()})
    deepest = min(MAX_RERANK_K, k * MATCH_DEPTH_BATCHES)  # the deepest a cutoff query can go
    return {"indexed": indexed, "rerank_k": k, "min_match": cutoff, "product_max_depth": deepest,
            "max_depth": min(indexed, deepest),  # ... in this index
            **loads, "open_stores_s": open_s, "depth": depth,
            "latency": {op: percentiles_ms(v) for op, v in lat.items() if v}}


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
    for op in (op for op in OPS if op in results[-1]["latency"]):
        out["ops"][op] = {
            "p50_ms": summarize([r["latency"][op]["p50_ms"] for r in results]),
            "p95_ms": summarize([r["latency"][op]["p95_ms"] for r in results]),
            "calls_per_run": results[-1]["latency"][op]["count"],
        }
    out["cutoff"] = cutoff_figures(results)
    for key in ("clip_load_s", "itm_load_s", "open_stores_s", "peak_rss_mb"):
        out[key] = summarize([r[key] for r in results])
    out["process_runs"] = results
    return out


def cutoff_figures(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The cutoff's cost against today's rerank of K (both cold cache), the full-text index's
    overhead (hybrid against vector, no rerank), and how deep the cutoff's rerank went. Ratios
    are of p50s of the same run; depths are per query, pooled over runs."""
    def p50(op: str) -> list[float]:
        return [r["latency"].get(op, {}).get("p50_ms", 0.0) for r in results]

    def ratio(op: str, to: str) -> dict[str, Any]:
        """Run by run: p50 of `op` / p50 of `to` (runs that measured both)."""
        both = [r for r in results if op in r["latency"] and to in r["latency"]]
        return summarize(ratios([r["latency"][op]["p50_ms"] for r in both],
                                [r["latency"][to]["p50_ms"] for r in both]))

    def pooled(op: str, key: str = "scored") -> list[float]:
        return [q[key] for r in results for q in r["depth"][op]]

    cut = pooled("query_cutoff_cold")
    probabilities = [p for r in results for q in r["depth"]["query_cutoff_cold"] for p in q["probabilities"]]
    last = results[-1]
    threshold = last["min_match"]
    # What a picture scored costs on a cold cache (its decode, vision pass and cross-attention),
    # from today's rerank of K against the same query without rerank; and so what a cutoff query
    # going N pictures deep costs (hybrid, no rerank, plus N pictures): a projection, checked
    # against the measured deepest path of this index, then carried to the product's deepest.
    per_picture, forced_projected, deepest_projected = [], [], []
    for r, cold, plain, hybrid in zip(results, p50("query_rerank_cold"), p50("query_no_rerank"),
                                      p50("query_no_rerank_hybrid")):
        scored = [q["scored"] for q in r["depth"]["query_rerank_cold"]]
        forced = [q["scored"] for q in r["depth"]["query_cutoff_deepest_cold"]]
        if not (scored and sum(scored) and cold):
            continue
        per_picture.append((cold - plain) / (sum(scored) / len(scored)))
        deepest_projected.append((hybrid + r["product_max_depth"] * per_picture[-1]) / cold)
        if forced:
            forced_projected.append((hybrid + sum(forced) / len(forced) * per_picture[-1]) / cold)
    return {
        "min_match": threshold, "mode": "hybrid", "max_depth": last["max_depth"],
        "product_max_depth": last["product_max_depth"],
        "cutoff_vs_rerank_cold": ratio("query_cutoff_cold", "query_rerank_cold"),
        "hybrid_vs_vector_no_rerank": ratio("query_no_rerank_hybrid", "query_no_rerank"),
        "depth": summarize(cut),
        "depth_counts": {str(d): n for d, n in sorted(Counter(map(int, cut)).items())},
        "rerank_depth": summarize(pooled("query_rerank_cold")),
        "computed": summarize(pooled("query_cutoff_cold", "computed")),
        "itm_at_or_above_cutoff": (sum(p >= threshold for p in probabilities) / len(probabilities)
                                   if probabilities else None),
        "itm_probability": summarize(probabilities) | {"runs": []},  # each value is in process_runs
        "forced_depth": summarize(pooled("query_cutoff_deepest_cold")),
        "forced_vs_rerank_cold": ratio("query_cutoff_deepest_cold", "query_rerank_cold"),
        "forced_vs_rerank_cold_projected": summarize(forced_projected),
        "ms_per_picture_cold": summarize(per_picture),
        "deepest_vs_rerank_cold_projected": summarize(deepest_projected),
    }


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
