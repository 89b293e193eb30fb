"""bench.md: the issue's targets with reached / missed / not measured, then every measured figure
as "median (min–max)" over runs, the machine, and the peer figures for reference."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imgsearch.settings import Settings

from .peers import side_by_side_section
from .phases_report import ocr_section, tags_section
from .plan import BASE
from .stats import Summary, fmt
from .vectors import FILTERS

PEERS = [
    {"tool": "rclip 3.3.0", "figure": "indexing, 640×480 photos", "value": "22 img/s"},
    {"tool": "rclip 3.3.0", "figure": "indexing, 12 MP photos", "value": "8.7 img/s"},
    {"tool": "rclip 3.3.0", "figure": "warm query", "value": "30–34 ms"},
    {"tool": "rclip 3.3.0", "figure": "cold CLI query", "value": "0.75 s"},
]
PEERS_NOTE = "quoted from the issue, which measured them on its machine; not re-measured by this harness"


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    higher_is_better: bool
    threshold: float
    unit: str
    find: Callable[[dict[str, Any]], Summary | None]


DEFAULTS = {"kind": "uniform"}  # rows written before a field existed


def _row(section: str, **match: Any) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    def find(results: dict[str, Any]) -> dict[str, Any] | None:
        for row in results.get(section, []):
            if all(row.get(k, DEFAULTS.get(k)) == v for k, v in match.items()):
                return row
        return None
    return find


def _get(section: str, path: tuple[str, ...], **match: Any) -> Callable[[dict[str, Any]], Summary | None]:
    find_row = _row(section, **match)

    def find(results: dict[str, Any]) -> Summary | None:
        node: Any = find_row(results)
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return node
    return find


TARGETS = [
    Target("CLIP phase, 1 MP photos", "≥ 70 img/s", True, 70, "img/s",
           _get("indexing", ("vectors_img_s",), profile=BASE, photo_set="1mp")),
    Target("CLIP phase, 12 MP photos", "≥ 30 img/s", True, 30, "img/s",
           _get("indexing", ("vectors_img_s",), profile=BASE, photo_set="12mp")),
    Target("CLIP phase vs naive baseline, 1 MP", "≥ 3×", True, 3, "×",
           _get("indexing", ("vectors_vs_baseline",), profile=BASE, photo_set="1mp")),
    Target("CLIP phase vs naive baseline, 12 MP", "≥ 3×", True, 3, "×",
           _get("indexing", ("vectors_vs_baseline",), profile=BASE, photo_set="12mp")),
    Target("Captions, base BLIP, 1 MP", "≥ 2 img/s", True, 2, "img/s",
           _get("indexing", ("captions_img_s",), profile=BASE, photo_set="1mp")),
    Target("Captions, base BLIP, 12 MP", "≥ 2 img/s", True, 2, "img/s",
           _get("indexing", ("captions_img_s",), profile=BASE, photo_set="12mp")),
    Target("Warm query, no rerank (p50)", "≤ 30 ms", False, 30, "ms",
           _get("queries", ("ops", "query_no_rerank", "p50_ms"), profile=BASE)),
    Target("Warm query + rerank of 20, warm cache (p50)", "≤ 500 ms", False, 500, "ms",
           _get("queries", ("ops", "query_rerank_warm", "p50_ms"), profile=BASE)),
    Target("Warm query + rerank of 20, cold cache (p50)", "≤ 3500 ms", False, 3500, "ms",
           _get("queries", ("ops", "query_rerank_cold", "p50_ms"), profile=BASE)),
    Target("Query with the default cutoff (hybrid, min_match 0.5) / rerank of 20 (vector, no cutoff), both "
           "cold cache (p50s; at the depth random weights gave: see Queries)", "≤ 2×", False, 2, "×",
           _get("queries", ("cutoff", "cutoff_vs_rerank_cold"), profile=BASE)),
    Target("Cold CLI query, --no-rerank, no service", "≤ 1.5 s", False, 1.5, "s",
           _get("cli", ("wall_s",), profile=BASE, via="direct")),
    Target("Cold CLI query, --no-rerank, through a running service (not a target of the issue)", "≤ 1.5 s",
           False, 1.5, "s", _get("cli", ("wall_s",), profile=BASE, via="service")),
    Target("Search in 1M points, Edge with its HNSW index, as the product builds it (p50)", "≤ 20 ms", False,
           20, "ms", _get("vectors", ("p50_ms",), backend="edge+optimize", n=1_000_000, kind="uniform")),
    Target("Filtered search in 1M points, Edge with its HNSW index: slowest filter's p50 (folder ~1 %, dates "
           "~50 %, camera ~10 %) / unfiltered p50", "≤ 2×", False, 2, "×",
           _get("vectors", ("filtered", "worst_filtered_vs_unfiltered"), backend="edge+optimize",
                n=1_000_000)),
    Target("Text phase (OCR): pictures without text / with text, pictures/s (any profile)", "≥ 5×", True, 5,
           "×", _get("ocr", ("vs_text", "no-text", "phase"))),
]


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Judge each target on its median; a target whose configuration did not run is "not measured",
    and so is every target of a smoke run (whatever sizes it was given)."""
    out = []
    full = results.get("meta", {}).get("mode", "full") == "full"
    for t in TARGETS:
        summary = t.find(results) if full else None
        median = summary.get("median") if isinstance(summary, dict) else None
        if median is None:
            status = "not measured"
        elif (median >= t.threshold) if t.higher_is_better else (median <= t.threshold):
            status = "reached"
        else:
            status = "missed"
        out.append({"target": t.name, "goal": t.goal, "unit": t.unit, "status": status, "value": summary})
    return out


