"""An earlier commit's BLIP captions and cold rerank, timed beside today's (`bench.blip_runtime
--baseline REV`): issue 18's targets are ratios to "today's" figures on the same machine, which
only a run in the same sitting can give, since a host's speed drifts 2x between sessions.

`Baseline` unpacks the commit's `core/` (the `imgsearch` package) with `git archive` and runs
this file under it in a child process (`imgsearch` resolved through PYTHONPATH, so the installed
package is not imported), which loads the commit's captioner and ITM model on the same weights
and photos and answers one line of JSON per command: the parent alternates it with today's code
round by round. The child uses only what that commit and today's share: `Models`, `Settings`,
`imaging.decode`, `Captioner.caption`, `ItmScorer.vision_states` and `score`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

RERANK_K = 20  # the query's default --rerank-k
QUERY = "a red car parked on a street"


def caption_all(captioner: Any, images: list[Any], batch: int) -> None:
    """Captions of `images`, `batch` at a time (the product's caption batch)."""
    for i in range(0, len(images), batch):
        captioner.caption(images[i:i + batch])


def cold_rerank(itm: Any, images: list[Any]) -> None:
    """What a query's rerank pays when none of its candidates' states is cached: the vision states
    of the first RERANK_K pictures, 16 at a time (`vision_states.vision_states`), and one score."""
    import torch

    k = min(RERANK_K, len(images))
    states = torch.cat([itm.vision_states(images[i:min(i + 16, k)]) for i in range(0, k, 16)])
    itm.score(QUERY, states)


class Baseline:
    """A child process serving the commit `rev`'s BLIP models, made with `settings` (Settings
    fields: models, dtype, weights' paths); `time(what)` -> seconds."""

    def __init__(self, rev: str, out: Path, settings: dict[str, str], files: list[Path]) -> None:
        repo = Path(__file__).resolve().parent.parent
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", f"{rev}^{{commit}}"],
                                check=True, capture_output=True, text=True).stdout.strip()
        self.commit = commit
        source = out.resolve() / f"baseline-{commit}"
        if not (source / "imgsearch").exists():
            source.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(["git", "-C", str(repo), "archive", commit, "core"], check=True,
                                     capture_output=True).stdout
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(source, filter="data")
            (source / "core").rename(source / "imgsearch")
        env = {**os.environ, "PYTHONPATH": str(source), "HF_HUB_OFFLINE": "1"}
        home = out / f"home-baseline-{commit}-{settings.get('dtype', 'auto')}"
        self.child = subprocess.Popen([sys.executable, __file__, str(home), json.dumps(settings), *map(str, files)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        self.imported = self._reply()["imgsearch"]
        if not self.imported.startswith(str(source)):
            self.close()
            raise RuntimeError(f"baseline child imported {self.imported}, not {source}")

    def _reply(self) -> dict[str, Any]:
        line = self.child.stdout.readline() if self.child.stdout else ""
        if not line:
            raise RuntimeError(f"baseline child ended (exit {self.child.wait()})")
        return json.loads(line)

    def time(self, what: str) -> float:
        assert self.child.stdin is not None
        self.child.stdin.write(what + "\n")
        self.child.stdin.flush()
        return float(self._reply()["s"])

    def close(self) -> None:
        if self.child.stdin:
            self.child.stdin.close()
        self.child.wait(timeout=60)


def serve(home: Path, settings: dict[str, str], files: list[Path]) -> None:
    """The child: load the commit's models, warm them, then time each command read from stdin.
    Its stdout carries the answers alone: whatever the libraries print goes to stderr."""
    answers, sys.stdout = sys.stdout, sys.stderr
    import imgsearch
    from imgsearch.imaging import decode
    from imgsearch.models import Models
    from imgsearch.settings import Settings

    models = Models(Settings(home=home, **settings))
    captioner, itm = models.captioner, models.itm
    size = int(captioner.processor.image_processor.size["height"])
    images = [decode(p.read_bytes(), min_side=size).image for p in files]
    batch = models.settings.caption_batch_size
    captioner.caption(images[:2])  # warm-up, as today's side gets
    itm.vision_states(images[:2])

    print(json.dumps({"imgsearch": str(Path(imgsearch.__file__).parent)}), file=answers, flush=True)
    commands = {"captions": lambda: caption_all(captioner, images, batch),
                "rerank": lambda: cold_rerank(itm, images)}
    for line in sys.stdin:
        t = time.perf_counter()
        commands[line.strip()]()
        print(json.dumps({"s": time.perf_counter() - t}), file=answers, flush=True)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), json.loads(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
