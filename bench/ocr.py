"""Words from pixels: how fast the text phase goes on pictures with text and on pictures without.

A picture without text should cost one detection pass on a small copy and nothing more, so the
issue's target is that pictures without text go at least 5× as fast as pictures whose lines must
also be recognised. Each run is one fresh process that times, for each kind of picture (the order
alternates from run to run, so drift on a busy machine hits every kind alike):

- the phase: `imgsearch.indexer.texts.read_pending` over an index of that kind's folder alone
  (tiny models, built untimed, no captions), its texts forgotten before the timing: decoding to the
  reader's `max_side` in `decode_workers` threads, reading and storing, as an index run does it;
- the reader alone: `TextReader.read` on the same pictures decoded beforehand (full size, as the
  OCR evaluation times it), one call after another.

The reader's engine is made (one untimed read) before anything is timed."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from .child import Runner, load_timed
from .stats import ratios, summarize

FORGET = "bench: texts forgotten"  # a reader id adopted, then the real one again: every text unread


class CountingReader:
    """The product's reader, counting the pictures it found text on."""

    def __init__(self, reader: Any) -> None:
        self.reader, self.id, self.max_side = reader, reader.id, reader.max_side
        self.found = 0

    def read(self, image: Any) -> str | None:
        text = self.reader.read(image)
        self.found += text is not None
        return text


def _decoded(folder: Path) -> list[Any]:
    from PIL import Image

    out = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"):
            with Image.open(path) as im:
                out.append(im.convert("RGB"))
    return out


def ocr_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: index each folder of args["folders"] into its home (untimed), then time the
    text phase and the reader alone on each, in args["order"]."""
    from imgsearch.indexer import index
    from imgsearch.indexer.texts import read_pending
    from imgsearch.models import Models
    from imgsearch.progress import NoProgress
    from imgsearch.settings import Settings
    from imgsearch.stores import open_stores

    def settings_for(kind: str) -> Settings:
        return Settings(home=Path(args["homes"][kind]), models="tiny", ocr=True)

    models = Models(settings_for(args["order"][0]))
    loads = load_timed(models, "clip", "tagger", "text_reader")
    reader = models.text_reader
    workers = models.settings.decode_workers
    kinds: dict[str, dict[str, Any]] = {}
    for kind in args["order"]:
        folder = Path(args["folders"][kind])
        pictures = _decoded(folder)
        if "engine_s" not in loads:  # the engine is made on the first read: not a picture's cost
            t = time.perf_counter()
            reader.read(pictures[0])
            loads["engine_s"] = time.perf_counter() - t
        with open_stores(settings_for(kind), models.facts(), models.clip.dim) as stores:
            report = index([folder], stores, models, captions=False, texts=False)
            if report.skipped or stores.catalog.counts().with_vector != len(pictures):
                raise RuntimeError(f"indexing {folder} went wrong: {report}")
            stores.catalog.adopt_text_reader(FORGET)
            stores.catalog.adopt_text_reader(reader.id)
            counting = CountingReader(reader)
            t = time.perf_counter()
            done = read_pending(stores, counting, workers, NoProgress())
            phase_s = time.perf_counter() - t
            if done != len(pictures):
                raise RuntimeError(f"the text phase read {done} of {len(pictures)} pictures in {folder}")
        alone = CountingReader(reader)
        t = time.perf_counter()
        for picture in pictures:
            alone.read(picture)
        reader_s = time.perf_counter() - t
        n = len(pictures)
        kinds[kind] = {"pictures": n, "phase_s": phase_s, "phase_pics_s": n / phase_s,
                       "found": counting.found, "reader_s": reader_s, "reader_pics_s": n / reader_s,
                       "reader_found": alone.found}
    return {**loads, "reader": reader.id, "threads": reader.threads, "det_side": reader.det_side,
            "max_side": reader.max_side, "decode_workers": workers, "kinds": kinds}


# ---- parent side ---------------------------------------------------------------------------------


def measure_ocr(folders: dict[str, Path], facts: dict[str, dict[str, Any]], work: Path, runs: int,
                runner: Runner) -> dict[str, Any]:
    """Runs alternate the kinds' order; ratios (each kind's pictures/s over the text pictures')
    are taken run by run."""
    shutil.rmtree(work, ignore_errors=True)
    homes = {kind: str(work / kind / "home") for kind in folders}
    per_run = []
    for run in range(runs):
        order = list(folders) if run % 2 == 0 else list(reversed(folders))
        per_run.append(runner.run("ocr", {"folders": {k: str(v) for k, v in folders.items()},
                                          "homes": homes, "order": order}))
    kinds: dict[str, Any] = {}
    for kind in folders:
        got = [r["kinds"][kind] for r in per_run]
        kinds[kind] = {**facts[kind], "pictures": got[0]["pictures"],
                       "phase_pics_s": summarize([g["phase_pics_s"] for g in got]),
                       "reader_pics_s": summarize([g["reader_pics_s"] for g in got]),
                       "phase_ms": summarize([1000 * g["phase_s"] / g["pictures"] for g in got]),
                       "reader_ms": summarize([1000 * g["reader_s"] / g["pictures"] for g in got]),
                       "found": [g["found"] for g in got], "reader_found": [g["reader_found"] for g in got]}
    vs_text = {}
    for kind in folders:
        if kind != "text":
            vs_text[kind] = {
                way: summarize(ratios([r["kinds"][kind][f"{way}_pics_s"] for r in per_run],
                                      [r["kinds"]["text"][f"{way}_pics_s"] for r in per_run]))
                for way in ("phase", "reader")}
    last = per_run[-1]
    return {"runs": runs, "kinds": kinds, "vs_text": vs_text,
            "setup": {k: last[k] for k in ("reader", "threads", "det_side", "max_side", "decode_workers")},
            "engine_s": summarize([r["engine_s"] for r in per_run]),
            "peak_rss_mb": summarize([r["peak_rss_mb"] for r in per_run]), "process_runs": per_run}