# ---- markdown ------------------------------------------------------------------------------------

MARK = {"reached": "✅ reached", "missed": "❌ missed", "not measured": "➖ not measured"}
PROFILE_NAMES = {"tiny": "tiny (bundled)", BASE: "default (base sizes, random weights)"}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def _machine(results: dict[str, Any]) -> list[str]:
    m, torch = results["machine"], results.get("torch_facts") or {}
    v = m["versions"]
    bf16 = torch.get("bf16_fast")
    load = ", ".join(f"{x:.2f}" for x in m["load_average_at_start"])
    end = ", ".join(f"{x:.2f}" for x in m.get("load_average_at_end", []))
    return [
        "## Machine", "",
        f"- CPU: {m['cpu']}; {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable, "
        f"{m['physical_cores'] or '?'} physical cores); {m['memory_gb'] or 0:.0f} GB RAM",
        f"- bf16 fast (bf16 instructions and a bf16 product measured faster: `cpu_has_fast_bf16()`): "
        f"{'unknown' if bf16 is None else ('yes' if bf16 else 'no')}; CPU bf16 flags: "
        f"{', '.join(m['cpu_bf16_flags']) or 'none'}; product runtime: {torch.get('runtime', '?')}; "
        f"torch threads: {torch.get('threads', '?')}",
        f"- torch {v.get('torch')}, torchvision {v.get('torchvision')}, "
        f"open_clip {v.get('open_clip_torch')}, transformers {v.get('transformers')}, "
        f"qdrant-edge-py {v.get('qdrant-edge-py')}, qdrant-client {v.get('qdrant-client')}, "
        f"Pillow {v.get('pillow')}, numpy {v.get('numpy')}, Python {m['python']}",
        f"- load average (1, 5, 15 min) at start: {load}; at the end: {end or '?'} (near the CPU count or "
        "above: other work competed with these measurements)",
        "",
    ]


def _targets(results: dict[str, Any]) -> list[str]:
    rows = []
    for t in results["targets"]:
        small = bool(t["value"]) and t["value"]["median"] < 10  # 1.96 img/s must not read "2.0" beside "≥ 2"
        digits = 2 if t["unit"] in ("s", "×") or small else 1
        shown = fmt(t["value"], digits) + (f" {t['unit']}" if t["value"] else "")
        rows.append([t["target"], t["goal"], shown, MARK[t["status"]]])
    lines = ["## Targets of the issue", "",
             f"Judged on the `{PROFILE_NAMES[BASE]}` profile; value is median (min–max) over runs.", ""]
    lines += _table(["target", "goal", "measured", "status"], rows)
    lines += [f"Peers, for reference ({PEERS_NOTE}):", ""]
    peers = [[p["tool"], p["figure"], p["value"]] for p in results["peers"]]
    lines += _table(["tool", "figure", "value"], peers)
    return lines


def _processes(results: dict[str, Any]) -> str:
    if results["plan"]["isolated"]:
        return "each run in a fresh process"
    return "all runs in one shared worker process (smoke mode)"


