"""`python -m bench.image_runtime OUT [--photos N] [--rounds R] [--profiles tiny,default]`: CLIP's
image tower by torch fp32, ONNX Runtime fp32 and ONNX Runtime int8 (`imgsearch.models.image_export`)
on photo-like 640x480 JPEGs, and how far each variant's vectors are from torch fp32's.

The photos come from `shared/peers/make_photos.py` (what the peers' benches index), decoded and
preprocessed once by the product's own path (`imaging.decode`, `clip.preprocess`): only the tower
is timed, batch by batch (the product's batch size), the three variants interleaved in every round
so that a busy machine slows them alike; throughput is reported as the median over rounds and the
ratios to torch fp32 are computed round by round. `default` is the base-size architecture
(ViT-B-32-256) with random weights (`bench.weights`): speed does not depend on weight values, but
int8's error does, so its cosine here says what the check does, not what real weights give (the
product checks every model's own weights when it builds the export).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

PEERS = Path(__file__).resolve().parents[2] / "shared" / "peers" / "make_photos.py"
VARIANTS = ("torch", "onnx", "onnx-int8")


def photos(folder: Path, count: int, width: int = 640, height: int = 480, seed: int = 1) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(PEERS), str(folder), str(count), str(width), str(height), str(seed)],
                   check=True, stdout=subprocess.DEVNULL)
    return sorted(folder.glob("*.jpg"))[:count]


def measure(profile: str, out: Path, files: list[Path], rounds: int, batch: int) -> dict[str, Any]:
    import torch
    from imgsearch.imaging import decode
    from imgsearch.models import Models
    from imgsearch.models.image_export import ensure_image_export, top_k_agreement
    from imgsearch.models.onnx_image import VARIANTS as FILES
    from imgsearch.models.onnx_image import OnnxImageTower, export_folder
    from imgsearch.settings import Settings

    overrides: dict[str, Any] = {}
    if profile == "default":
        from imgsearch.models.random_base import base_overrides, write_random_base

        weights = out / "weights"
        if not (weights / "open_clip_model.safetensors").exists():
            write_random_base(weights)
        overrides = base_overrides(weights)
    settings = Settings(home=out / f"home-{profile}", models=profile, dtype="float32", image_runtime="torch",
                        **overrides)
    clip = Models(settings).clip
    t0 = time.perf_counter()
    meta = ensure_image_export(clip, settings.index_dir)
    build_s = time.perf_counter() - t0
    pixels = torch.stack([clip.preprocess(decode(p.read_bytes(), min_side=clip.image_size).image) for p in files])
    def onnx(file: str) -> Any:
        session = OnnxImageTower(export_folder(settings.index_dir) / file)
        return lambda x: session(x.numpy())

    towers = {"torch": clip.encode_pixels,  # image_runtime=torch: the model itself, fp32
              **{name: onnx(f) for name, f in FILES.items()}}
    for tower in towers.values():  # warm-up: oneDNN's kernels, onnxruntime's buffers
        tower(pixels[:batch])
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    vectors: dict[str, np.ndarray] = {}
    for r in range(rounds):
        for name in (VARIANTS if r % 2 == 0 else VARIANTS[::-1]):
            t = time.perf_counter()
            got = [towers[name](pixels[i:i + batch]) for i in range(0, len(pixels), batch)]
            times[name].append(time.perf_counter() - t)
            vectors[name] = np.concatenate(got)
    n = len(pixels)
    rows = {}
    for name in VARIANTS:
        cos = (vectors[name] * vectors["torch"]).sum(1)
        ratios = [times["torch"][i] / times[name][i] for i in range(rounds)]
        rows[name] = {"img_s": [n / t for t in times[name]], "img_s_median": n / statistics.median(times[name]),
                      "vs_torch": ratios, "vs_torch_median": statistics.median(ratios),
                      "cos_min": float(cos.min()), "cos_mean": float(cos.mean()),
                      "top10": top_k_agreement(vectors["torch"], vectors[name]),
                      "admitted_at_build": meta["variants"].get(name, {}).get("admitted") if name != "torch" else None,
                      "build_check": meta["variants"].get(name, {}).get("why") if name != "torch" else None}
    return {"profile": profile, "clip_model": clip.model_id, "photos": n, "batch": batch, "rounds": rounds,
            "image_size": clip.image_size, "export_build_s": build_s, "variants": rows}


def machine() -> dict[str, Any]:
    import onnxruntime
    import torch
    from imgsearch.models.runtime import cpu_has_fast_bf16

    from .machine import cpuinfo

    model, flags, _ = cpuinfo()
    return {"cpu": model, "cpus": os.cpu_count(), "avx2": "avx2" in flags,
            "vnni": sorted(f for f in flags if "vnni" in f), "bf16": sorted(f for f in flags if "bf16" in f),
            "fast_bf16": cpu_has_fast_bf16(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "torch_threads": torch.get_num_threads(), "load_avg": os.getloadavg()}


def to_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [(f"CPU: {m['cpu']}, {m['cpus']} CPUs, AVX2 {'yes' if m['avx2'] else 'no'}, VNNI: "
              f"{', '.join(m['vnni']) or 'none'}, bf16: {', '.join(m['bf16']) or 'none'} (fast bf16: "
              f"{'yes' if m['fast_bf16'] else 'no'}); torch {m['torch']} ({m['torch_threads']} threads), "
              f"onnxruntime {m['onnxruntime']}; load average at start {m['load_avg'][0]:.2f}, at the end "
              f"{result['load_avg_end'][0]:.2f}."), "",
             ("| profile | runtime | img/s (median, min–max) | × torch fp32 (median, min–max) | cosine to torch fp32 "
              "(min / mean) | top-10 agreement | admitted at build |"),
             "|---|---|---|---|---|---|---|"]
    for p in result["profiles"]:
        for name, v in p["variants"].items():
            lines.append(
                f"| {p['profile']} ({p['photos']} photos, batch {p['batch']}, {p['rounds']} rounds) | {name} | "
                f"{v['img_s_median']:.1f} ({min(v['img_s']):.1f}–{max(v['img_s']):.1f}) | "
                f"{v['vs_torch_median']:.2f} ({min(v['vs_torch']):.2f}–{max(v['vs_torch']):.2f}) | "
                f"{v['cos_min']:.5f} / {v['cos_mean']:.5f} | {v['top10']:.3f} | "
                f"{'–' if v['admitted_at_build'] is None else ('yes' if v['admitted_at_build'] else 'no')} |")
    lines.append("")
    for p in result["profiles"]:
        lines.append(f"- {p['profile']}: export, quantization and admission check took {p['export_build_s']:.0f} s "
                     f"(once per model and index).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--photos", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--profiles", default="tiny,default")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    files = photos(args.out / "photos-640x480", args.photos)
    result: dict[str, Any] = {"machine": machine(), "profiles": []}
    for profile in args.profiles.split(","):
        result["profiles"].append(measure(profile, args.out, files, args.rounds, args.batch))
        print(json.dumps({k: v for k, v in result["profiles"][-1].items()}, default=str)[:2000], flush=True)
    result["load_avg_end"] = os.getloadavg()
    (args.out / "image_runtime.json").write_text(json.dumps(result, indent=1))
    (args.out / "image_runtime.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
