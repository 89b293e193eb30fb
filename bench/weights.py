"""Base-size weights of the `default` profile's architectures, randomly initialised.

Speed does not depend on weight values, and the real weights need the network: so, as
tests/models/test_default_profile.py does, the real architectures (open_clip ViT-B-32-256; BLIP
base captioner and ITM with the hub models' processor settings) are built with random weights,
saved once under OUT_DIR/weights and given to imgsearch the way an air-gapped user would
(Settings clip_pretrained / captioner / itm)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .child import Runner

READY = "ready.json"


def base_settings(folder: Path) -> dict[str, str]:
    """Settings overrides (and so IMGSEARCH_* variables) that select the random base weights."""
    from imgsearch.models.random_base import base_overrides

    return {"models": "default", **base_overrides(folder)}


def ensure_base_weights(folder: Path, runner: Runner) -> dict[str, str]:
    """Build the weights in a child process unless a finished build is already there."""
    if not (folder / READY).exists():
        runner.run("weights", {"folder": str(folder)})
    return base_settings(folder)


def build_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: write the three models into args["folder"] (fp16 files, as the hub ships)."""
    import time

    from imgsearch.models.random_base import write_random_base

    start = time.perf_counter()
    folder = Path(args["folder"])
    write_random_base(folder)
    took = time.perf_counter() - start
    (folder / READY).write_text(json.dumps({"seconds": took}))
    return {"seconds": took}
