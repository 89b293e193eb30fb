"""Indexing speed: the product end to end, phase by phase, against a naive baseline.

The product run is `imgsearch.indexer.index` exactly as the CLI calls it (models loaded first, so
model loading is reported on its own and not charged to the phases). The baseline is what one
would write without thinking about speed: full-size PIL decode, open_clip's own preprocessing and
fp32 batched embedding of the same model in one thread of control. Both run in fresh processes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .child import Runner, load_timed, peak_rss_mb

BASELINE_BATCH = 32


class PhaseClock:
    """A `Progress` that times the indexer's phases (vectors, captions) and notes the peak RSS
    reached by the end of each, without drawing anything."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}
        self._current: tuple[str, float, int] | None = None

    def phase(self, name: str, total: int | None) -> None:
        self._close()
        self._current = (name, time.perf_counter(), int(total or 0))

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str | None) -> None:
        pass

    def done(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._current is not None:
            name, start, total = self._current
            self.phases[name] = {"seconds": time.perf_counter() - start, "items": total,
                                 "peak_rss_mb": peak_rss_mb()}
            self._current = None


def torch_facts() -> dict[str, Any]:
    import torch

    from imgsearch.models.runtime import cpu_has_fast_bf16

    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "bf16_fast": cpu_has_fast_bf16()}


def product_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: index args["photos"] into a fresh args["home"] with captions."""
    start = time.perf_counter()
    from imgsearch.indexer import index
    from imgsearch.models import Models
    from imgsearch.settings import Settings
    from imgsearch.stores import open_stores

    imports_s, imports_rss = time.perf_counter() - start, peak_rss_mb()
    settings = Settings(home=Path(args["home"]), **args["settings"])
    models = Models(settings)
    # the phases then time their own work only (the text reader's engine is made on its first read)
    loads = load_timed(models, "clip", "captioner")
    t = time.perf_counter()
    models.tagger.classes  # noqa: B018 - embedded on first use, by the first batch: not the CLIP phase's cost
    loads["tagger_load_s"] = time.perf_counter() - t
    t = time.perf_counter()  # what runs the captioner's vision tower: chosen (its export built) before the phase
    loads["captioner_vision"] = models.captioner.vision.expect(args["expected"])
    loads["captioner_vision_s"] = time.perf_counter() - t
    clip = models.clip
    clock = PhaseClock()
    t = time.perf_counter()
    with open_stores(settings, models.facts(), clip.dim) as stores:
        open_s = time.perf_counter() - t
        t = time.perf_counter()
        report = index([Path(args["photos"])], stores, models, captions=True, progress=clock)
        index_s = time.perf_counter() - t
        captions = [i.caption or "" for i in stores.catalog.get(stores.catalog.vector_ids()).values()]
    if report.skipped or report.embedded != args["expected"] or report.captioned != args["expected"]:
        raise RuntimeError(f"index run went wrong: embedded {report.embedded}, captioned "
                           f"{report.captioned}, skipped {report.skipped[:3]}")
    vec, cap = clock.phases["vectors"], clock.phases["captions"]
    nothing = {"seconds": 0.0, "items": 0}
    text = clock.phases.get("text", nothing)  # tags are made with the vectors: see the tags section
    n = report.embedded
    return {
        **torch_facts(),
        "runtime": models.runtime.describe(),
        "batch_size": settings.batch_size,
        "caption_batch_size": settings.caption_batch_size,
        "decode_workers": settings.decode_workers,
        "images": n,
        "imports_s": imports_s,
        "rss_after_imports_mb": imports_rss,
        **loads,
        "open_stores_s": open_s,
        "index_s": index_s,
        "e2e_img_s": n / index_s,
        "vectors_s": vec["seconds"],
        "vectors_img_s": n / vec["seconds"],
        "captions_s": cap["seconds"],
        "captions_img_s": n / cap["seconds"],
        "text_s": text["seconds"],
        "text_img_s": text["items"] / text["seconds"] if text["seconds"] else None,
        # scan, crash repair and naming the captioner (a local one is hashed) happen between the phases
        "outside_phases_s": index_s - vec["seconds"] - cap["seconds"] - text["seconds"],
        "peak_rss_vectors_mb": vec["peak_rss_mb"],
        "caption_words_mean": sum(len(c.split()) for c in captions) / max(1, len(captions)),
    }


def baseline_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: the naive CLIP embedding loop over args["photos"], same model, fp32."""
    start = time.perf_counter()
    import open_clip
    import torch
    import torch.nn.functional as F
    from imgsearch.models.profiles import resolve_profile
    from imgsearch.settings import Settings
    from PIL import Image

    imports_s = time.perf_counter() - start
    profile = resolve_profile(Settings(home=Path(args["home"]), **args["settings"]))
    t = time.perf_counter()
    model, _, preprocess = open_clip.create_model_and_transforms(
        profile.clip_model, pretrained=profile.clip_pretrained)
    model = model.float().eval()
    load_s = time.perf_counter() - t
    files = sorted(Path(args["photos"]).glob("*.jpg"))
    t = time.perf_counter()
    batch: list[torch.Tensor] = []
    done = 0
    with torch.inference_mode():
        for path in files + [None]:  # None flushes the last batch
            if path is not None:
                with Image.open(path) as im:
                    batch.append(preprocess(im.convert("RGB")))
            if batch and (path is None or len(batch) == BASELINE_BATCH):
                F.normalize(model.encode_image(torch.stack(batch)), dim=-1).numpy()
                done += len(batch)
                batch.clear()
    embed_s = time.perf_counter() - t
    return {**torch_facts(), "images": done, "imports_s": imports_s, "clip_load_s": load_s,
            "embed_s": embed_s, "img_s": done / embed_s, "batch_size": BASELINE_BATCH}


