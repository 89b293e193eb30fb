"""Search quality of a model profile, measured through the product's own pipeline: the held-out
collection is indexed by `index()` and every query goes through `search()`, so the figures say
what a user gets, not what the models do in isolation. The issue's targets are checked here."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgsearch.indexer import index
from imgsearch.indexer.runner import text_int8
from imgsearch.models import Models
from imgsearch.models.hub import model_ref_id
from imgsearch.models.text_export import ensure_text_export
from imgsearch.searcher import search
from imgsearch.searcher.fusion import FUSIONS
from imgsearch.settings import Settings
from imgsearch.shapes.render import CLEAR_AXIS_RATIO
from imgsearch.stores import Stores, open_stores

from .collection import Collection, EvalQuery, build_collection, diagnose, judge_captions
from .metrics import Judged, summarise
from .relevance import build_named_collection, cutoff_scores, names_scores, nonsense_scores

DEFAULT_FUSION = "itm+clip"  # the searcher's default
HYBRID = "hybrid"  # the product's default: CLIP and full-text candidates, ITM rerank, default fusion
TARGETS = {  # from the issue: (what, threshold, how the value compares)
    "attribute_clip_mrr": ("attribute queries, CLIP MRR", 0.90, ">="),
    "relation_rerank_mrr": ("relation queries, CLIP+ITM MRR", 0.70, ">="),
    "relation_rerank_gain": ("relation MRR gain of CLIP+ITM over CLIP", 0.15, ">="),
    "captions_right": ("captions fully right", 0.90, ">="),
    "bf16_max_delta": ("bf16 vs fp32, largest MRR difference", 0.01, "<="),
    "bf16_captions_delta": ("bf16 vs fp32, difference in captions fully right", 0.01, "<="),
    "hybrid_relation_change": ("relation MRR, hybrid+rerank minus vector+rerank", 0.0, ">="),
    "cutoff_attribute_precision": ("cutoff: attribute queries, precision of the set returned", 0.9, ">="),
    "cutoff_attribute_recall": ("cutoff: attribute queries, recall of the set returned", 0.9, ">="),
    "cutoff_relation_precision": ("cutoff: relation queries, precision of the set returned", 0.8, ">="),
    "cutoff_relation_recall": ("cutoff: relation queries, recall of the set returned", 0.8, ">="),
    "nonsense_empty": ("cutoff: nonsense queries that return nothing (of 5)", 4, ">="),
    "names_first": ("share of folder/file-name queries ranking their pictures first (hybrid)", 1.0, ">="),
}


def _config(name: str, rerank_k: int) -> tuple[str, str, int]:
    """(mode, fusion, rerank depth) of a measured config: "clip" (vector, no rerank), "hybrid",
    or a fusion name (vector candidates, ITM rerank fused that way)."""
    if name == "clip":
        return "vector", DEFAULT_FUSION, 0
    if name == HYBRID:
        return "hybrid", DEFAULT_FUSION, rerank_k
    return "vector", name, rerank_k


def _local_settings(settings: Settings, home: Path, dtype: str | None = None) -> Settings:
    """The run's own stores under `home`: never the user's index, catalog URL or Qdrant server."""
    update = {"home": home, "qdrant_url": None, "qdrant_api_key": None, "catalog_url": None}
    return settings.model_copy(update={**update, **({"dtype": dtype} if dtype else {})})


def _model_ids(models: Models) -> dict[str, str]:
    p = models.profile
    return {"profile": p.name, "clip": models.facts()["clip_model"], "captioner": model_ref_id(p.captioner),
            "itm": model_ref_id(p.itm), "runtime": models.runtime.describe()}


def _towers(settings: Settings) -> dict[str, str | None]:
    """What ran each tower in this run (torch, onnx or onnx-int8; the captioner's decoder): `auto`
    chooses by speed measured at build, so a loaded machine may pick another than a quiet one."""
    from imgsearch.models.onnx_image import image_runtime_status

    status = image_runtime_status(settings.index_dir, settings.image_runtime)
    blip = status.get("blip_vision") or {}
    decoder = (blip.get("captioner") or {}).get("decoder")
    return {"clip_image": status.get("chosen"), "captioner_vision": (blip.get("captioner") or {}).get("chosen"),
            "captioner_decoder": decoder.split(":")[0] if decoder else None,
            "itm_vision": (blip.get("itm") or {}).get("chosen"),
            "clip_text": (status.get("text_tower") or {}).get("chosen")}


def _run_queries(
    queries: Sequence[EvalQuery], stores: Stores, models: Models, limit: int, rerank_k: int, fusion: str,
    mode: str,
) -> tuple[list[Judged], float]:
    """Judged rankings (no cutoff: the ranking itself) and the mean milliseconds a query took."""
    judged, spent = [], 0.0
    for q in queries:
        t0 = time.perf_counter()
        hits = search(q.text, stores, models, limit=limit, rerank_k=rerank_k, fusion=fusion, mode=mode,
                      min_match=0.0)
        spent += time.perf_counter() - t0
        judged.append(Judged(q.kind, tuple(Path(h.path).name for h in hits), q.relevant))
    return judged, 1000 * spent / max(1, len(queries))


def _scores(judged: Sequence[Judged]) -> dict[str, dict[str, float | int]]:
    return {kind: s.as_dict() for kind, s in summarise(judged).items()}


def _captions(stores: Stores, collection: Collection) -> dict[str, Any]:
    """Judge the captions the indexer stored in the catalog (what users see)."""
    known = stores.catalog.files_under([str(collection.folder)])
    infos = stores.catalog.get(k.id for k in known.values())
    return judge_captions(collection, {Path(i.path).name: i.caption for i in infos.values()})


def _index_and_search(
    settings: Settings, collection: Collection, queries: Sequence[EvalQuery], rerank_k: int,
    configs: Sequence[str], captions: bool, thresholds: Sequence[float] = (),
) -> dict[str, Any]:
    """Index the collection into `settings.home` and run `queries` per config ("clip" = no
    rerank, else a fusion). Rankings are kept so subsets can be scored later."""
    models = Models(settings)
    t0 = time.perf_counter()
    _ = models.captioner if captions else None
    _ = models.clip
    load_s = time.perf_counter() - t0
    out: dict[str, Any] = {"models": _model_ids(models), "judged": {}, "scores": {}, "query_ms": {}}
    with open_stores(settings, models.facts(), models.clip.dim) as stores:
        t0 = time.perf_counter()
        report = index([collection.folder], stores, models, captions=captions)
        out["timings"] = {"load_s": load_s, "index_s": time.perf_counter() - t0}
        # as `imgsearch index` does: the queries' words then take the product's path (the text
        # tower's export, in a warm session where the CPU runs it)
        ensure_text_export(models.clip, settings.index_dir)
        text_int8(settings, models, report.seen)  # its int8 variant, where an index run would build it
        if report.skipped or report.seen != len(collection.scenes):
            raise RuntimeError(f"indexing lost pictures: seen {report.seen}, skipped {report.skipped[:3]}")
        if any(c != "clip" for c in configs):
            t0 = time.perf_counter()
            _ = models.itm
            out["timings"]["load_s"] += time.perf_counter() - t0
        for config in configs:
            mode, fusion, k = _config(config, rerank_k)
            judged, ms = _run_queries(queries, stores, models, rerank_k, k, fusion, mode)
            out["judged"][config], out["query_ms"][config] = judged, ms
            out["scores"][config] = _scores(judged)
        if captions:
            out["captions"] = _captions(stores, collection)
        out["models"]["towers"] = _towers(settings)
        if thresholds:
            t0 = time.perf_counter()
            out["cutoff"] = cutoff_scores(queries, stores, models, thresholds, rerank_k)
            out["nonsense"] = {f"{t:g}": nonsense_scores(stores, models, t, rerank_k) for t in thresholds}
            out["timings"]["cutoff_s"] = time.perf_counter() - t0
    return out


def _compare_bf16(
    settings: Settings, workdir: Path, collection: Collection, main: dict[str, Any], rerank_k: int,
    default: str, max_queries: int | None,
) -> dict[str, Any]:
    if main["models"]["runtime"].endswith("bfloat16"):
        return {"done": False, "reason": "the main run already used bf16 weights: nothing to compare"}
    picked = list(range(len(collection.queries)))
    if max_queries is not None and max_queries < len(picked):  # half of each kind: both are compared
        by_kind = {k: [i for i in picked if collection.queries[i].kind == k]
                   for k in ("attribute", "relation")}
        picked = sorted(i for ids in by_kind.values() for i in ids[:max(1, max_queries // 2)])
    queries = [collection.queries[i] for i in picked]
    configs = ["clip", default]
    run = _index_and_search(_local_settings(settings, workdir / "home-bf16", "bfloat16"), collection,
                            queries, rerank_k, configs, captions=True)
    ref = {c: _scores([main["judged"][c][i] for i in picked]) for c in configs}
    deltas = {c: {kind: abs(run["scores"][c][kind]["mrr"] - ref[c][kind]["mrr"]) for kind in ref[c]}
              for c in configs}
    return {
        "done": True, "queries": len(queries), "of_queries": len(collection.queries),
        "subset": len(queries) < len(collection.queries), "runtime": run["models"]["runtime"],
        "fp32": ref, "bf16": run["scores"], "mrr_deltas": deltas,
        "max_delta": max(d for per in deltas.values() for d in per.values()),
        "captions": {"fp32": main["captions"]["all"]["share"], "bf16": run["captions"]["all"]["share"]},
        "captions_delta": abs(run["captions"]["all"]["share"] - main["captions"]["all"]["share"]),
        "timings": {**run["timings"], "query_ms": run["query_ms"]},
    }


def _targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ret, default = result["retrieval"], result["config"]["default_fusion"]
    cut = result["cutoff"][f"{result['config']['min_match']:g}"]["kinds"]
    nonsense = result["nonsense"][f"{result['config']['min_match']:g}"]
    values: dict[str, float | None] = {
        "attribute_clip_mrr": ret["clip"]["attribute"]["mrr"],
        "relation_rerank_mrr": ret[default]["relation"]["mrr"],
        "relation_rerank_gain": ret[default]["relation"]["mrr"] - ret["clip"]["relation"]["mrr"],
        "captions_right": result["captions"]["all"]["share"],
        "bf16_max_delta": result["bf16"]["max_delta"] if result["bf16"]["done"] else None,
        "bf16_captions_delta": result["bf16"]["captions_delta"] if result["bf16"]["done"] else None,
        "hybrid_relation_change": ret[HYBRID]["relation"]["mrr"] - ret[default]["relation"]["mrr"],
        "cutoff_attribute_precision": cut["attribute"]["precision"],
        "cutoff_attribute_recall": cut["attribute"]["recall"],
        "cutoff_relation_precision": cut["relation"]["precision"],
        "cutoff_relation_recall": cut["relation"]["recall"],
        "nonsense_empty": nonsense["empty"],
        "names_first": result["names"][HYBRID]["first_share"],
    }
    out = {}
    for key, (what, threshold, op) in TARGETS.items():
        v = values[key]
        reached = None if v is None else (v >= threshold if op == ">=" else v <= threshold)
        out[key] = {"what": what, "value": v, "target": threshold, "op": op, "reached": reached}
    return out


def evaluate(
    settings: Settings, workdir: Path, n: int, seed: int, rerank_k: int = 20,
    fusions: Sequence[str] = FUSIONS, compare_dtypes: bool = True, bf16_queries: int | None = None,
    min_axis_ratio: float = CLEAR_AXIS_RATIO, thresholds: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Build the collection in `workdir/pictures`, index it into `workdir/home`, and measure
    CLIP alone and CLIP + ITM per fusion (MRR, P@5 per query kind within the top `rerank_k`),
    the captions, and optionally bf16 against the main run (`bf16_queries` caps its queries:
    bf16 matmuls crawl on CPUs without AMX / AVX512-BF16). Hybrid retrieval against vector, the
    cutoff at each of `thresholds` (default: the settings' `min_match` only; targets read that
    one), nonsense queries, and a collection with named folders (its own index)."""
    if rerank_k < 1:
        raise ValueError("rerank_k must be at least 1: it is also the ranked list's length")
    if not fusions or any(f not in FUSIONS for f in fusions):
        raise ValueError(f"fusions must be among {FUSIONS}")
    workdir = Path(os.path.abspath(workdir))
    if any((workdir / d).exists() for d in ("home", "home-bf16")):
        raise FileExistsError(f"{workdir} holds an earlier run's index: use a new working folder")
    default = DEFAULT_FUSION if DEFAULT_FUSION in fusions else fusions[0]
    t0 = time.perf_counter()
    collection = build_collection(workdir / "pictures", n, seed, min_axis_ratio)
    build_s = time.perf_counter() - t0
    thresholds = sorted({settings.min_match, *(thresholds or ())})
    main = _index_and_search(_local_settings(settings, workdir / "home"), collection, collection.queries,
                             rerank_k, ["clip", *fusions, HYBRID], captions=True, thresholds=thresholds)
    names = _names(settings, workdir, seed, rerank_k)
    two = sum(len(s.objects) == 2 for s in collection.scenes.values())
    result: dict[str, Any] = {
        "collection": {
            "seed": seed, "min_axis_ratio": min_axis_ratio,
            "pictures": len(collection.scenes), "one_object": len(collection.scenes) - two,
            "two_object": two, "triplets": sum(q.triplet is not None for q in collection.queries),
            "queries": {k: sum(q.kind == k for q in collection.queries) for k in ("attribute", "relation")},
        },
        "models": main["models"],
        "config": {"rerank_k": rerank_k, "limit": rerank_k, "fusions": list(fusions),
                   "default_fusion": default, "min_match": settings.min_match, "thresholds": thresholds},
        "retrieval": main["scores"],
        "cutoff": main["cutoff"],
        "nonsense": main["nonsense"],
        "names": names,
        "captions": main["captions"],
        "timings": {"build_s": build_s, **main["timings"], "query_ms": main["query_ms"]},
        "bf16": (_compare_bf16(settings, workdir, collection, main, rerank_k, default, bf16_queries)
                 if compare_dtypes else {"done": False, "reason": "skipped on request (--no-bf16)"}),
        "queries": diagnose(collection, {c: [j.ranked for j in js] for c, js in main["judged"].items()}),
    }
    result["targets"] = _targets(result)
    return result


def _names(settings: Settings, workdir: Path, seed: int, rerank_k: int) -> dict[str, Any]:
    """Index the named-folders collection (no captions: names are what it tests) and score it."""
    named = build_named_collection(workdir / "named", seed)
    local = _local_settings(settings, workdir / "home-named")
    models = Models(local)
    with open_stores(local, models.facts(), models.clip.dim) as stores:
        index([named.folder], stores, models, captions=False)
        return names_scores(named, stores, models, rerank_k)


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|",
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def to_markdown(r: dict[str, Any]) -> str:
    """The readable report: retrieval per kind, captions, bf16 deltas, targets, timings."""
    c, m, cfg, t, ret, cap, b = (r[k] for k in ("collection", "models", "config", "timings", "retrieval",
                                                  "captions", "bf16"))
    configs = ["clip", *cfg["fusions"], HYBRID]
    names = {"clip": "CLIP", **{f: f"CLIP+ITM {f}" for f in cfg["fusions"]},
             HYBRID: f"hybrid+ITM {cfg['default_fusion']} (default)"}
    lines = [
        f"# Search quality: `{m['profile']}` models", "",
        (f"Held-out collection: {c['pictures']} pictures (seed {c['seed']}, pairs' larger gap at least "
         f"{c['min_axis_ratio']}x the smaller): {c['one_object']} one-object, "
         f"{c['two_object']} two-object, {c['triplets']} relation triplets (picture, colours swapped, "
         f"relation flipped); {c['queries']['attribute']} attribute, "
         f"{c['queries']['relation']} relation queries."),
        (f"Models: CLIP `{m['clip']}`, captioner `{m['captioner']}`, ITM `{m['itm']}`; "
         f"runtime {m['runtime']}" + (
             "; towers run by: " + ", ".join(f"{k.replace('_', ' ')} {v or 'not recorded'}" for k, v in m["towers"].items())
             if m.get("towers") else "") + "."),
        "", f"## Retrieval: MRR / P@5 in the top {cfg['limit']} (ITM reranks the top {cfg['rerank_k']})", "",
        *_table(["kind", "queries", *(names[x] for x in configs), "P@5 ceiling"],
                [[kind, ret["clip"][kind]["queries"],
                  *(f"{_f(ret[x][kind]['mrr'])} / {_f(ret[x][kind]['p5'])}" for x in configs),
                  _f(ret["clip"][kind]["p5_ceiling"])] for kind in ret["clip"]]),
        "", "## Captions (right: every object's colour and shape, and the relation)", "",
        *_table(["pictures", "right", "total", "share"],
                [[label, cap[k]["right"], cap[k]["total"], f"{cap[k]['share']:.1%}"]
                 for k, label in (("one", "one object"), ("two", "two objects"), ("all", "all"))]),
    ]
    if cap["wrong_examples"]:
        lines += ["", "Wrong, e.g.: " + "; ".join(f"`{w['caption']}` for {w['truth']}"
                                                   for w in cap["wrong_examples"][:4])]
    lines += _relevance_markdown(r)
    lines += ["", "## bf16 weights against the main run", ""]
    if b["done"]:
        scope = f"a subset of {b['queries']} of {b['of_queries']} queries" if b["subset"] else "all queries"
        lines += [f"Runtime {b['runtime']}, on {scope} (same collection, its own bf16 index).", "",
                  *_table(["config", "kind", "fp32 MRR", "bf16 MRR", "abs. difference"],
                          [[names[x], k, _f(b["fp32"][x][k]["mrr"]), _f(b["bf16"][x][k]["mrr"]), f"{d:.4f}"]
                           for x, per in b["mrr_deltas"].items() for k, d in per.items()]),
                  "", f"Captions fully right (all pictures): fp32 {b['captions']['fp32']:.1%}, "
                      f"bf16 {b['captions']['bf16']:.1%}, difference {b['captions_delta']:.4f}."]
    else:
        lines.append(f"Not run: {b['reason']}.")
    marks = {True: "✓ reached", False: "✗ missed", None: "– not measured"}
    lines += ["", "## Targets (from the issue)", "",
              *_table(["target", "value", "goal", ""],
                      [[g["what"], _f(g["value"]), f"{'≥' if g['op'] == '>=' else '≤'} {g['target']}",
                        marks[g["reached"]]] for g in r["targets"].values()]),
              "", "## Timings", "",
              f"Collection written in {t['build_s']:.1f} s; models loaded in {t['load_s']:.1f} s; index "
              f"(vectors + captions) {t['index_s']:.1f} s for {c['pictures']} pictures. Mean query: "
              + ", ".join(f"{names[x]} {t['query_ms'][x]:.1f} ms" for x in configs)
              + " (the first rerank pass also fills the ITM state cache)."]
    if b["done"]:
        bt = b["timings"]
        lines.append(f"bf16: index (vectors + captions) {bt['index_s']:.1f} s; mean query: "
                     + ", ".join(f"{names[x]} {ms:.1f} ms" for x, ms in bt["query_ms"].items()) + ".")
    return "\n".join(lines) + "\n"


def _relevance_markdown(r: dict[str, Any]) -> list[str]:
    """The cutoff per threshold and kind, nonsense queries, named folders."""
    default = f"{r['config']['min_match']:g}"
    rows = []
    for key, per in r["cutoff"].items():
        mark = " (default)" if key == default else ""
        for kind, k in per["kinds"].items():
            rows.append([f"{key}{mark}", kind, k["queries"], _f(k["precision"]), _f(k["recall"]), k["empty"],
                         f"{k['mean_returned']:.1f}", f"{r['nonsense'][key]['empty']} of {r['nonsense'][key]['of']}"
                         if kind == "all" else ""])
    lines = ["", f"## Relevance cutoff (`--min-match`; hybrid, ITM reranks adaptively from the top "
                 f"{r['config']['rerank_k']})", "",
             "Precision of the set a search returns (over queries that returned something), its recall, "
             "queries that returned nothing, mean size; nonsense queries (things the world lacks) that "
             "returned nothing.", "",
             *_table(["min-match", "kind", "queries", "precision", "recall", "empty", "returned", "nonsense empty"],
                     rows)]
    lines += ["", "## Names (folders and files named by a person; their own index, no captions)", "",
              *_table(["mode", *(q["query"] for q in r["names"]["hybrid"]["queries"]), "ranked first"],
                      [[mode, *(f"{q['right_in_first']}/{q['size']}" for q in per["queries"]),
                        f"{per['first_share']:.0%}"] for mode, per in r["names"].items()])]
    return lines


def write_reports(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """eval.json (everything, per query too) and eval.md (the readable summary)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "eval.json", out_dir / "eval.md"
    js.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    md.write_text(to_markdown(result))
    return js, md
