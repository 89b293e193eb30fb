"""The cold CLI query from a shell, side by side with rclip: `python -m bench.cold_query OUT_DIR`.

Each round runs, in a new process each and in turn (so a busy machine slows all alike):
`imgsearch query --no-rerank "a red circle" --json` on the bundled `tiny` profile, the same on
the `default` profile with the harness's random base-size weights (`--weights FOLDER`, as
`bench/weights.py` writes them; left out without one), and rclip's own cold query
(`rclip -n -f -t 10 QUERY`, set up by ../shared/peers/rclip/setup.sh) over the same pictures.
Reported: the median (min–max) wall time of each over the rounds, the median of the per-round
ratios imgsearch / rclip, and, from one extra run under `python -X importtime`, the imports that
cost most on the cold path. Not a test: it asserts nothing; it writes OUT_DIR/cold_query.json.

The first call of each (not counted) only fills the OS page cache and writes the byte-code, and
lets imgsearch write what a user's first query writes (e.g. the optimized ONNX graph)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from statistics import median
from typing import Any

from .child import child_env, timed
from .peers import rclip_root

TEXT = "a red circle"
PEERS = Path(__file__).resolve().parents[1].parent / "shared" / "peers" / "rclip"


def imgsearch_cmd(home: Path, profile: str, text: str, *, importtime: bool = False) -> list[str]:
    return [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "imgsearch.cli.app", "query",
            "--no-rerank", text, "--models", profile, "--home", str(home), "--json"]


def imgsearch_env(weights: Path | None) -> dict[str, str]:
    env = child_env()
    if "OPENBLAS_NUM_THREADS" not in os.environ:  # a user's shell would not have it
        del env["OPENBLAS_NUM_THREADS"]
    if weights is not None:
        from imgsearch.models.random_base import base_overrides

        env.update({f"IMGSEARCH_{k.upper()}": v for k, v in base_overrides(weights).items()})
    return env


def ensure_index(pictures: Path, home: Path, profile: str, env: dict[str, str]) -> None:
    if (home / f"imgsearch-{profile}" / "text-encoder" / "meta.json").exists():
        return
    subprocess.run([sys.executable, "-m", "imgsearch.cli.app", "index", str(pictures), "--models", profile,
                    "--home", str(home), "--no-captions", "--no-ocr", "--json"], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def rclip_setup(pictures: Path, root: Path) -> tuple[list[str], dict[str, str]] | None:
    """rclip's cold query command and environment over `pictures`, indexed once (None: no peer)."""
    exe = root / "venv" / "bin" / "rclip"
    models = root / "models"
    if not exe.exists() or not (models / "ViT-B-32-256-datacomp_s34b_b86k" / "textual.onnx").exists():
        return None
    data = root / "runs" / "cold-query"
    if not (data / "db.sqlite3").exists():
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        for name in ("ViT-B-32-256-datacomp_s34b_b86k", "tokenizer"):
            (data / name).symlink_to(models / name)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RCLIP_")},
           "RCLIP_DATADIR": str(data), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    subprocess.run([str(exe), "-f", "-t", "10", TEXT], env=env, cwd=pictures, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # indexes, if not yet
    return [str(exe), "-n", "-f", "-t", "10", TEXT], env


def import_costs(cmd: list[str], env: dict[str, str], top: int = 15) -> list[dict[str, Any]]:
    """The most expensive imports of one run (`-X importtime`): cumulative ms of each module
    imported at the first or second level of nesting."""
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m[3]) <= 3:
            rows.append({"module": m[4], "depth": (len(m[3]) - 1) // 2, "cumulative_ms": int(m[2]) / 1000})
    rows.sort(key=lambda r: -r["cumulative_ms"])
    return rows[:top]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": median(values), "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--pictures", type=Path, help="pictures to index (default: `imgsearch example` ones)")
    ap.add_argument("--weights", type=Path, help="random base-size weights (bench/weights.py) for `default`")
    ap.add_argument("--rclip-root", type=Path,
                    default=rclip_root())
    ap.add_argument("--fresh", action="store_true", help="remove OUT_DIR/home first (a new index)")
    args = ap.parse_args(argv)
    out = args.out.absolute()
    home = out / "home"
    if args.fresh:
        shutil.rmtree(home, ignore_errors=True)
    pictures = args.pictures or out / "pictures"
    if not pictures.exists():
        subprocess.run([sys.executable, "-m", "imgsearch.cli.app", "example", str(pictures)], check=True,
                       stdout=subprocess.DEVNULL)

    runs: dict[str, tuple[list[str], dict[str, str], Path | None]] = {}
    for profile, weights in (("tiny", None), ("default", args.weights)):
        if profile == "default" and weights is None:
            continue
        env = imgsearch_env(weights)
        ensure_index(pictures, home, profile, env)
        runs[f"imgsearch {profile}"] = (imgsearch_cmd(home, profile, TEXT), env, None)
    peer = rclip_setup(pictures.absolute(), args.rclip_root)
    if peer is not None:
        runs["rclip"] = (peer[0], peer[1], pictures.absolute())

    for cmd, env, cwd in runs.values():  # page cache, byte-code, first-query writes
        timed(cmd, env, cwd)
    load = [os.getloadavg()[0]]
    walls: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for i in range(args.rounds):
        order = list(runs) if i % 2 == 0 else list(reversed(runs))
        for name in order:
            walls[name].append(timed(*runs[name]))
        print(f"round {i + 1}: " + ", ".join(f"{n} {walls[n][-1]['wall_s']:.2f} s" for n in runs), flush=True)
    load.append(os.getloadavg()[0])

    result: dict[str, Any] = {"text": TEXT, "rounds": args.rounds, "load_avg_1min": load,
                              "cpu": _cpu(), "tools": {}, "ratio_to_rclip": {}, "cpu_ratio_to_rclip": {}, "imports": {}}
    for name, calls in walls.items():
        result["tools"][name] = {"wall_s": summary([c["wall_s"] for c in calls]),
                                 "cpu_s": summary([c["cpu_s"] for c in calls]),
                                 "peak_rss_mb": summary([c["peak_rss_mb"] for c in calls]),
                                 "runs": [round(c["wall_s"], 3) for c in calls]}
        if "rclip" in walls and name != "rclip":
            result["ratio_to_rclip"][name] = summary(
                [c["wall_s"] / r["wall_s"] for c, r in zip(calls, walls["rclip"])])
            result["cpu_ratio_to_rclip"][name] = summary(
                [c["cpu_s"] / r["cpu_s"] for c, r in zip(calls, walls["rclip"])])
    for name, (cmd, env, _) in runs.items():
        if name.startswith("imgsearch"):
            profile = name.split()[1]
            result["imports"][name] = import_costs(imgsearch_cmd(home, profile, TEXT, importtime=True), env)
    (out / "cold_query.json").write_text(json.dumps(result, indent=1))
    for name, t in result["tools"].items():
        w = t["wall_s"]
        ratio = result["ratio_to_rclip"].get(name)
        cpu, cpu_ratio = t["cpu_s"], result["cpu_ratio_to_rclip"].get(name)
        print(f"{name}: wall {w['median']:.2f} ({w['min']:.2f}–{w['max']:.2f}) s"
              + (f" (/ rclip {ratio['median']:.2f}×)" if ratio else "")
              + f", CPU {cpu['median']:.2f} ({cpu['min']:.2f}–{cpu['max']:.2f}) s"
              + (f" (/ rclip {cpu_ratio['median']:.2f}×)" if cpu_ratio else "")
              + f", peak RSS {t['peak_rss_mb']['median']:.0f} MB")
    for name, rows in result["imports"].items():
        print(f"{name}, costliest imports (ms, cumulative): "
              + ", ".join(f"{r['module']} {r['cumulative_ms']:.0f}" for r in rows[:8]))
    print(f"load average {load[0]:.1f} → {load[1]:.1f}; {result['cpu']}")
    return 0


def _cpu() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    name = re.search(r"model name\s*:\s*(.*)", info)
    bf16 = "avx512_bf16" in info
    return f"{name[1] if name else 'unknown CPU'}, {os.cpu_count()} CPUs, avx512_bf16: {'yes' if bf16 else 'no'}"


if __name__ == "__main__":
    sys.exit(main())
