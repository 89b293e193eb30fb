"""The models a run needs, loaded lazily: a query without rerank never loads BLIP, and importing
this package imports no torch (the cold `query --no-rerank` path must not pay for it)."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from imgsearch.models.profiles import ModelProfile, model_facts, resolve_profile
from imgsearch.settings import Settings

if TYPE_CHECKING:
    from imgsearch.models.blip import Captioner, ItmScorer
    from imgsearch.models.clip import ClipEncoder
    from imgsearch.models.runtime import Runtime

# One load at a time in the whole process: transformers' from_pretrained switches process-wide
# state while it builds a model (the default device is "meta"), so the service's worker loading
# the captioner while a query loads the ITM model broke one of them ("Cannot copy out of meta
# tensor"). It also makes two threads asking for the same model load it once.
_LOADING = threading.RLock()
_FREEZE_LOADS = False


def freeze_what_loads_make() -> None:
    """Say that this process keeps its models until it exits (one CLI command, the service): what
    a load makes is then frozen out of the cyclic collector's reach. Unfrozen, the first full
    collection after CLIP's load walked its ~450k objects, 0.4 s holding the GIL while the
    decoders waited for it, at the start of the index run's CLIP phase (2-core AMD EPYC,
    AVX512-BF16, 40 × 12 MP photos). Not the default: a process that makes many `Models` (the
    tests, a library user) would keep each one's reference cycles for good."""
    global _FREEZE_LOADS
    _FREEZE_LOADS = True


class Models:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.profile: ModelProfile = resolve_profile(settings)
        self._loaded: dict[str, Any] = {}
        self._expected_pictures: int | None = None

    @cached_property
    def runtime(self) -> Runtime:
        """Where the models run, picked on first need: it imports torch (and `auto` times a
        product both ways), which an index run with nothing new to embed never pays."""
        from imgsearch.models.runtime import pick_runtime

        return pick_runtime(self.settings.device, self.settings.dtype)

    def _get(self, name: str, load: Callable[[], Any]) -> Any:
        if name not in self._loaded:
            with _LOADING:
                if name not in self._loaded:
                    with _collector_paused():
                        self._loaded[name] = load()
        return self._loaded[name]

    @property
    def clip(self) -> ClipEncoder:
        """CLIP, whose image tower runs where `settings.image_runtime` says (`image_export`) and
        whose text tower embeds a query's words through the export beside the index if any."""
        return self._get("clip", self._load_clip)

    def _load_clip(self) -> ClipEncoder:
        from imgsearch.models.clip import load_clip
        from imgsearch.models.image_export import attach
        from imgsearch.models.onnx_text import WordTower

        clip = attach(load_clip(self.profile, self.runtime), self.settings)
        if self.runtime.device.type == "cpu":  # a GPU embeds words faster than onnxruntime on the CPU
            clip.word_tower = WordTower(self.settings.index_dir, clip.model_id, self.settings.image_runtime)
        if self._expected_pictures is not None:
            clip.expect(self._expected_pictures)
        return clip

    def expect_pictures(self, pictures: int) -> None:
        """Say how many pictures the coming run may embed (`ClipEncoder.expect`: a large run may
        build a faster image tower first), without loading CLIP to say it: the run may find every
        one of them stored already (moves, copies) and embed none."""
        self._expected_pictures = pictures
        if "clip" in self._loaded:
            self._loaded["clip"].expect(pictures)

    @property
    def captioner(self) -> Captioner:
        """BLIP's captioner, whose vision tower runs where `settings.image_runtime` says (`blip_vision`)."""
        from imgsearch.models.blip import load_captioner

        return self._get("captioner", lambda: self._vision_choice(load_captioner(
            self.profile.captioner, self.runtime, self.settings.caption_max_tokens), "captioner"))

    @property
    def itm(self) -> ItmScorer:
        """BLIP's ITM model, its vision tower chosen as the captioner's."""
        from imgsearch.models.blip import load_itm

        return self._get("itm", lambda: self._vision_choice(load_itm(self.profile.itm, self.runtime), "itm"))

    def _vision_choice(self, blip: Any, role: str) -> Any:
        from imgsearch.models.blip_vision import VisionChoice, use_onnx_vision

        blip.vision = VisionChoice(lambda pictures: use_onnx_vision(
            blip.model, blip.processor, self.runtime, blip.model_id, self.settings, role, pictures))
        return blip

    @property
    def text_reader(self) -> Any:
        """The OCR engine (imgsearch.ocr.TextReader): not a profile's model, the same for all."""
        from imgsearch.ocr import load_reader

        return self._get("text_reader", load_reader)

    @property
    def tagger(self) -> Any:
        """The profile's tag vocabulary embedded with its CLIP (imgsearch.tags.Tagger), which loads
        CLIP only if its classes are not kept beside the index yet."""
        return self._get("tagger", self._load_tagger)

    def _load_tagger(self) -> Any:
        from pathlib import Path

        from imgsearch.tags import Tagger, load_vocabulary

        return Tagger(load_vocabulary(Path(self.profile.tags)), self.profile.clip_id, lambda: self.clip,
                      cache_dir=self.settings.index_dir)

    def facts(self) -> dict[str, str]:
        return model_facts(self.profile)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A model's load imports torch and open_clip (or transformers) and builds its modules: ~450k
    objects, none of them garbage, that the cyclic collector walks again and again while they are
    made (0.5-0.7 s of the ~7.5 s that `import torch, open_clip` takes on a 2-core AVX2 EPYC). Off
    meanwhile, back on after where it was on; frozen after where the process asked
    (`freeze_what_loads_make`)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _FREEZE_LOADS:
            gc.freeze()
        if was_on:
            gc.enable()
