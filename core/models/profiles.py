"""Model profiles: which CLIP, captioner and ITM model a run uses.

`default` is real pretrained weights fetched on first use into the hubs' own caches.
CLIP: ViT-B-32-256 `datacomp_s34b_b86k` — better than ViT-B-32 `laion2b_s34b_b79k` on both
zero-shot ImageNet (72.8 % vs 66.6 %) and COCO text->image R@1 (39.9 vs 39.3), for ~30 % more
image compute (256 px); it is also what rclip ships, so comparisons are like for like.
`tiny` is the project's own small models, bundled with the package, fully offline.
Any field can be overridden by settings (hub ids or local paths, for air-gapped machines).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from imgsearch.errors import ConfigError
from imgsearch.models.hub import model_ref_id
from imgsearch.settings import Settings


@dataclass(frozen=True)
class ModelProfile:
    name: str
    clip_model: str  # open_clip model name, or "local-dir:/path"
    clip_pretrained: str | None  # open_clip pretrained tag or a local weights file
    captioner: str  # HF hub id or local folder
    itm: str
    # The whole picture, squashed: a centre crop would cut away what lies near the borders.
    clip_resize_mode: str = "squash"
    tags: str = ""  # the tag vocabulary file (imgsearch.tags); settings.tags_file overrides it
    digests: Path | None = None  # where local weights' digests are remembered (`hub.model_ref_id`)

    @property
    def clip_id(self) -> str:
        """Identifies the vector space: stored with the index, mixing is refused. Local folders
        are named by their weights' content, so moving an install keeps the index valid while
        retrained weights do not silently mix with old vectors."""
        if self.clip_model.startswith("local-dir:"):
            return f"local-dir:{model_ref_id(self.clip_model, self.digests)}"
        return f"{self.clip_model}@{model_ref_id(self.clip_pretrained or 'none', self.digests)}"


def bundled_dir() -> Path:
    return Path(str(resources.files("imgsearch.bundled") / "tiny"))


def _tiny() -> ModelProfile:
    root = bundled_dir()
    return ModelProfile(
        name="tiny",
        clip_model=f"local-dir:{root / 'clip'}",
        clip_pretrained=None,
        captioner=str(root / "captioner"),
        itm=str(root / "itm"),
        tags=str(root / "tags.txt"),
    )


DEFAULT = ModelProfile(
    name="default",
    clip_model="ViT-B-32-256",
    clip_pretrained="datacomp_s34b_b86k",
    captioner="Salesforce/blip-image-captioning-base",
    itm="Salesforce/blip-itm-base-coco",
    tags=str(Path(str(resources.files("imgsearch.bundled") / "tags" / "default.txt"))),
)

PROFILES = {"default": lambda: DEFAULT, "tiny": _tiny}
DIGESTS = "weights-digests.json"  # in the index folder: a cold query does not read the weights again


def model_facts(profile: ModelProfile) -> dict[str, str]:
    """What the index records about the models that built it (vectors must not mix)."""
    return {"clip_model": profile.clip_id}


def resolve_profile(settings: Settings) -> ModelProfile:
    try:
        profile = PROFILES[settings.models]()
    except KeyError:
        raise ConfigError(
            f"unknown model profile {settings.models!r}: choose one of {', '.join(PROFILES)}"
        ) from None
    overrides = {
        k: getattr(settings, k)
        for k in ("clip_model", "clip_pretrained", "captioner", "itm")
        if getattr(settings, k)
    }
    if settings.tags_file:
        overrides["tags"] = str(settings.tags_file)
    return replace(profile, **overrides, digests=settings.index_dir / DIGESTS)
