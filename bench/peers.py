"""Side by side with rclip (`python -m bench OUT --peers rclip`): the same photo-like JPEGs,
indexed and queried by rclip and by imgsearch in the same sitting, reported as ratios.

rclip is set up by ../shared/peers/rclip/setup.sh (its own virtualenv and random-weight ONNX
files of its exact ViT-B-32-256 graph, under `RCLIP_PEER_ROOT`, default
~/.cache/imgsearch-peers/rclip; run only when that folder lacks them) and measured with the
peer's own scripts: `bench_rclip.py index` (in-process `rclip.main.init_rclip`, the call rclip's
CLI makes, in a fresh data dir laid out as run.sh lays it out) and `bench_rclip.py query` (warm
queries), and its cold CLI query exactly as run.sh runs it (`rclip -n -f -t 10 QUERY`).
imgsearch runs as a user runs it, whatever runtime it picks: `imgsearch index --no-captions
--no-ocr` from a fresh process into a fresh home (whole wall: interpreter start, imports, model
load, text-tower export, the phase), its CLIP phase timed in a child process with the models
loaded first (`imgsearch.indexer.index` with a phase clock, as bench/indexing.py does), warm
queries through `imgsearch.searcher.search` in one loaded process, and `imgsearch query
--no-rerank` from a cold shell. The pictures: ../shared/peers/make_photos.py (640×480 and 12 MP).

Every comparison is made round by round: in each round both tools run every measurement, their
order alternating from round to round, so a machine busy with other work slows both alike; the
ratio of each round is taken and the median (min–max) over rounds reported. Beside each figure,
the physical bound: this CPU's GEMM rate, measured in the same rounds (torch fp32; ONNX Runtime
fp32 and int8 too), × the model's FLOPs per picture or per query.

The parent imports neither torch nor the product's models: the measuring code runs in children
(`bench.child` tasks `peer-*`) and in the tools' own processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .child import Runner, child_env, timed
from .stats import Summary, fmt, ratios, summarize

REPO = Path(__file__).resolve().parents[1]
PEERS_DIR = REPO.parent / "shared" / "peers"
RCLIP_SCRIPTS = PEERS_DIR / "rclip"
RCLIP_MODEL = "ViT-B-32-256-datacomp_s34b_b86k"
QUERY = "a red car parked on a street"  # run.sh's default query
PEER_NAMES = ("rclip",)


def rclip_root() -> Path:
    return Path(os.environ.get("RCLIP_PEER_ROOT", "~/.cache/imgsearch-peers/rclip")).expanduser()


# ---- the plan --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PeerPhotos:
    name: str
    width: int
    height: int
    count: int
    seed: int  # make_photos.py's; setup.sh uses 480 for 640×480 and 12 for 12 MP

    @property
    def folder_name(self) -> str:
        return f"{self.name}-{self.width}x{self.height}-{self.count}-s{self.seed}"


@dataclass(frozen=True)
class PeerPlan:
    photo_sets: tuple[PeerPhotos, ...]
    runs: int  # rounds: every measurement of both tools once per round
    warm_queries: int  # timed warm queries per round and tool
    cold_queries: int  # cold CLI query pairs per round
    query_set: str  # the photo set whose indexes are queried
    batch: int = 8  # rclip -b (its default)
    gemm_iters: int = 12
    smoke: bool = False
    notes: list[str] = field(default_factory=list)


def peer_plan(smoke: bool, runs: int | None = None, counts: Sequence[int] | None = None) -> PeerPlan:
    """Defaults: a full run takes about 15 min on a 2-core CPU; `counts` = (640×480, 12 MP)."""
    small, large = counts or ((6, 2) if smoke else (200, 40))
    sets = (PeerPhotos("640x480", 640, 480, small, 480), PeerPhotos("12mp", 4000, 3000, large, 12))
    if smoke:
        return PeerPlan(sets, runs or 1, warm_queries=3, cold_queries=1, query_set="640x480", gemm_iters=3,
                        smoke=True, notes=["smoke: the bundled tiny profile against rclip's ViT-B-32, a few "
                                           "pictures, one round: proves the harness, compares nothing"])
    return PeerPlan(sets, max(1, runs or 3), warm_queries=20, cold_queries=3, query_set="640x480")


# ---- FLOPs and the physical bound ------------------------------------------------------------------

@dataclass(frozen=True)
class ClipArch:
    image_size: int
    patch: int
    width: int
    layers: int
    text_width: int
    text_layers: int
    embed_dim: int
    context: int = 77
    mlp_ratio: int = 4


ARCHS = {"ViT-B-32-256": ClipArch(256, 32, 768, 12, 512, 12, 512)}


def transformer_flops(tokens: int, width: int, layers: int, mlp_ratio: int = 4) -> float:
    """Multiply-adds ×2 of a pre-LN transformer's matrices: QKV and output projections (4 d²), the
    MLP (2 · ratio · d²) per token, and the attention products (2 n² d) per layer."""
    per_layer = tokens * (4 + 2 * mlp_ratio) * width**2 + 2 * tokens**2 * width
    return 2.0 * layers * per_layer


def image_flops(arch: ClipArch) -> float:
    """FLOPs of one picture through the image tower (patch embedding, the class token, projection)."""
    patches = (arch.image_size // arch.patch) ** 2
    embed = patches * 3 * arch.patch**2 * arch.width
    return transformer_flops(patches + 1, arch.width, arch.layers, arch.mlp_ratio) + 2.0 * (
        embed + arch.width * arch.embed_dim)


def text_flops(arch: ClipArch, tokens: int) -> float:
    return transformer_flops(tokens, arch.text_width, arch.text_layers, arch.mlp_ratio) + 2.0 * (
        arch.text_width * arch.embed_dim)


def query_tokens(text: str) -> int:
    """About how many CLIP tokens the query is (start, words, end): the words of QUERY are common
    English ones, one token each."""
    return len(text.split()) + 2


# ---- measuring: processes ----------------------------------------------------------------------------

def user_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a user's shell gives both tools: nothing of the harness's own settings (no stray
    IMGSEARCH_/RCLIP_ variable, no OpenBLAS thread cap unless the user set one), offline hubs."""
    env = {k: v for k, v in child_env().items() if not k.startswith("RCLIP_")}
    if "OPENBLAS_NUM_THREADS" not in os.environ:
        env.pop("OPENBLAS_NUM_THREADS", None)
    env["TQDM_DISABLE"] = "1"
    env.update(extra or {})
    return env