def _indexing(results: dict[str, Any]) -> list[str]:
    photos = {p["name"]: p for p in results["photos"]}
    rows = []
    for r in results["indexing"]:
        p = photos.get(r["photo_set"], {})
        rows.append([
            PROFILE_NAMES.get(r["profile"], r["profile"]),
            f"{r['photo_set']} ({p.get('width')}×{p.get('height')}, {p.get('mean_mb', 0):.2f} MB)",
            str(r["images"]), fmt(r["e2e_img_s"]), fmt(r["vectors_img_s"]), fmt(r["captions_img_s"]),
            fmt(r["baseline_img_s"]), fmt(r["vectors_vs_baseline"], 2), fmt(r["e2e_vs_baseline"], 2),
            fmt(r.get("text_img_s")), fmt(r["outside_phases_s"], 2),
            " / ".join(fmt(r.get(k), 2) for k in ("clip_load_s", "captioner_load_s", "tagger_load_s")),
            fmt(r["peak_rss_vectors_mb"], 0) + " / " + fmt(r["peak_rss_mb"], 0),
            fmt(r["baseline_peak_rss_mb"], 0), f"{r['setup']['caption_words_mean']:.1f}",
        ])
    lines = ["## Indexing", "",
             "img/s through `imgsearch.indexer.index` (models loaded beforehand, load times in their own "
             f"column), into a fresh home per run, {_processes(results)}. End to end = the whole `index()` "
             "call: CLIP phase, tags, captions phase, text phase (OCR; its reader's engine is made on its "
             "first read, inside the phase), and outside them scan, crash repair and naming the captioner "
             "(\"s outside phases\"). Baseline = the harness's naive loop: full PIL decode, "
             "open_clip's preprocessing, fp32 batches of 32, same model. Ratios are computed run by run "
             "(product run i / baseline run i, run side by side).", ""]
    lines += _table(["profile", "photos", "n", "end to end img/s", "CLIP phase img/s", "captions img/s",
                     "baseline img/s", "CLIP phase / baseline", "end to end / baseline",
                     "text phase img/s (tags: with the vectors)", "s outside phases", "load s (CLIP / BLIP / tag vocabulary)",
                     "peak RSS MB (after CLIP phase / whole run)",
                     "baseline peak RSS MB", "caption words"], rows)
    if results["indexing"]:
        setup = results["indexing"][0]["setup"]
        lines += [f"Product settings: batch {setup['batch_size']}, caption batch "
                  f"{setup['caption_batch_size']}, {setup['decode_workers']} decode workers, runtime "
                  f"{setup['runtime']}; the captioner's vision tower: {setup.get('captioner_vision') or 'torch'} "
                  "(chosen, and its ONNX export built, before the captions phase: "
                  + ", ".join(f"{r['profile']} {fmt(r.get('captioner_vision_s'), 1)} s" for r in results["indexing"])
                  + "). Caption words: mean caption length in the last run; with random "
                  "weights the base captioner rarely stops early and writes the maximum number of tokens, "
                  "so its captions img/s is pessimistic.", ""]
    return lines


OP_NAMES = {
    "text_encode": "CLIP text encoding",
    "vector_search": "vector search (top 20)",
    "query_no_rerank": "whole query, no rerank (vector)",
    "query_no_rerank_hybrid": "whole query, no rerank, hybrid (CLIP + full text)",
    "query_rerank_warm": "whole query + ITM rerank (vector, no cutoff), warm cache",
    "query_rerank_cold": "whole query + ITM rerank (vector, no cutoff), cold cache",
    "query_cutoff_cold": "whole query, default cutoff (hybrid, min_match), cold cache",
    "query_cutoff_deepest_cold": "whole query, default cutoff, deepest path (simulated matches), cold cache",
}


def _queries(results: dict[str, Any]) -> list[str]:
    lines = ["## Queries", "",
             "Warm process (models and stores opened once), "
             f"{_processes(results)}; per run, p50/p95 over many calls; shown: median (min–max) of those "
             "over runs. Cold rerank cache = the ITM vision-state cache emptied before the call (the photos "
             "stay in the OS page cache).", ""]
    for q in results["queries"]:
        rows = [[OP_NAMES[op], fmt(v["p50_ms"], 2), fmt(v["p95_ms"], 2), str(v["calls_per_run"])]
                for op, v in q["ops"].items()]
        lines += [f"**{PROFILE_NAMES.get(q['profile'], q['profile'])}** — {q['indexed']} photos indexed, "
                  f"rerank of {q['rerank_k']}, runs: {q['runs']}; loads: CLIP {fmt(q['clip_load_s'], 2)} s, "
                  f"ITM {fmt(q['itm_load_s'], 2)} s; peak RSS {fmt(q['peak_rss_mb'], 0)} MB", ""]
        lines += _table(["operation", "p50 ms", "p95 ms", "calls per run"], rows)
        lines += _cutoff(q)
    rows = [[PROFILE_NAMES.get(c["profile"], c["profile"]), c.get("via", "direct"), fmt(c["wall_s"], 2),
             fmt(c["peak_rss_mb"], 0), str(c["runs"])] for c in results["cli"]]
    lines += ["Cold CLI: `imgsearch query TEXT --no-rerank --json`, a new process each time (wall time, "
              "including interpreter start and model load; local weights files are also hashed to name the "
              "model); \"service\": an `imgsearch watch` holds the models and the CLI asks it over HTTP.", ""]
    lines += _table(["profile", "via", "wall s", "peak RSS MB", "runs"], rows)
    return lines


