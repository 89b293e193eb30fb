"""`imgsearch index` through a running service: the service owns the stores, so the CLI hands it
the folders and follows the job's progress."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from imgsearch.errors import ImgsearchError

from .output import progress_bar


def index_through(
    service: Any, paths: list[Path], *, captions: bool, precompute_rerank: bool, show_progress: bool,
) -> dict[str, Any]:
    job = service.post("/api/index", {"paths": [os.path.abspath(p) for p in paths], "captions": captions,
                                      "precompute_rerank": precompute_rerank})
    phase, last_done = None, 0
    with progress_bar(enabled=show_progress) as progress:
        while job["state"] in ("queued", "running"):
            time.sleep(0.3)
            job = service.get(f"/api/jobs/{job['id']}")
            activity = job["activity"]
            if job["state"] == "running" and activity["phase"] != phase:
                phase, last_done = activity["phase"], 0
                progress.done()
                progress.phase(f"{phase} (service)", activity["total"])
            if job["state"] == "running" and activity["done"] > last_done:
                progress.advance(activity["done"] - last_done)
                last_done = activity["done"]
    if job["state"] == "failed":
        raise ImgsearchError(f"the service could not index: {job['error']}")
    report = job["report"] or {}
    if job["state"] == "cancelled":
        report["cancelled"] = True
    return report