def parse_keyvals(text: str) -> dict[str, Any]:
    """The `key=value` lines bench_rclip.py prints (numbers as floats, the rest as strings; a line
    may hold several pairs, e.g. `results=10 top=img_00001.jpg`)."""
    out: dict[str, Any] = {}
    for m in re.finditer(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=(\S+)", text):
        key, value = m[1], m[2]
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value
    return out


# ---- rclip ---------------------------------------------------------------------------------------------

class Rclip:
    """rclip as the peer scripts set it up and run it."""

    def __init__(self, root: Path, scripts: Path = RCLIP_SCRIPTS) -> None:
        self.root, self.scripts = root, scripts
        self.python, self.exe = root / "venv" / "bin" / "python", root / "venv" / "bin" / "rclip"
        self.models = root / "models"

    def ready(self) -> bool:
        return (self.exe.exists() and (self.models / RCLIP_MODEL / "visual.onnx").exists()
                and (self.models / RCLIP_MODEL / "textual.onnx").exists()
                and (self.models / "tokenizer").exists())

    def ensure(self, log: Callable[[str], None]) -> dict[str, Any]:
        """setup.sh, once (it installs rclip from the package registry and exports the random-weight
        model: minutes, and needs the registry); afterwards only the versions are read."""
        if not self.ready():
            log(f"rclip: running {self.scripts / 'setup.sh'} (RCLIP_PEER_ROOT={self.root})")
            subprocess.run(["bash", str(self.scripts / "setup.sh")], env={**os.environ, "RCLIP_PEER_ROOT": str(self.root)},
                           check=True, stdout=subprocess.DEVNULL, timeout=3600)
        code = ("from importlib.metadata import version as v; import json; print(json.dumps({p: v(p) for p in "
                "('rclip', 'onnxruntime', 'pillow', 'numpy')}))")
        versions = json.loads(subprocess.run([str(self.python), "-c", code], capture_output=True, text=True,
                                             check=True).stdout)
        return {"root": str(self.root), "versions": versions, "model": RCLIP_MODEL}

    def fresh_datadir(self, where: Path) -> Path:
        """A data dir holding only links to the model files (run.sh's `fresh_datadir`)."""
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        for name in (RCLIP_MODEL, "tokenizer"):
            (where / name).symlink_to(self.models / name)
        return where

    def env(self, datadir: Path) -> dict[str, str]:
        return user_env({"RCLIP_DATADIR": str(datadir)})

    def index(self, photos: Path, datadir: Path, batch: int, fresh: bool = True) -> dict[str, Any]:
        """One index from scratch (`fresh`; else again over the index in `datadir`) in a fresh
        process: rclip's figures (`images_per_s` = pictures / `init_rclip` seconds, its visual ONNX
        session creation included) and the process's wall up to the end of indexing (the process's
        wall less its one query, which bench_rclip.py always makes)."""
        if fresh:
            self.fresh_datadir(datadir)
        run = timed([str(self.python), str(self.scripts / "bench_rclip.py"), "index", str(photos), QUERY,
                     "--batch", str(batch), "--warm", "0"], self.env(datadir))
        kv = parse_keyvals(run["stdout"])
        return {**kv, "process_wall_s": run["wall_s"], "index_wall_s": run["wall_s"] - kv["first_query_s"],
                "peak_rss_mb": run["peak_rss_mb"], "cpu_s": run["cpu_s"]}

    def session_load(self, datadir: Path) -> float:
        """Seconds to create rclip's visual ONNX Runtime session (decode_floor.py `model`, one batch of one)."""
        run = timed([str(self.python), str(self.scripts / "decode_floor.py"), "model", "--batch", "1", "--iters", "1"],
                    self.env(datadir))
        return float(parse_keyvals(run["stdout"])["load_s"])

    def warm(self, photos: Path, datadir: Path, calls: int) -> dict[str, Any]:
        run = timed([str(self.python), str(self.scripts / "bench_rclip.py"), "query", str(photos), QUERY,
                     "--warm", str(calls)], self.env(datadir))
        return parse_keyvals(run["stdout"])

    def cold_cmd(self) -> list[str]:
        return [str(self.exe), "-n", "-f", "-t", "10", QUERY]  # run.sh's cold CLI query


# ---- imgsearch -------------------------------------------------------------------------------------------

def imgsearch_exe() -> list[str]:
    exe = Path(sys.executable).with_name("imgsearch")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "imgsearch.cli.app"]