# ---- parent side ---------------------------------------------------------------------------------

SUMMARISED = ("e2e_img_s", "vectors_img_s", "captions_img_s", "outside_phases_s", "clip_load_s",
              "captioner_load_s", "tagger_load_s", "text_img_s",
              "peak_rss_mb", "peak_rss_vectors_mb", "rss_after_imports_mb")


def measure_indexing(
    profile: str, settings: dict[str, str], photo_set: str, photos: Path, count: int, work: Path,
    runs: int, runner: Runner,
) -> tuple[dict[str, Any], Path]:
    """Alternate product and baseline runs (so drift on a busy machine hits both alike) and
    summarise them; returns the summary and the home of the last product run (an index to query)."""
    import shutil

    from .stats import ratios, summarize

    product: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] = []
    home = work
    for run in range(runs):
        home = work / f"run{run}" / "home"
        shutil.rmtree(home.parent, ignore_errors=True)
        args = {"settings": settings, "photos": str(photos), "home": str(home), "expected": count}
        product.append(runner.run("index", args))
        baseline.append(runner.run("baseline", args))
    out: dict[str, Any] = {"profile": profile, "photo_set": photo_set, "images": count, "runs": runs}
    for key in SUMMARISED:
        out[key] = summarize([r[key] for r in product if r.get(key) is not None])
    out["baseline_img_s"] = summarize([r["img_s"] for r in baseline])
    out["baseline_peak_rss_mb"] = summarize([r["peak_rss_mb"] for r in baseline])
    naive = [r["img_s"] for r in baseline]
    out["vectors_vs_baseline"] = summarize(ratios([r["vectors_img_s"] for r in product], naive))
    out["e2e_vs_baseline"] = summarize(ratios([r["e2e_img_s"] for r in product], naive))
    last = product[-1]
    out["setup"] = {k: last.get(k) for k in ("runtime", "torch", "threads", "bf16_fast", "batch_size",
                                             "caption_batch_size", "decode_workers", "caption_words_mean",
                                             "captioner_vision")}
    out["captioner_vision_s"] = summarize([r["captioner_vision_s"] for r in product if "captioner_vision_s" in r])
    out["product_runs"], out["baseline_runs"] = product, baseline
    return out, home
