"""The index of a running service, over its HTTP API (stdlib only: no torch, no stores here)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgsearch.errors import ImgsearchError
from imgsearch.progress import NoProgress, Progress
from imgsearch.searcher.hits import Hit
from imgsearch.searcher.request import SearchRequest
from imgsearch.service.client import ServiceClient


class RemoteIndex:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    def search(self, request: SearchRequest) -> list[Hit]:
        request.check()  # the same limits and messages as a local index, before any request
        return [Hit.from_json(h) for h in self.client.post("/api/search", request.as_json())["hits"]]

    def index(self, paths: Sequence[Path], *, captions: bool = True, texts: bool = True,
              precompute_rerank: bool = False,
              progress: Progress | None = None) -> dict[str, Any]:
        """Hand the folders to the service (with the secret from service.json) and follow its job."""
        progress = progress or NoProgress()
        job = self.client.post("/api/index", {"paths": [os.path.abspath(p) for p in paths], "captions": captions,
                                              "precompute_rerank": precompute_rerank})
        phase, last_done = None, 0
        while job["state"] in ("queued", "running"):
            time.sleep(0.3)
            job = self.client.get(f"/api/jobs/{job['id']}")
            activity = job["activity"]
            if job["state"] == "running" and activity["phase"] != phase:
                phase, last_done = activity["phase"], 0
                progress.done()
                progress.phase(f"{phase} (service)", activity["total"])
            if job["state"] == "running" and activity["done"] > last_done:
                progress.advance(activity["done"] - last_done)
                last_done = activity["done"]
        progress.done()
        if job["state"] == "failed":
            raise ImgsearchError(f"the service could not index: {job['error']}")
        report = job["report"] or {}
        if job["state"] == "cancelled":
            report["cancelled"] = True
        return report

    def status(self) -> dict[str, Any]:
        return {**self.client.get("/api/status"), "service": self.client.url}

    def close(self) -> None:
        pass

    def __enter__(self) -> RemoteIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