def imgsearch_env(settings: Mapping[str, str], home: Path) -> dict[str, str]:
    return user_env({"IMGSEARCH_HOME": str(home), **{f"IMGSEARCH_{k.upper()}": v for k, v in settings.items()}})


def imgsearch_index_cli(settings: Mapping[str, str], photos: Path, home: Path, expected: int,
                       fresh: bool = True) -> dict[str, Any]:
    """`imgsearch index PHOTOS --no-captions --no-ocr --json` into a fresh home (`fresh`; else
    again into the home indexed before, nothing changed), from a fresh process."""
    if fresh:
        shutil.rmtree(home, ignore_errors=True)
    run = timed([*imgsearch_exe(), "index", str(photos), "--no-captions", "--no-ocr", "--json"],
                imgsearch_env(settings, home))
    report = json.loads(run["stdout"][run["stdout"].index("{"):])
    embedded, unchanged = (expected, 0) if fresh else (0, expected)
    if report.get("embedded") != embedded or report.get("unchanged") != unchanged or report.get("skipped"):
        raise RuntimeError(f"imgsearch index embedded {report.get('embedded')} of {embedded}, found "
                           f"{report.get('unchanged')} of {unchanged} unchanged: {report.get('skipped')}")
    return {"index_wall_s": run["wall_s"], "cpu_s": run["cpu_s"], "peak_rss_mb": run["peak_rss_mb"],
            "embedded": report["embedded"]}


def imgsearch_status(settings: Mapping[str, str], home: Path) -> dict[str, Any]:
    run = timed([*imgsearch_exe(), "status", "--json"], imgsearch_env(settings, home))
    status = json.loads(run["stdout"][run["stdout"].index("{"):])
    status.pop("skipped_files", None)
    return status


def runtime_facts(obj: Any) -> dict[str, Any]:
    """What a loaded model object says about how it runs (attribute names the product may use:
    the harness records whichever exist and does not depend on any of them)."""
    out: dict[str, Any] = {}
    for name in ("runtime", "image_runtime", "image_backend", "backend", "engine", "provider", "variant",
                 "precision", "dtype", "device"):
        value = getattr(obj, name, None)
        if value is None or callable(value):
            continue
        describe = getattr(value, "describe", None)
        out[name] = describe() if callable(describe) else str(value)
    describe = getattr(obj, "describe", None)
    if callable(describe):
        try:
            out["describe"] = str(describe())
        except TypeError:
            pass
    return out


def clip_phase_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: load CLIP (and the tag vocabulary, embedded before the phase as bench/indexing.py
    does), then time the CLIP phase of an index run with no captions and no text reading."""
    start = time.perf_counter()
    from imgsearch.indexer import index
    from imgsearch.models import Models, freeze_what_loads_make
    from imgsearch.settings import Settings
    from imgsearch.stores import open_stores

    from .child import load_timed
    from .indexing import PhaseClock

    imports_s = time.perf_counter() - start
    home = Path(args["home"])
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings(home=home, **args["settings"])
    freeze_what_loads_make()  # as `imgsearch index` says (cli.options.start_up_done): a process of one run
    models = Models(settings)
    loads = load_timed(models, "clip")
    t = time.perf_counter()
    models.tagger.classes  # noqa: B018 - embedded on first use: a one-off cost, not the phase's
    loads["tagger_load_s"] = time.perf_counter() - t
    # One picture through CLIP first: where the product picks (and, in a fresh home, builds and
    # checks) what runs its image tower at the first picture, that one-off cost is reported here,
    # as the load is, and the phase times the steady state (rclip's session creation is left out
    # of its phase alike). The whole index wall, measured from the CLI, pays it.
    from PIL import Image

    photos = [p for p in Path(args["photos"]).iterdir() if p.suffix.lower() == ".jpg"]
    models.clip.expect(len(photos))  # as index() will: a run this size may build the ONNX tower here
    t = time.perf_counter()
    models.clip.encode_images([Image.new("RGB", (640, 480), (90, 120, 150))])
    loads["first_picture_s"] = time.perf_counter() - t
    clock = PhaseClock()
    with open_stores(settings, models.facts(), models.clip.dim) as stores:
        report = index([Path(args["photos"])], stores, models, captions=False, texts=False, progress=clock)
    if report.embedded != args["expected"] or report.skipped:
        raise RuntimeError(f"embedded {report.embedded} of {args['expected']}, skipped {report.skipped[:3]}")
    phase = clock.phases["vectors"]
    return {"images": report.embedded, "imports_s": imports_s, **loads, "phase_s": phase["seconds"],
            "img_s": report.embedded / phase["seconds"], "runtime": models.runtime.describe(),
            "clip": runtime_facts(models.clip), "facts": models.facts(),
            "threads": _torch_threads(), "decode_workers": settings.decode_workers, "batch_size": settings.batch_size}


def _torch_threads() -> int | None:
    if "torch" not in sys.modules:
        return None
    return int(sys.modules["torch"].get_num_threads())


def warm_query_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: the query without rerank, many times in one loaded process (the product's
    default hybrid mode, and vector mode, interleaved), after two untimed calls."""
    from imgsearch.models import Models
    from imgsearch.searcher import search
    from imgsearch.searcher.request import HYBRID, VECTOR
    from imgsearch.settings import Settings
    from imgsearch.stores import open_stores

    settings = Settings(home=Path(args["home"]), **args["settings"])
    models = Models(settings)
    t = time.perf_counter()
    models.clip  # noqa: B018
    load_s = time.perf_counter() - t
    times: dict[str, list[float]] = {HYBRID: [], VECTOR: []}
    with open_stores(settings, models.facts(), models.clip.dim) as stores:
        for mode in (HYBRID, VECTOR):
            search(QUERY, stores, models, limit=10, rerank_k=0, mode=mode)
        for i in range(args["calls"]):
            for mode in (HYBRID, VECTOR) if i % 2 == 0 else (VECTOR, HYBRID):
                t = time.perf_counter()
                hits = search(QUERY, stores, models, limit=10, rerank_k=0, mode=mode)
                times[mode].append(time.perf_counter() - t)
    return {"hybrid_p50_s": statistics.median(times[HYBRID]), "vector_p50_s": statistics.median(times[VECTOR]),
            "calls": args["calls"], "hits": len(hits), "clip_load_s": load_s, "clip": runtime_facts(models.clip)}


