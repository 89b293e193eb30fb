"""`python -m bench OUT_DIR [--smoke] [--runs N] [--peers rclip]`: run every benchmark of the issue
"Benchmarks and speed" and write OUT_DIR/bench.md and OUT_DIR/bench.json; `--peers rclip` also runs
rclip beside imgsearch on the same pictures and reports ratios (bench/peers.py).

Run it from the repository root (the harness is not installed with the product). Photos and the
random base-size weights are cached in OUT_DIR, so a second run only measures. A configuration
that fails is reported under "Errors" and the rest still runs; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .child import IsolatedRunner, Runner, SharedRunner
from .indexing import measure_indexing
from .machine import machine_facts
from .ocr import measure_ocr
from .peers import PEER_NAMES, PeerPlan, measure_side_by_side, peer_plan, summarize_side_by_side
from .photos import ensure_photos, photo_facts
from .pictures import ensure_shapes, ensure_text_pictures, picture_facts
from .plan import BASE, DEFAULT_VOCABULARY, SECTIONS, TINY, PhasePlan, Plan, full_plan, smoke_plan
from .queries import measure_cli, measure_queries
from .report import PEERS, evaluate_targets, render_markdown
from .tagging import OWN, default_vocabulary, measure_tags
from .vectors import BACKENDS, KINDS, measure_vectors
from .weights import ensure_base_weights


class Bench:
    """One harness run: the plan, the results gathered so far, and where they are written."""

    def __init__(self, out: Path, plan: Plan, command: str, peers: PeerPlan | None = None) -> None:
        self.out, self.plan, self.t0 = out, plan, time.perf_counter()
        self.peers = peers
        self.results: dict[str, Any] = {
            "meta": {"mode": plan.mode, "command": command, "out_dir": str(out), "duration_s": 0.0,
                     "started": datetime.now(timezone.utc).isoformat(timespec="seconds")},
            "machine": machine_facts(), "torch_facts": None, "plan": plan.as_json(), "photos": [],
            "indexing": [], "queries": [], "cli": [], "ocr": [], "tags": [], "vectors": [], "errors": [],
            "targets": [],
            "peers": PEERS,
        }

    def log(self, message: str) -> None:
        print(f"[bench {time.perf_counter() - self.t0:7.1f}s] {message}", file=sys.stderr, flush=True)

    def guarded(self, section: str, what: str, fn: Callable[[], Any]) -> Any:
        """Run one measurement; a failure is recorded and the harness goes on with the next."""
        self.log(f"{section}: {what}")
        try:
            return fn()
        except Exception as e:  # one broken configuration must not lose the others' numbers
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            self.results["errors"].append({"section": section, "what": what, "error": detail})
            self.log(f"{section}: {what} FAILED: {detail.splitlines()[-1]}")
            return None

    def save(self) -> None:
        """Write both reports; called after every section so an interrupted run keeps its numbers."""
        self.results["meta"]["duration_s"] = time.perf_counter() - self.t0
        self.results["machine"]["load_average_at_end"] = list(os.getloadavg())
        self.results["targets"] = evaluate_targets(self.results)
        (self.out / "bench.json").write_text(json.dumps(self.results, indent=1))
        (self.out / "bench.md").write_text(render_markdown(self.results))

    def run(self) -> int:
        timeout = self.plan.child_timeout_s
        runner = IsolatedRunner(timeout) if self.plan.isolated else SharedRunner(timeout)
        try:
            return self._run(runner)
        finally:
            runner.close()

    def _run(self, runner: Runner) -> int:
        plan, out = self.plan, self.out
        profiles = self._profiles(runner)
        query_homes = {} if "indexing" in plan.skip else self._indexing(runner, profiles)
        for profile, home in ({} if "queries" in plan.skip else query_homes).items():
            settings = profiles[profile]
            row = self.guarded("queries", f"{profile}, warm process",
                               lambda: measure_queries(profile, settings, home, plan.queries, plan.runs,
                                                       runner))
            if row is not None:
                self.results["queries"].append(row)
            for via_service in (False, True):
                row = self.guarded("queries", f"{profile}, cold CLI{' through the service' if via_service else ''}",
                                   lambda: measure_cli(profile, settings, home, plan.cli_runs, plan.cli_warmup,
                                                       via_service))
                if row is not None:
                    self.results["cli"].append(row)
            self.save()
        if plan.phases is not None and "ocr" not in plan.skip:
            self._ocr(runner, plan.phases)
        if plan.phases is not None and "tags" not in plan.skip:
            self._tags(runner, plan.phases, profiles)

        limits = {"qdrant-client": plan.client_max, "edge+optimize": plan.optimize_max}
        for n in () if "vectors" in plan.skip else plan.vector_sizes:
            backends = [b for b in BACKENDS if n <= limits.get(b, n)]
            done = self.guarded("vectors", f"{n:,} points: {', '.join(backends)}", lambda: measure_vectors(
                n, backends, plan.vector_queries, plan.vector_dim, out / "work" / "vectors", plan.runs,
                runner, plan.vector_kind))
            if done is not None:
                rows, errors = done
                self.results["vectors"] += rows
                self.results["errors"] += errors
            self.save()
        if self.peers is not None:
            self._side_by_side(runner, self.peers)
        self.log(f"wrote {out / 'bench.md'} and {out / 'bench.json'}")
        return 1 if self.results["errors"] else 0


    def _side_by_side(self, runner: Runner, peers: PeerPlan) -> None:
        """rclip beside imgsearch's `default` profile (the tiny one in smoke mode): bench/peers.py."""
        if peers.smoke:
            profile, settings = TINY, {"models": "tiny"}
        else:
            profile = BASE
            settings = self.guarded("weights", "random base-size weights",
                                    lambda: ensure_base_weights(self.out / "weights", runner))
        if settings is None:
            return
        raw = self.guarded("peers", "rclip side by side", lambda: measure_side_by_side(
            peers, profile, settings, self.out, runner, self.log))
        if raw is not None:
            (self.out / "peers-raw.json").write_text(json.dumps(raw, indent=1))
            self.results["side_by_side"] = self.guarded("peers", "ratios", lambda: summarize_side_by_side(raw))
        self.save()

    def _profiles(self, runner: Runner) -> dict[str, dict[str, str]]:
        """Settings of every profile a section that runs needs (base-size weights built once)."""
        plan = self.plan
        needed = [] if "indexing" in plan.skip else list(plan.profiles)
        if plan.phases is not None and "tags" not in plan.skip:
            needed += [p for p, _ in plan.phases.tag_configs if p not in needed]
        profiles: dict[str, dict[str, str]] = {}
        for name in needed:
            if name == TINY:
                profiles[name] = {"models": "tiny"}
            elif name == BASE:
                made = self.guarded("weights", "random base-size weights",
                                    lambda: ensure_base_weights(self.out / "weights", runner))
                if made is not None:
                    profiles[name] = made
        return profiles

    def _indexing(self, runner: Runner, profiles: dict[str, dict[str, str]]) -> dict[str, Path]:
        """Photos, then every profile on every photo set; returns the homes to query, by profile."""
        plan, out = self.plan, self.out
        folders: dict[str, Path] = {}
        for spec in plan.photo_sets:
            folder = self.guarded("photos", f"{spec.count} × {spec.width}×{spec.height}",
                                  lambda spec=spec: ensure_photos(out / "photos", spec, plan.photo_workers))
            if folder is not None:
                folders[spec.name] = folder
                self.results["photos"].append({**asdict(spec), **photo_facts(folder)})
        self.save()
        query_homes: dict[str, Path] = {}
        for profile, settings in profiles.items():
            if profile not in plan.profiles:
                continue
            for spec in plan.photo_sets:
                if spec.name not in folders:
                    continue
                work = out / "work" / "index" / profile / spec.name
                index_runs = plan.index_runs or plan.runs
                done = self.guarded("indexing", f"{profile} on {spec.name}", lambda: measure_indexing(
                    profile, settings, spec.name, folders[spec.name], spec.count, work, index_runs, runner))
                if done is not None:
                    row, home = done
                    self.results["indexing"].append(row)
                    self.results["torch_facts"] = self.results["torch_facts"] or row["setup"] | {
                        k: row["product_runs"][-1][k] for k in ("torch", "threads", "bf16_fast")}
                    if spec.name == plan.query_set:
                        query_homes[profile] = home
                self.save()
        return query_homes

    def _ocr(self, runner: Runner, phases: PhasePlan) -> None:
        """The text phase on pictures with text, the same clutter without, and shapes scenes."""
        pictures = self.out / "pictures"

        def measure() -> dict[str, Any]:
            folders = dict(ensure_text_pictures(pictures, phases.ocr_pictures, phases.ocr_seed))
            folders["shapes"] = ensure_shapes(pictures, phases.ocr_pictures, phases.shapes_seed)
            facts = {kind: picture_facts(folder) for kind, folder in folders.items()}
            return measure_ocr(folders, facts, self.out / "work" / "ocr", self.plan.runs, runner)

        row = self.guarded("ocr", f"{phases.ocr_pictures} pictures of each kind", measure)
        if row is not None:
            self.results["ocr"].append(row)
        self.save()

    def _tags(self, runner: Runner, phases: PhasePlan, profiles: dict[str, dict[str, str]]) -> None:
        photos = self.guarded("tags", f"{phases.tag_pictures} shapes pictures", lambda: ensure_shapes(
            self.out / "pictures", phases.tag_pictures, phases.shapes_seed))
        for profile, vocabulary in phases.tag_configs:
            if photos is None or profile not in profiles:
                continue
            vocab = default_vocabulary() if vocabulary == DEFAULT_VOCABULARY else OWN
            work = self.out / "work" / "tags" / f"{profile}-{vocabulary}"
            row = self.guarded("tags", f"{profile}, {vocabulary} vocabulary", lambda: measure_tags(
                profile, profiles[profile], vocab, photos, phases.tag_pictures, work, self.plan.runs,
                phases.tag_calls, phases.tag_vectors, runner))
            if row is not None:
                self.results["tags"].append(row)
                self.results["torch_facts"] = self.results["torch_facts"] or {
                    k: row[k] for k in ("runtime", "torch", "threads", "bf16_fast")}
            self.save()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="where photos, weights, work files and the reports go")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds, not hours: tiny models and sizes, one run (proves the harness works)")
    parser.add_argument("--runs", type=int, default=None, help="runs per configuration (full: at least 3)")
    parser.add_argument("--skip", action="append", choices=SECTIONS, default=[],
                        help="leave a section out (repeatable); the report says it was not run")
    parser.add_argument("--vectors", choices=KINDS, default="uniform",
                        help="the vector store section's points: uniform random (HNSW's worst case) or CLIP-like "
                             "(a shared cone, 2,000 topics: what recall means for photos)")
    parser.add_argument("--vector-sizes", type=lambda v: tuple(int(x) for x in v.split(",")), default=None,
                        help="comma-separated point counts instead of the plan's, e.g. 1000000")
    parser.add_argument("--peers", choices=PEER_NAMES, action="append", default=[],
                        help="also run this peer beside imgsearch on the same pictures and report ratios "
                             "(rclip: set up by ../shared/peers/rclip/setup.sh under RCLIP_PEER_ROOT); "
                             "add --skip indexing --skip vectors --skip ocr --skip tags for that comparison alone")
    parser.add_argument("--peer-photos", type=lambda v: tuple(int(x) for x in v.split(",")), default=None,
                        metavar="N640,N12MP", help="photos in the peer comparison's two sets (default 200,40)")
    parser.add_argument("--peer-runs", type=int, default=None, help="rounds of the peer comparison (default 3)")
    args = parser.parse_args(argv)
    plan = smoke_plan(args.runs or 1) if args.smoke else full_plan(args.runs or 3)
    plan = replace(plan, skip=tuple(args.skip), vector_kind=args.vectors,
                   vector_sizes=args.vector_sizes or plan.vector_sizes)
    out = args.out_dir.expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    peers = peer_plan(args.smoke, args.peer_runs, args.peer_photos) if args.peers else None
    return Bench(out, plan, command, peers).run()


if __name__ == "__main__":
    sys.exit(main())
