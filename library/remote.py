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
        phase, last_done, note = None, 0, None
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
            if job["state"] == "running" and activity.get("note") != note:  # a build's wait, said as here
                note = activity.get("note")
                progress.note(note)
        progress.done()
        if job["state"] == "failed":
            raise ImgsearchError(f"the service could not index: {job['error']}")
        report = job["report"] or {}
        if job["state"] == "cancelled":
            report["cancelled"] = True
        return report

    def status(self) -> dict[str, Any]:
        return {**self.client.get("/api/status"), "service": self.client.url}

    def tags(self) -> dict[str, Any]:
        return self.client.get("/api/tags")

    # --- concepts taught by example: indexed pictures go by path, others as bytes ---------------
    def concept_add(self, name: str, positives: Sequence[Any], negatives: Sequence[Any] = (), *,
                    random_negatives: int | None = None) -> Any:
        """As LocalIndex.concept_add: the paths first; the pictures the service's catalog does not
        hold (its `need_data`) are read here and sent again as bytes."""
        import base64
        from dataclasses import replace

        from imgsearch.library.concepts import ConceptReport, read_picture, unusable

        sides = {"positives": [str(p) for p in positives], "negatives": [str(p) for p in negatives]}
        body: dict[str, Any] = {"name": name, **({} if random_negatives is None else
                                                 {"random_negatives": random_negatives})}
        report = ConceptReport.from_json(self.client.post(
            "/api/concepts", {**body, **{k: [{"path": p} for p in v] for k, v in sides.items()}}))
        if not report.need_data:
            return report
        skipped, data = [], {}
        for path in report.need_data:
            try:
                data[path] = base64.b64encode(read_picture(path)).decode()
            except ImgsearchError as e:
                skipped.append((path, str(e)))
        examples = {k: [{"path": p, **({"data": data[p]} if p in data else {})} for p in v
                        if p in data or p not in report.need_data] for k, v in sides.items()}
        if not any(examples.values()):
            raise unusable(name, skipped)
        report = ConceptReport.from_json(self.client.post("/api/concepts", {**body, **examples}))
        return replace(report, skipped=(*skipped, *report.skipped))

    def concepts(self) -> list[Any]:
        from imgsearch.concepts import Concept

        return [Concept.from_json(c) for c in self.client.get("/api/concepts")["concepts"]]

    def concept(self, name: str) -> Any:
        from imgsearch.concepts import Concept, check_name

        return Concept.from_json(self.client.get(f"/api/concepts/{check_name(name)}"))

    def concept_remove(self, name: str) -> None:
        from imgsearch.concepts import check_name

        self.client.delete(f"/api/concepts/{check_name(name)}")

    def dupes(self, *, threshold: float | None = None, folders: Sequence[str] = (),
              progress: Progress | None = None) -> dict[str, Any]:
        """The service's duplicate groups (`GET /api/dupes`), in the shape LocalIndex.dupes gives."""
        import urllib.parse

        params = [("threshold", threshold)] if threshold is not None else []
        query = urllib.parse.urlencode([*params, *(("in", os.path.abspath(f)) for f in folders)])
        return self.client.get(f"/api/dupes{'?' + query if query else ''}")

    def close(self) -> None:
        pass

    def __enter__(self) -> RemoteIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