def _cutoff(q: dict[str, Any]) -> list[str]:
    """The cutoff's cost next to how deep its rerank went: with random weights ITM's probabilities
    mean nothing, so the depth is what the ratio measured."""
    c = q.get("cutoff")
    if not c:  # a report of a run before the cutoff existed
        return []
    k = q["rerank_k"]
    share = c["itm_at_or_above_cutoff"]
    counts = ", ".join(f"{d} pictures × {n}" for d, n in c["depth_counts"].items()) or "–"
    rows = [
        [f"default cutoff (min_match {c['min_match']:g}, hybrid) / rerank of {k} (vector, no cutoff), "
         "cold cache, p50s", fmt(c["cutoff_vs_rerank_cold"], 2) + " ×"],
        ["pictures ITM scored per cutoff query", f"{fmt(c['depth'], 0)} (queries: {counts}); the deepest "
         f"it can go: {c['product_max_depth']}, in this index of {q['indexed']}: {c['max_depth']}"],
        [f"pictures ITM scored per rerank of {k}", fmt(c["rerank_depth"], 0)],
        ["of them computed (vision passes: the cache was cold)", fmt(c["computed"], 0)],
        [f"scored pictures ITM put at or above {c['min_match']:g}",
         "–" if share is None else f"{100 * share:.0f} % (probability {fmt(c['itm_probability'], 2)})"],
        [f"the same query made to take its deepest path here (one match per batch, simulated): "
         f"{fmt(c['forced_depth'], 0)} pictures / rerank of {k}, cold cache, p50s",
         f"{fmt(c['forced_vs_rerank_cold'], 2)} × (projected from the cost per picture: "
         f"{fmt(c['forced_vs_rerank_cold_projected'], 2)} ×)"],
        ["hybrid / vector, no rerank, p50s (the full-text index's overhead)",
         fmt(c["hybrid_vs_vector_no_rerank"], 2) + " ×"],
        [f"ms per picture scored, cold cache (from the rerank of {k})", fmt(c["ms_per_picture_cold"], 0)],
        [f"projected: the product's deepest cutoff query ({c['product_max_depth']} pictures) / rerank of "
         f"{k}, cold cache", fmt(c["deepest_vs_rerank_cold_projected"], 1) + " ×"],
    ]
    lines = [f"Cutoff: the rerank goes on in batches of {k} while the last batch held a match and fewer "
             "than a page of matches were found. With random weights ITM's probabilities are meaningless, so "
             "how deep it went, not the ratio alone, says what was measured; with real weights the depth "
             "follows how many pictures match the words, so the query is also made to take its deepest path: "
             "after ITM has scored each batch (every picture decoded, encoded and scored), the harness says "
             "exactly one of it matches. Ratios: p50s of the same run; depths: per query, pooled over runs; "
             "a projection adds N pictures at the cost per picture measured by the rerank of K to the hybrid "
             "query without rerank.", ""]
    return lines + _table(["cutoff figure", "value"], rows)


