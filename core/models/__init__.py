"""The models a run needs, loaded lazily: a query without rerank never loads BLIP, and importing
this package imports no torch (the cold `query --no-rerank` path must not pay for it)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from imgsearch.models.profiles import ModelProfile, model_facts, resolve_profile
from imgsearch.settings import Settings

if TYPE_CHECKING:
    from imgsearch.models.blip import Captioner, ItmScorer
    from imgsearch.models.clip import ClipEncoder
    from imgsearch.models.runtime import Runtime


class Models:
    def __init__(self, settings: Settings) -> None:
        from imgsearch.models.runtime import pick_runtime

        self.settings = settings
        self.profile: ModelProfile = resolve_profile(settings)
        self.runtime: Runtime = pick_runtime(settings.device, settings.dtype)

    @cached_property
    def clip(self) -> ClipEncoder:
        from imgsearch.models.clip import load_clip

        return load_clip(self.profile, self.runtime)

    @cached_property
    def captioner(self) -> Captioner:
        from imgsearch.models.blip import load_captioner

        return load_captioner(self.profile.captioner, self.runtime, self.settings.caption_max_tokens)

    @cached_property
    def itm(self) -> ItmScorer:
        from imgsearch.models.blip import load_itm

        return load_itm(self.profile.itm, self.runtime)

    def facts(self) -> dict[str, str]:
        return model_facts(self.profile)
