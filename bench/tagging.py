"""Zero-shot tags: what the tag phase costs per 1,000 pictures, and what a vocabulary costs to load.

For each configuration (a model profile and a vocabulary), each run one fresh process:

- vocabulary load: `Models.tagger` with CLIP already loaded, i.e. every prompt of the vocabulary
  (classes × phrases × templates) through CLIP's text tower; once per process (and again whenever
  the vocabulary file changes);
- tag(): `Tagger.tag` on 1,000 random unit vectors of the model's size (matrix products, softmaxes
  and the labels kept at their threshold), the median of several calls;
- the phase: `imgsearch.indexer.tagging.tag_pending` over an index of N shapes-world pictures
  (built untimed by the first run, no captions or texts, reused by the next), every picture's tags
  forgotten before each timing: besides tag() (on the stored vectors, timed apart), the catalog's
  reads and writes and the vector store's fetch ("stores"); given per 1,000 pictures.

With random weights (the base-size profile) the class embeddings barely differ, so the softmax is
flat and few labels pass the threshold: the labels kept per picture are reported beside the time."""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from .child import Runner, load_timed
from .indexing import torch_facts
from .stats import summarize

FORGET = "bench: tags forgotten"  # a tagger id adopted, then the real one again: every picture untagged
OWN = "own"  # the profile's own vocabulary; else a vocabulary file (e.g. the default profile's)


class TimedTagger:
    """The product's tagger, adding up the time spent in its `tag` (the rest of the phase is stores)."""

    def __init__(self, tagger: Any) -> None:
        self.tagger, self.id, self.seconds = tagger, tagger.id, 0.0

    def tag(self, vectors: Any) -> list[dict[str, float]]:
        t = time.perf_counter()
        try:
            return self.tagger.tag(vectors)
        finally:
            self.seconds += time.perf_counter() - t


def default_vocabulary() -> str:
    """The default profile's bundled vocabulary file (~285 classes of everyday photo concepts)."""
    from importlib import resources

    return str(resources.files("imgsearch.bundled") / "tags" / "default.txt")


def _unit_vectors(n: int, dim: int) -> Any:
    import numpy as np

    v = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def tags_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: load the tagger (timed), time tag() on args["vectors"] random vectors, index
    args["photos"] into args["home"] unless done, and time the whole phase over it."""
    from imgsearch.indexer import index
    from imgsearch.indexer.tagging import tag_pending
    from imgsearch.models import Models
    from imgsearch.progress import NoProgress
    from imgsearch.settings import Settings
    from imgsearch.stores import open_stores

    overrides = {"tags_file": args["vocabulary"]} if args["vocabulary"] != OWN else {}
    settings = Settings(home=Path(args["home"]), ocr=False, **args["settings"], **overrides)
    models = Models(settings)
    loads = load_timed(models, "clip")
    for kept in settings.index_dir.glob("tag-classes-*.npz"):  # the embedding, not a cached read of it
        kept.unlink()
    t = time.perf_counter()
    tagger, dim = models.tagger, models.clip.dim
    tagger.classes  # noqa: B018 - embedded on first use: that is the load
    loads["tagger_load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    type(tagger)(tagger.vocabulary, models.clip.model_id, lambda: models.clip,
                 cache_dir=settings.index_dir).classes  # noqa: B018
    loads["tagger_cached_load_s"] = time.perf_counter() - t
    vocabulary = tagger.vocabulary
    vectors = _unit_vectors(args["vectors"], dim)
    tagger.tag(vectors[:8])  # first call: numpy's and the allocator's warm-up, not the tagger's cost
    tag_s, kept = [], 0
    for _ in range(args["calls"]):
        t = time.perf_counter()
        tags = tagger.tag(vectors)
        tag_s.append(time.perf_counter() - t)
        kept = sum(map(len, tags))
    count = args["expected"]
    with open_stores(settings, models.facts(), dim) as stores:
        t = time.perf_counter()
        report = index([Path(args["photos"])], stores, models, captions=False, texts=False)
        index_s = time.perf_counter() - t
        if report.skipped or stores.catalog.counts().with_vector != count:
            raise RuntimeError(f"indexing {args['photos']} went wrong: {report}")
        phase_s, stores_s = [], []
        for _ in range(args["calls"]):
            stores.catalog.adopt_tagger(FORGET)
            stores.catalog.adopt_tagger(tagger.id)
            timed = TimedTagger(tagger)
            t = time.perf_counter()
            done = tag_pending(stores, timed, NoProgress())
            phase_s.append(time.perf_counter() - t)
            stores_s.append(phase_s[-1] - timed.seconds)
            if done != count:
                raise RuntimeError(f"the tag phase tagged {done} of {count} pictures")
        labels = sum(n for _, n in stores.catalog.tag_counts())
    n = len(vectors)
    return {
        **loads, **torch_facts(), "runtime": models.runtime.describe(), "dim": dim, "tagger": tagger.id,
        "scale": tagger.scale,
        "classes": sum(len(s.classes) for s in vocabulary.sections),
        "prompts": sum(len(c.phrases) * len(s.templates) for s in vocabulary.sections for c in s.classes),
        "labels": len(vocabulary.labels), "sections": len(vocabulary.sections),
        "vectors": n, "tag_ms_per_1000": 1e6 * statistics.median(tag_s) / n, "labels_per_vector": kept / n,
        "pictures": count, "index_s": index_s, "index_embedded": report.embedded,
        "phase_s_per_1000": 1000 * statistics.median(phase_s) / count,
        "phase_pics_s": count / statistics.median(phase_s), "labels_per_picture": labels / count,
        "phase_stores_ms_per_1000": 1e6 * statistics.median(stores_s) / count,
    }


# ---- parent side ---------------------------------------------------------------------------------

SUMMARISED = ("tagger_load_s", "clip_load_s", "tag_ms_per_1000", "phase_s_per_1000", "phase_pics_s",
              "phase_stores_ms_per_1000", "peak_rss_mb")


def measure_tags(profile: str, settings: dict[str, str], vocabulary: str, photos: Path, count: int,
                 work: Path, runs: int, calls: int, vectors: int, runner: Runner) -> dict[str, Any]:
    """One configuration over `runs` fresh processes; the first builds the index the others reuse."""
    shutil.rmtree(work, ignore_errors=True)
    args = {"settings": settings, "vocabulary": vocabulary, "photos": str(photos),
            "home": str(work / "home"), "expected": count, "calls": calls, "vectors": vectors}
    per_run = [runner.run("tags", args) for _ in range(runs)]
    out: dict[str, Any] = {"profile": profile, "runs": runs,
                           "vocabulary": OWN if vocabulary == OWN else Path(vocabulary).name}
    for key in SUMMARISED:
        out[key] = summarize([r[key] for r in per_run])
    last = per_run[-1]
    for key in ("runtime", "torch", "threads", "bf16_fast", "dim", "tagger", "scale", "classes", "prompts",
                "labels", "sections", "vectors", "pictures", "labels_per_vector", "labels_per_picture"):
        out[key] = last[key]
    out["index_s"] = per_run[0]["index_s"]
    out["process_runs"] = per_run
    return out