def _vectors(results: dict[str, Any]) -> list[str]:
    plan = results["plan"]
    rows = []
    for v in results["vectors"]:
        build = fmt(v["upsert_s"], 2)
        if "optimize_s" in v:
            build += f" + optimize {fmt(v['optimize_s'], 2)}"
        rows.append([v["backend"], v.get("kind", DEFAULTS["kind"]), f"{v['n']:,}", build,
                     fmt(v.get("payload_s"), 2), fmt(v["points_per_s"], 0), fmt(v["p50_ms"], 2),
                     fmt(v["p95_ms"], 2), fmt(v["p50_vs_numpy"], 2), fmt(v["recall_at_20"], 3),
                     fmt(v["open_s"], 3), fmt(v["first_search_ms"], 2), fmt(v["peak_rss_mb"], 0),
                     fmt(v["build_peak_rss_mb"], 0), fmt(v["disk_mb"], 1)])
    where = ("built in one process, reopened and searched in another" if plan["isolated"]
             else "built, reopened and searched in the shared worker (smoke mode)")
    lines = [
        "## Vector store scale", "",
        f"{plan['vector_dim']}-d unit vectors: `uniform` random ones (HNSW's worst case: every point nearly "
        "equidistant) or `clip-like` ones (one shared cone, 2,000 topics: two photos have cosine ~0.4, two "
        "of one topic ~0.75; `bench.vectors.clip_like_chunk`). `edge` = the product's store "
        "(`open_vector_store(path=...)`); `edge+optimize` = the same after Edge's segment optimiser "
        "has built HNSW, as the product's index run does once "
        f"{Settings.model_fields['search_index_threshold'].default:,} vectors are left unindexed "
        f"(up to {plan['optimize_max']:,} points); `qdrant-client` = "
        f"`QdrantClient(path=...)` local mode (up to {plan['client_max']:,} points); `numpy` = brute force "
        f"over an in-memory matrix (.npy file, np.load). Each store is {where}; upsert s counts the store's "
        "own calls, points/s also the final flush/close; search: "
        f"{plan['vector_queries']} queries, top 20. Ratio and recall@20 are against numpy in the same run. "
        "numpy (and qdrant-client, which searches with numpy) run with one OpenBLAS thread. "
        "Edge points carry the product's payload (folder, date, camera: see Filtered search), written "
        "after the vectors in a pass of its own: \"payloads s\" (the `set_payload` calls and the last "
        "flush), not part of upsert s or points/s; disk MB includes them, and optimize also "
        "builds the payload indexes' extra HNSW links, as the product's does.", ""]
    lines += _table(["backend", "points", "N", "upsert s", "payloads s", "points/s", "search p50 ms",
                     "p95 ms", "p50 / numpy", "recall@20", "reopen s", "first search ms",
                     "RSS MB (reopen+search)", "RSS MB (build)", "disk MB"], rows)
    return lines + _filtered(results)


def _filtered(results: dict[str, Any]) -> list[str]:
    rows = []
    for v in results["vectors"]:
        block = v.get("filtered")
        if not block:
            continue
        for name, f in block["filters"].items():
            rows.append([v["backend"], v.get("kind", DEFAULTS["kind"]), f"{v['n']:,}",
                         f"{name}: {FILTERS.get(name, '?')}",
                         f"{f['passing']:,} ({100 * f['fraction']:.1f} %)",
                         fmt(f["p50_ms"], 2), fmt(f["p95_ms"], 2), fmt(f["filtered_vs_unfiltered"], 2),
                         fmt(f["recall_at_20"], 3)])
        rows.append([v["backend"], v.get("kind", DEFAULTS["kind"]), f"{v['n']:,}", "slowest of the three",
                     "", "", "", fmt(block["worst_filtered_vs_unfiltered"], 2), ""])
    if not rows:
        return []
    lines = [
        "### Filtered search", "",
        "Every numpy and Edge point carries `point_payload(...)`: a folder under /photos (100 folders, "
        "point shares proportional to 1/rank: 19 % down to 0.2 %), a date uniform over 2015–2024 and one "
        "of 5 cameras (45/25/15/10/5 %), all drawn independently of the vectors "
        "(`bench.vectors.payload_columns`). "
        "Each query is searched unfiltered and then under each filter, interleaved; Edge filters in the "
        "engine through its payload indexes (`PointFilter`), numpy scores exactly the passing points. "
        "filtered_vs_unfiltered = the filter's p50 / the same run's unfiltered p50 (\"search p50 ms\" "
        "above); recall@20 against numpy's exact top 20 among the passing points, same run. qdrant-client "
        "is not filtered (local mode checks a filter point by point in Python).", ""]
    lines += _table(["backend", "points", "N", "filter", "points passing", "p50 ms", "p95 ms",
                     "filtered_vs_unfiltered", "recall@20"], rows)
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    meta, notes = results["meta"], results["plan"]["notes"]
    lines = [f"# imgsearch benchmarks ({meta['mode']} mode)", "",
             f"Run {meta['started']}, took {meta['duration_s']:.0f} s: `{meta['command']}`. Every figure: "
             "median (min–max) over runs; every comparison: a ratio within the same run.", ""]
    lines += [f"> {n}" for n in notes] + ([""] if notes else [])
    skipped = results["plan"].get("skip", [])
    if skipped:
        lines += [f"Not run this time (`--skip`): {', '.join(skipped)}; their targets read \"not measured\".", ""]
    if results["errors"]:
        lines += ["## Errors", ""]
        lines += [f"- {e['section']} / {e['what']}: `{e['error'].splitlines()[-1]}`"
                  for e in results["errors"]]
        lines += [""]
    for section in (_targets, side_by_side_section, _machine, _indexing, _queries, ocr_section, tags_section, _vectors):
        lines += section(results)
    return "\n".join(lines)