def gemm_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: this CPU's GEMM rate, GFLOP/s (2·M·K·N / median seconds), on the shape of ViT-B's
    MLP (32 pictures × 65 tokens, 768 → 3072) with every thread: torch fp32 (bf16 too where the
    CPU has it fast), ONNX Runtime fp32 MatMul and int8 MatMulInteger (u8 × s8, its dynamic
    quantization's kernel) where onnx is installed."""
    import numpy as np
    import torch

    m, k, n = 32 * 65, 768, 3072
    iters = int(args.get("iters", 12))
    flop = 2.0 * m * k * n

    def rate(fn: Callable[[], object]) -> float:
        for _ in range(2):
            fn()
        times = []
        for _ in range(iters):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return flop / statistics.median(times) / 1e9

    a, b = torch.randn(m, k), torch.randn(k, n)
    out: dict[str, Any] = {"shape": [m, k, n], "threads": torch.get_num_threads(), "iters": iters}
    with torch.inference_mode():
        out["torch_fp32"] = rate(lambda: torch.mm(a, b))
        from imgsearch.models.runtime import onednn_has_bf16

        if onednn_has_bf16():
            a16, b16 = a.bfloat16(), b.bfloat16()
            out["torch_bf16"] = rate(lambda: torch.mm(a16, b16))
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return out
    rng = np.random.default_rng(0)
    for name, a_type, b_arr, op, out_type in (
            ("ort_fp32", TensorProto.FLOAT, rng.standard_normal((k, n), dtype=np.float32), "MatMul", TensorProto.FLOAT),
            ("ort_int8", TensorProto.UINT8, rng.integers(-127, 128, (k, n), dtype=np.int8), "MatMulInteger",
             TensorProto.INT32)):
        graph = helper.make_graph(
            [helper.make_node(op, ["a", "b"], ["y"])], name, [helper.make_tensor_value_info("a", a_type, [m, k])],
            [helper.make_tensor_value_info("y", out_type, [m, n])], [numpy_helper.from_array(b_arr, "b")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = min(model.ir_version, 9)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        x = (rng.standard_normal((m, k), dtype=np.float32) if a_type == TensorProto.FLOAT
             else rng.integers(0, 256, (m, k), dtype=np.uint8))
        out[name] = rate(lambda: session.run(None, {"a": x}))
    out["onnx"] = onnx.__version__
    out["onnxruntime"] = ort.__version__
    return out


# ---- a whole side-by-side run --------------------------------------------------------------------------

def ensure_peer_photos(folder: Path, spec: PeerPhotos) -> Path:
    """make_photos.py's deterministic JPEGs (it keeps what is there and fills in the rest)."""
    where = folder / spec.folder_name
    subprocess.run([sys.executable, str(PEERS_DIR / "make_photos.py"), str(where), str(spec.count), str(spec.width),
                    str(spec.height), str(spec.seed), "--jobs", str(os.cpu_count() or 1)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    files = sorted(where.glob("*.jpg"))
    if len(files) != spec.count:
        raise RuntimeError(f"{where}: {len(files)} pictures, {spec.count} expected")
    return where


def _tree() -> dict[str, Any]:
    """The product's commit and which of its files differ from it: what was measured."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "changed": git("status", "--porcelain", "--", "core", "indexer", "searcher", "cli").splitlines()}


def bare_start() -> float:
    """Seconds for this interpreter to start and exit doing nothing: a floor for any Python CLI."""
    return timed([sys.executable, "-c", "pass"], user_env())["wall_s"]


def measure_side_by_side(
    plan: PeerPlan, profile: str, settings: dict[str, str], out: Path, runner: Runner,
    log: Callable[[str], None], rclip: Rclip | None = None,
) -> dict[str, Any]:
    """Every round: the GEMM rate, then per photo set rclip's index and imgsearch's CLIP phase and
    CLI index (order alternating by round), then on the query set warm queries and cold CLI
    queries of both (alternating). Returns the raw rounds with everything `summarize_side_by_side`
    needs."""
    rclip = rclip or Rclip(rclip_root())
    raw: dict[str, Any] = {"plan": asdict(plan), "profile": profile, "query": QUERY,
                           "rclip_setup": rclip.ensure(log), "photos": [], "rounds": [],
                           "load_average_at_start": list(os.getloadavg()), "tree": _tree()}
    work = out / "work" / "peers"
    folders = {}
    for spec in plan.photo_sets:
        log(f"peers: {spec.count} photos {spec.width}×{spec.height} (make_photos.py, seed {spec.seed})")
        folders[spec.name] = ensure_peer_photos(out / "peer-photos", spec)
        sizes = [p.stat().st_size for p in folders[spec.name].glob("*.jpg")]
        raw["photos"].append({**asdict(spec), "folder": str(folders[spec.name]),
                              "mean_mb": sum(sizes) / len(sizes) / 1e6})
    for r in range(plan.runs):
        forward = r % 2 == 0
        rnd: dict[str, Any] = {"round": r, "sets": {}, "load_average": os.getloadavg()[0], "tree": _tree()}
        log(f"peers: round {r + 1}/{plan.runs}: GEMM rate")
        rnd["gemm"] = runner.run("peer-gemm", {"iters": plan.gemm_iters})
        rnd["bare_start_s"] = statistics.median(bare_start() for _ in range(3))
        for spec in plan.photo_sets:
            photos, base = folders[spec.name], work / spec.name
            got: dict[str, Any] = {}
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("rclip_index", lambda: rclip.index(photos, base / "rclip-data", plan.batch)),
                ("imgsearch_phase", lambda: runner.run("peer-clip-phase", {
                    "settings": settings, "photos": str(photos), "home": str(base / "imgsearch-phase"),
                    "expected": spec.count})),
                ("imgsearch_index", lambda: imgsearch_index_cli(settings, photos, base / "imgsearch-home", spec.count)),
            ]
            # then both again over what they indexed, nothing changed: the everyday re-run
            again: list[tuple[str, Callable[[], Any]]] = [
                ("rclip_reindex", lambda: rclip.index(photos, base / "rclip-data", plan.batch, fresh=False)),
                ("imgsearch_reindex", lambda: imgsearch_index_cli(settings, photos, base / "imgsearch-home",
                                                                  spec.count, fresh=False)),
            ]
            for name, step in (steps if forward else steps[::-1]) + (again if forward else again[::-1]):
                log(f"peers: round {r + 1}: {spec.name}: {name.replace('_', ' ')}")
                got[name] = step()
            got["rclip_session_load_s"] = rclip.session_load(base / "rclip-data")
            rnd["sets"][spec.name] = got
            if r == 0 and spec.name == plan.query_set:
                raw["imgsearch_status"] = imgsearch_status(settings, base / "imgsearch-home")
        base, photos = work / plan.query_set, folders[plan.query_set]
        log(f"peers: round {r + 1}: warm and cold queries")
        warm = [("rclip", lambda: rclip.warm(photos, base / "rclip-data", plan.warm_queries)),
                ("imgsearch", lambda: runner.run("peer-warm-query", {
                    "settings": settings, "home": str(base / "imgsearch-home"), "calls": plan.warm_queries}))]
        rnd["warm"] = {name: fn() for name, fn in (warm if forward else warm[::-1])}
        from .queries import cold_cli

        cold_calls = [("rclip", lambda: timed(rclip.cold_cmd(), rclip.env(base / "rclip-data"), cwd=photos)),
                      ("imgsearch", lambda: cold_cli(settings, base / "imgsearch-home", QUERY))]
        if r == 0:  # page cache, byte-code, first-query writes: what a user's second query finds
            for _, fn in cold_calls:
                fn()
        rnd["cold"] = {"rclip": [], "imgsearch": []}
        for i in range(plan.cold_queries):
            for name, fn in cold_calls if (i + r) % 2 == 0 else cold_calls[::-1]:
                rnd["cold"][name].append({k: v for k, v in fn().items() if k != "stdout"})
        raw["rounds"].append(rnd)
        (out / "peers-raw.json").write_text(json.dumps(raw, indent=1))  # an interrupted run keeps its rounds
    raw["load_average_at_end"] = list(os.getloadavg())
    return raw


# ---- figures, ratios and targets --------------------------------------------------------------------------

@dataclass(frozen=True)
class PeerTarget:
    key: str
    figure: str
    goal: str
    threshold: float | None  # None: measured beside the targets, with none of its own
    higher_is_better: bool
    ratio: str  # how the ratio is formed


PEER_TARGETS = (
    PeerTarget("clip_640x480", "CLIP phase, 640×480 photos", "≥ 2×", 2.0, True, "imgsearch img/s / rclip img/s"),
    PeerTarget("clip_12mp", "CLIP phase, 12 MP photos", "≥ 3×", 3.0, True, "imgsearch img/s / rclip img/s"),
    PeerTarget("index_640x480", "whole `index --no-captions` wall, 640×480 photos", "≥ 1.5×", 1.5, True,
               "rclip s / imgsearch s"),
    PeerTarget("index_12mp", "whole `index --no-captions` wall, 12 MP photos", "≥ 1.5×", 1.5, True,
               "rclip s / imgsearch s"),
    PeerTarget("reindex_640x480", "`index` again, nothing changed, 640×480 photos", "–", None, True,
               "rclip s / imgsearch s"),
    PeerTarget("reindex_12mp", "`index` again, nothing changed, 12 MP photos", "–", None, True,
               "rclip s / imgsearch s"),
    PeerTarget("warm_query", "warm query, no rerank (p50)", "≤ 0.5×", 0.5, False, "imgsearch s / rclip s"),
    PeerTarget("cold_query", "cold `query --no-rerank` from a shell", "≤ 1.0×", 1.0, False, "imgsearch s / rclip s"),
)


def _status(value: float | None, t: PeerTarget) -> str:
    if t.threshold is None:
        return "no target"
    if value is None:
        return "not measured"
    return "reached" if (value >= t.threshold if t.higher_is_better else value <= t.threshold) else "missed"


def summarize_side_by_side(raw: dict[str, Any]) -> dict[str, Any]:
    """Per-round figures of both tools, per-round ratios and their medians, the targets judged on
    those medians (a smoke run judges none), and the physical bounds from the GEMM rates."""
    rounds, plan = raw["rounds"], raw["plan"]
    smoke = plan.get("smoke", False)
    arch = ARCHS.get("ViT-B-32-256") if raw["profile"] != "tiny" else None
    figures: dict[str, dict[str, Any]] = {}

    def both(key: str, rclip_vals: list[float], img_vals: list[float], ratio_vals: list[float],
             unit: str) -> None:
        figures[key] = {"rclip": summarize(rclip_vals), "imgsearch": summarize(img_vals),
                        "ratio": summarize(ratio_vals), "unit": unit}

    gemm = {name: summarize([r["gemm"][name] for r in rounds if name in r["gemm"]])
            for name in ("torch_fp32", "torch_bf16", "ort_fp32", "ort_int8") if any(name in r["gemm"] for r in rounds)}
    for spec in plan["photo_sets"]:
        name = spec["name"]
        sets = [r["sets"][name] for r in rounds if name in r["sets"]]
        rc = [s["rclip_index"]["images_per_s"] for s in sets]
        im = [s["imgsearch_phase"]["img_s"] for s in sets]
        # rclip's session creation, measured in a process of its own, taken out of its phase; a
        # round where that leaves nothing (a few pictures, a busy machine) is not compared
        kept = [(s["rclip_index"]["images_indexed"] / (s["rclip_index"]["index_s"] - s["rclip_session_load_s"]), i)
                for s, i in zip(sets, im) if s["rclip_index"]["index_s"] > s["rclip_session_load_s"]]
        rc_phase = [r for r, _ in kept]
        both(f"clip_{name}", rc_phase, im, ratios([i for _, i in kept], rc_phase), "img/s")
        figures[f"clip_{name}"]["rclip_as_reported"] = summarize(rc)
        figures[f"clip_{name}"]["ratio_to_rclip_as_reported"] = summarize(ratios(im, rc))
        figures[f"clip_{name}"]["rclip_session_load_s"] = summarize([s["rclip_session_load_s"] for s in sets])
        figures[f"clip_{name}"]["images"] = spec["count"]
        rw = [s["rclip_index"]["index_wall_s"] for s in sets]
        iw = [s["imgsearch_index"]["index_wall_s"] for s in sets]
        both(f"index_{name}", rw, iw, ratios(rw, iw), "s")
        figures[f"index_{name}"]["images"] = spec["count"]
        figures[f"index_{name}"]["peak_rss_mb"] = {
            "rclip": summarize([s["rclip_index"]["peak_rss_mb"] for s in sets]),
            "imgsearch": summarize([s["imgsearch_index"]["peak_rss_mb"] for s in sets])}
        again = [s for s in sets if "imgsearch_reindex" in s]
        if again:
            rw = [s["rclip_reindex"]["index_wall_s"] for s in again]
            iw = [s["imgsearch_reindex"]["index_wall_s"] for s in again]
            both(f"reindex_{name}", rw, iw, ratios(rw, iw), "s")
        figures[f"index_{name}"]["imgsearch_loads_s"] = summarize(
            [s["imgsearch_phase"]["clip_load_s"] for s in sets])
        figures[f"clip_{name}"]["imgsearch_first_picture_s"] = summarize(
            [s["imgsearch_phase"].get("first_picture_s", 0.0) for s in sets])
    rw = [r["warm"]["rclip"]["warm_query_median_s"] for r in rounds]
    iw = [r["warm"]["imgsearch"]["hybrid_p50_s"] for r in rounds]
    both("warm_query", rw, iw, ratios(iw, rw), "s")
    iv = [r["warm"]["imgsearch"]["vector_p50_s"] for r in rounds]
    figures["warm_query"]["imgsearch_vector"] = summarize(iv)
    figures["warm_query"]["ratio_vector"] = summarize(ratios(iv, rw))
    pairs = [(i["wall_s"], c["wall_s"]) for r in rounds for i, c in zip(r["cold"]["imgsearch"], r["cold"]["rclip"])]
    both("cold_query", [c for _, c in pairs], [i for i, _ in pairs], [i / c for i, c in pairs], "s")
    figures["cold_query"]["peak_rss_mb"] = {
        tool: summarize([c["peak_rss_mb"] for r in rounds for c in r["cold"][tool]]) for tool in ("rclip", "imgsearch")}
    figures["cold_query"]["bare_python_start_s"] = summarize([r["bare_start_s"] for r in rounds])

    bounds = _bounds(arch, gemm, raw, figures)
    targets = []
    for t in PEER_TARGETS:
        value = figures.get(t.key, {}).get("ratio", {}).get("median")
        targets.append({**asdict(t), "value": figures.get(t.key, {}).get("ratio"),
                        "status": "not measured" if smoke else _status(value, t)})
    runtimes = sorted({s["imgsearch_phase"]["runtime"] for r in rounds for s in r["sets"].values()})
    clip_facts = next((s["imgsearch_phase"].get("clip") for r in rounds for s in r["sets"].values()), {})
    status = raw.get("imgsearch_status", {})
    return {"peer": "rclip", "rclip": raw["rclip_setup"], "profile": raw["profile"], "smoke": smoke,
            "runs": len(rounds), "warm_queries": plan["warm_queries"], "cold_queries": plan["cold_queries"],
            "query": raw["query"], "photos": raw["photos"], "figures": figures,
            "targets": targets, "gemm_gflops": gemm, "bounds": bounds,
            "imgsearch_runtime": {"runtime": runtimes, "clip": clip_facts,
                                  "status_models": status.get("models"),
                                  **{k: v for k, v in status.items() if "runtime" in k or "backend" in k}},
            "load_average": {"start": raw.get("load_average_at_start"), "end": raw.get("load_average_at_end"),
                             "rounds": [r["load_average"] for r in rounds]},
            "tree": [json.loads(t) for t in sorted({json.dumps(r.get("tree", raw.get("tree", {})), sort_keys=True)
                                                    for r in rounds})],
            "notes": plan.get("notes", [])}


def _bounds(arch: ClipArch | None, gemm: dict[str, Summary], raw: dict[str, Any],
            figures: dict[str, Any]) -> dict[str, Any]:
    """Arithmetic alone at the measured GEMM rates: pictures/s of the image tower, seconds of the
    index's arithmetic, ms of the text tower at the query's tokens (imgsearch stops at the
    end-of-text token; rclip's ONNX graph runs all 77)."""
    if arch is None:
        return {}
    per_picture = image_flops(arch)
    tokens = query_tokens(raw["query"])
    out: dict[str, Any] = {"model": "ViT-B-32-256", "image_gflop": per_picture / 1e9,
                           "text_gflop_query_tokens": text_flops(arch, tokens) / 1e9, "query_tokens": tokens,
                           "text_gflop_77": text_flops(arch, arch.context) / 1e9, "rates": {}}
    for name, rate in gemm.items():
        g = rate["median"]
        if not g:
            continue
        entry = {"gflops": g, "img_s": g * 1e9 / per_picture,
                 "query_text_ms": 1e3 * text_flops(arch, tokens) / (g * 1e9),
                 "text_77_ms": 1e3 * text_flops(arch, arch.context) / (g * 1e9)}
        for spec in raw["plan"]["photo_sets"]:
            entry[f"index_{spec['name']}_s"] = spec["count"] * per_picture / (g * 1e9)
            rc = figures.get(f"clip_{spec['name']}", {}).get("rclip", {}).get("median")
            if rc:
                entry[f"ceiling_vs_rclip_{spec['name']}"] = entry["img_s"] / rc
        out["rates"][name] = entry
    return out


# ---- markdown ------------------------------------------------------------------------------------------

MARK = {"reached": "✅", "missed": "❌", "not measured": "➖", "no target": ""}


def _fmt_unit(s: Summary | None, unit: str) -> str:
    if not s or s.get("median") is None:
        return "–"
    if unit == "s" and s["median"] < 1:
        scaled = {k: (v * 1e3 if isinstance(v, float) else v) for k, v in s.items() if k != "runs"}
        return fmt(scaled, 0 if s["median"] >= 0.1 else 1) + " ms"
    return fmt(s, 1 if unit == "img/s" or s["median"] >= 10 else 2) + f" {unit}"


def side_by_side_section(results: dict[str, Any]) -> list[str]:
    """bench.md's "Side by side with rclip" section (nothing when the run had no --peers)."""
    block = results.get("side_by_side")
    if not block:
        return []
    bounds, figures = block["bounds"], block["figures"]
    rates = bounds.get("rates", {})
    fp32 = rates.get("torch_fp32", {})
    best_name = max(rates, key=lambda n: rates[n]["gflops"]) if rates else None
    best = rates.get(best_name, {}) if best_name else {}
    photos = {p["name"]: p for p in block["photos"]}

    def bound(t: PeerTarget) -> str:
        if not fp32:
            return "–"
        name = t.key.split("_", 1)[-1]
        bare = f"bare `python -c pass` {1e3 * figures['cold_query']['bare_python_start_s']['median']:.0f} ms"
        if t.key.startswith("clip_"):
            return (f"{fp32['img_s']:.1f} img/s at fp32 torch ({fp32.get(f'ceiling_vs_rclip_{name}', 0):.2f}× rclip)"
                    + (f"; {best['img_s']:.1f} img/s at {best_name} ({best.get(f'ceiling_vs_rclip_{name}', 0):.2f}×)"
                       if best_name != "torch_fp32" else ""))
        if t.key.startswith("reindex_"):
            return bare
        if t.key.startswith("index_"):
            return (f"{fp32[f'index_{name}_s']:.1f} s of arithmetic at fp32"
                    + (f", {best[f'index_{name}_s']:.1f} s at {best_name}" if best_name != "torch_fp32" else ""))
        if t.key == "warm_query":
            return (f"text tower {fp32['query_text_ms']:.0f} ms at {bounds['query_tokens']} tokens "
                    f"({fp32['text_77_ms']:.0f} ms at 77, as rclip runs it), fp32")
        return f"{bare} + text tower {fp32['query_text_ms']:.0f} ms"

    lines = ["## Side by side with rclip", ""]
    rc = block["rclip"]
    lines += [f"rclip {rc['versions'].get('rclip')} (ONNX Runtime {rc['versions'].get('onnxruntime')}, fp32, "
              f"random-weight ONNX of its {rc['model']} graph, set up by ../shared/peers/rclip/setup.sh) and "
              f"imgsearch's `{block['profile']}` profile "
              f"({'the bundled tiny models' if block['profile'] == 'tiny' else 'random base-size weights of the real architectures: ViT-B-32-256 too'}), "
              f"on the same pictures in the same sitting: {block['runs']} round(s), each running every "
              "measurement of both tools, their order alternating by round; each ratio is taken round by "
              "round (cold queries: pair by pair), median (min–max) shown. imgsearch runtime, as it chose it: "
              f"{', '.join(block['imgsearch_runtime']['runtime']) or '?'}"
              + (f"; its CLIP reports {_facts(block['imgsearch_runtime']['clip'])}" if block["imgsearch_runtime"]["clip"] else "")
              + ".", ""]
    lines += [f"> {n}" for n in block.get("notes", [])] + ([""] if block.get("notes") else [])
    rows = []
    for t in PEER_TARGETS:
        f = figures.get(t.key)
        if f is None:
            continue
        target = next(x for x in block["targets"] if x["key"] == t.key)
        ratio = fmt(f["ratio"], 2) + " ×" if f["ratio"]["median"] is not None else "–"
        rows.append([t.figure, _fmt_unit(f["rclip"], f["unit"]), _fmt_unit(f["imgsearch"], f["unit"]),
                     f"{ratio} ({t.ratio})", t.goal, MARK[target["status"]], bound(t)])
    lines += _table(["figure", "rclip", "imgsearch", "ratio", "target", "", "physical bound (measured GEMM rate × FLOPs)"],
                    rows)
    details = []
    for name, p in photos.items():
        clip, idx = figures.get(f"clip_{name}"), figures.get(f"index_{name}")
        if not clip:
            continue
        details.append(f"- {p['count']} photos {p['width']}×{p['height']} ({p['mean_mb']:.2f} MB each, "
                       f"make_photos.py seed {p['seed']}): rclip's own `images_per_s` "
                       f"{fmt(clip['rclip_as_reported'], 1)} img/s counts its visual session creation "
                       f"({fmt(clip['rclip_session_load_s'], 2)} s, decode_floor.py) inside the phase; the ratio "
                       f"above leaves it out (with it: {fmt(clip['ratio_to_rclip_as_reported'], 2)} ×); imgsearch's "
                       f"phase leaves out its CLIP load ({fmt(figures[f'index_{name}']['imgsearch_loads_s'], 1)} s) "
                       f"and its first picture ({fmt(clip.get('imgsearch_first_picture_s'), 1)} s: where the "
                       "product picks, builds and checks its image tower's runtime in a fresh home). Peak RSS "
                       f"of the whole index: rclip {fmt(idx['peak_rss_mb']['rclip'], 0)} MB, imgsearch "
                       f"{fmt(idx['peak_rss_mb']['imgsearch'], 0)} MB.")
    warm, cold = figures["warm_query"], figures["cold_query"]
    details.append(f"- Warm query: rclip's `search()` (bench_rclip.py `query`, median of "
                   f"its {block.get('warm_queries', '')} warm calls: text ONNX session, all 77 tokens, every vector read from SQLite) against "
                   f"imgsearch's `search(..., rerank_k=0)` in the default hybrid mode (CLIP + full text); vector "
                   f"mode alone: {_fmt_unit(warm['imgsearch_vector'], 's')} ({fmt(warm['ratio_vector'], 2)} × rclip). "
                   f"Same query both: \"{block['query']}\".")
    details.append(f"- Cold query: `rclip -n -f -t 10 QUERY` (run.sh's) against `imgsearch query QUERY --no-rerank "
                   f"--json`, each a new process from a shell, after one untimed call each; peak RSS rclip "
                   f"{fmt(cold['peak_rss_mb']['rclip'], 0)} MB, imgsearch {fmt(cold['peak_rss_mb']['imgsearch'], 0)} MB.")
    details.append("- Whole index: rclip = a fresh `bench_rclip.py index` process (interpreter start, import, "
                   "`init_rclip`: the call rclip's CLI makes) less its one query; imgsearch = `imgsearch index "
                   "PHOTOS --no-captions --no-ocr --json` into a fresh home (imports, CLIP load, the text tower's "
                   "ONNX export, the tag vocabulary, the phase). `index` again: the same two commands once "
                   "more over what they indexed, nothing changed (a scan and a comparison with the catalog).")
    if bounds:
        g = ", ".join(f"{n.replace('_', ' ')} {fmt(block['gemm_gflops'][n], 0)}" for n in block["gemm_gflops"])
        lines += details + ["", f"Physical bound: GEMM rate measured in every round ({g} GFLOP/s; "
                            "32×65 × 768 → 3072, ViT-B's MLP shape, every thread; int8 counts multiply-adds as two "
                            f"operations like the others) × FLOPs: {bounds['image_gflop']:.2f} GFLOP per picture "
                            f"for ViT-B-32 at 256 px (65 tokens), {bounds['text_gflop_query_tokens']:.2f} GFLOP for "
                            f"the text tower at {bounds['query_tokens']} tokens, {bounds['text_gflop_77']:.2f} at 77. "
                            "Decoding and resizing the JPEGs come on top (12 MP: draft decoding)."]
    else:
        lines += details
    changed = sorted({c for t in block.get("tree", []) for c in t.get("changed", [])})
    if block.get("tree"):
        lines += ["", f"Product measured: commit {', '.join(sorted({t.get('commit', '?') for t in block['tree']}))}"
                  + (f", with uncommitted changes in {', '.join(c.split()[-1] for c in changed)}" if changed else "")
                  + "."]
    la = block["load_average"]
    end = f", at the end {la['end'][0]:.2f}" if la.get("end") else ""
    lines += ["", f"Load average (1 min) at the start {la['start'][0]:.2f}, per round "
              f"{', '.join(f'{x:.2f}' for x in la['rounds'])}{end} (2 CPUs: above 2, other work ran beside "
              "these measurements).", ""]
    return lines


def _facts(facts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in facts.items())


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]
