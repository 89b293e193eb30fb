"""The models a run needs, loaded lazily: a query without rerank never loads BLIP."""

from __future__ import annotations

from functools import cached_property

from imgsearch.models.blip import Captioner, ItmScorer, load_captioner, load_itm
from imgsearch.models.clip import ClipEncoder, load_clip
from imgsearch.models.profiles import ModelProfile, resolve_profile
from imgsearch.models.runtime import Runtime, pick_runtime
from imgsearch.settings import Settings


class Models:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.profile: ModelProfile = resolve_profile(settings)
        self.runtime: Runtime = pick_runtime(settings.device, settings.dtype)

    @cached_property
    def clip(self) -> ClipEncoder:
        return load_clip(self.profile, self.runtime)

    @cached_property
    def captioner(self) -> Captioner:
        return load_captioner(self.profile.captioner, self.runtime, self.settings.caption_max_tokens)

    @cached_property
    def itm(self) -> ItmScorer:
        return load_itm(self.profile.itm, self.runtime)

    def facts(self) -> dict[str, str]:
        """What the index records about the models that built it (vectors must not mix)."""
        return {"clip_model": self.profile.clip_id}
