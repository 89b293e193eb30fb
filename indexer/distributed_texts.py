"""The captions and OCR phases of `imgsearch index PATHS --ray ADDRESS` on the Ray cluster.

The driver claims each chunk, reuses the results of identical contents and writes what comes back
just as a local run does (`captions.caption_pending`, `texts.read_pending`). Only the model work
goes to the cluster (`RayTexts`): the pictures still to do are sent in batches (paths, never
pixels) to a pool of actors (`_TextWorker`). Each actor reads and decodes its batch with the local
reader and gives back only the captions or the text read (`captions.caption_files`,
`texts.read_files`: the code a local run uses). The pool starts when the captions phase first
asks for it, after the vectors phase has given its workers back, and serves both phases. Each
actor loads the captioner and the OCR reader once (`Models(settings)`), when first asked.

A worker that dies mid-batch loses nothing: the actors restart, and their calls run again
(`max_restarts=-1`, `max_task_retries=-1`). Nothing is written before a batch is back on the
driver. A worker that cannot open a file this machine can open stops the run, as in the vectors
phase (`distributed.check_here`).
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from imgsearch.errors import ImgsearchError
from imgsearch.settings import Settings

from .distributed import FAIL_ONCE_ENV, check_here, explain, fail_once, node_name, plan_actors
from .reader import Failed
from .reuse import Seen
from .scan import FoundFile
from .texts import CHUNK as READ_BATCH  # pictures an actor reads per call: a crash's loss stays as small

IN_FLIGHT = 2  # calls queued on each actor: the next batch is there when one is done


class _TextWorker:
    """A Ray actor for the later phases: the captions or the text of a batch of pictures."""

    def __init__(self, settings: Settings, threads: int, fail_once: str | None) -> None:
        import torch
        from imgsearch.models import Models

        self.threads = max(1, threads)
        torch.set_num_threads(self.threads)
        self.models = Models(settings)
        self.markers = {phase: f"{fail_once}.{phase}" for phase in ("captions", "text")} if fail_once else {}
        self.node = node_name()
        self.vision_chosen = False

    def caption(self, files: list[FoundFile], expected: int) -> tuple[str, list[Seen]]:
        """(this node, results); `expected`: the pictures the phase captions in all, so that a
        large run may build the faster vision tower first, as a local run does."""
        from .captions import caption_files

        captioner = self.models.captioner
        if captioner.vision is not None and not self.vision_chosen:
            captioner.vision.expect(expected)
            self.vision_chosen = True
        seen = [s for batch in caption_files(captioner, files, len(files), self.threads) for s in batch]
        fail_once(self.markers.get("captions"), self.node)
        return self.node, seen

    def read(self, files: list[FoundFile]) -> tuple[str, list[Seen]]:
        from .texts import read_files

        seen = [s for batch in read_files(self.models.text_reader, files, self.threads) for s in batch]
        fail_once(self.markers.get("text"), self.node)
        return self.node, seen


class RayTexts:
    """The captioner's and the OCR reader's work on the cluster (`pipeline.ModelWork`'s
    `captioning` and `reading`): each call sends its pictures in batches to the pool and gives
    back the results in order, a batch at a time. `close` ends the pool."""

    def __init__(self, ray: Any, settings: Settings) -> None:
        self.ray, self.settings = ray, settings
        self.actors: list[Any] = []
        self.expected = 0

    def caption(self, files: list[FoundFile], expected: int) -> Iterator[list[Seen]]:
        """`captions.Captioning`: batches of `caption_batch_size`, as a local run makes them."""
        self.expected = max(self.expected, expected)  # the phase's total (its later chunks say 0)
        batches = _split(files, self.settings.caption_batch_size)
        return self._map(lambda actor, batch: actor.caption.remote(batch, self.expected), batches)

    def read(self, files: list[FoundFile]) -> Iterator[list[Seen]]:
        """`texts.Reading`."""
        return self._map(lambda actor, batch: actor.read.remote(batch), _split(files, READ_BATCH))

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []

    def _map(self, call: Callable[[Any, list[FoundFile]], Any],
             batches: list[list[FoundFile]]) -> Iterator[list[Seen]]:
        """Each batch to the next actor in turn, `IN_FLIGHT` calls queued on each; results in order."""
        if not batches:  # a chunk whose contents were all done before: no actor to start
            return
        try:
            actors = self._pool(len(batches))
            pending: deque[Any] = deque()
            for i, batch in enumerate(batches):
                pending.append(call(actors[i % len(actors)], batch))
                if len(pending) >= IN_FLIGHT * len(actors):
                    yield _checked(*self.ray.get(pending.popleft()))
            while pending:
                yield _checked(*self.ray.get(pending.popleft()))
        except ImgsearchError:
            raise
        except Exception as e:
            raise explain(self.ray, e) from None

    def _pool(self, wanted: int) -> list[Any]:
        """The actors, started on first use: as many as the cluster holds (`plan_actors`), or as
        the first call has batches, if fewer."""
        if not self.actors:
            actors, cpus, gpus = plan_actors(self.ray, self.settings)
            worker = self.ray.remote(_TextWorker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=-1,
                                                         max_task_retries=-1)
            self.actors = [worker.remote(self.settings, int(cpus), os.environ.get(FAIL_ONCE_ENV))
                           for _ in range(max(1, min(actors, wanted)))]
        return self.actors


def _split(files: Sequence[FoundFile], size: int) -> list[list[FoundFile]]:
    return [list(files[i * size:(i + 1) * size]) for i in range(math.ceil(len(files) / size))]


def _checked(node: str, seen: list[Seen]) -> list[Seen]:
    """A worker's results, once no file it could not open is one this machine can open."""
    for s in seen:
        if isinstance(s, Failed):
            check_here(s, node)
    return seen
