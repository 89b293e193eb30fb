"""Settings, built once at the entry point and passed down (env prefix `IMGSEARCH_`)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMGSEARCH_", frozen=True)

    home: Path = Field(default_factory=lambda: Path(user_data_dir("imgsearch", appauthor=False)))
    models: str = "default"
    # Overrides of the profile's models: hub ids or local paths (air-gapped machines).
    clip_model: str | None = None
    clip_pretrained: str | None = None
    captioner: str | None = None
    itm: str | None = None

    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    # How a Qdrant server lays out a collection it creates (one that exists keeps its own; see
    # docs/scale-out.md): shards and replicas across a cluster's nodes (None: the server's
    # defaults), vectors and payload indexes on disk instead of in RAM, and int8 scalar
    # quantization (the int8 copy kept in RAM, searches rescored with the float vectors).
    qdrant_shards: int | None = Field(default=None, ge=1)
    qdrant_replicas: int | None = Field(default=None, ge=1)
    qdrant_on_disk: bool = False
    qdrant_quantization: Literal["none", "int8"] = "none"
    catalog_url: str | None = None  # e.g. postgresql+psycopg://user:password@host/imgsearch (extra `scale`)
    # `index --ray`: how many model actors embed on the cluster (None: one per GPU when it has
    # GPUs, else one per `ray_worker_cpus` cores of each node) and the cores each one gets.
    ray_workers: int | None = Field(default=None, ge=1)
    ray_worker_cpus: float = Field(default=1.0, gt=0)

    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    # What runs CLIP's image tower (indexing, picture queries) and BLIP's vision towers (captions,
    # rerank): auto | torch | onnx | onnx-int8. auto: an ONNX Runtime variant admitted by its check
    # against torch fp32 where torch runs fp32 (no fast bf16), else torch (`imgsearch.models.
    # image_export`; BLIP: int8 only, taken where it measured faster, `blip_vision`); `imgsearch
    # status` says which. CLIP's text export runs its int8 variant, where one was built and
    # admitted, with auto and onnx-int8 (`text_export.wants_int8`), its fp32 graph otherwise.
    image_runtime: Literal["auto", "torch", "onnx", "onnx-int8"] = "auto"
    # auto builds that export (a minute or so once per model, ViT-B-32) only for a run with at
    # least this many pictures to embed, where it pays back; smaller runs and picture queries use
    # an export that exists, else torch.
    image_export_min_pictures: int = Field(default=500, ge=0)
    # the same for BLIP's vision towers: their export takes about as long to build but saves ~10x
    # more a picture (base BLIP at 384 px against CLIP at 256), so it pays back sooner
    blip_export_min_pictures: int = Field(default=100, ge=0)
    batch_size: int = 32
    # The captioner's decoder reads all of its weights at every token, whatever the batch: base
    # BLIP decodes 64 captions at ~51 ms a picture, 32 at 66-71, 16 at 78-90 (bf16, a 2-core
    # AVX512-BF16 EPYC); its vision tower still takes `blip.VISION_BATCH` pictures at a time. A
    # batch is also how often captioning reports progress and can be stopped (~13 s here).
    caption_batch_size: int = Field(default=64, ge=1)
    decode_workers: int = Field(default_factory=lambda: max(1, min(8, os.cpu_count() or 1)))
    rerank_cache_mb: int = 2048
    # Searches by words return only pictures at least this likely to match (BLIP ITM's
    # probability; calibrated on the evaluation, see the model card); 0 turns the cutoff off.
    min_match: float = Field(default=0.5, ge=0.0, le=1.0)
    # Read the text in pictures (OCR) at index time and in the service's spare time.
    ocr: bool = True
    # The tag vocabulary (imgsearch.tags); None: the model profile's own.
    tags_file: Path | None = None
    # BLIP's own captioning decodes at most 20 tokens (its max_length=20, prompt included); a
    # caption of a photo is about 10. Every token costs a decoder pass over the whole batch.
    caption_max_tokens: int = 20
    # Brute-force search over the embedded store costs ~0.11 ms per 1,000 points here (11 ms at
    # 100k, 108 ms at 1M): past this many unindexed points an index run ends by building HNSW over
    # them (see `build_index`; recall@20 0.997 on CLIP-like clustered vectors, 2 ms a search).
    search_index_threshold: int = 100_000

    # The watch service (`imgsearch watch`).
    roots: list[Path] = Field(default_factory=list)  # folders it always watches (JSON list in env)
    host: str = "127.0.0.1"
    port: int = 7861
    token: str | None = None  # required to bind beyond loopback; generated when not given
    # Host names the service answers to besides loopback and the address it is bound to (a name
    # the machine has on the LAN, a reverse proxy's); JSON list in env. Others get 421.
    allowed_hosts: list[str] = Field(default_factory=list)
    rescan_minutes: float = 60.0  # a full incremental pass catches what events missed
    polling: bool = False  # poll instead of inotify (network mounts)

    @property
    def index_dir(self) -> Path:
        """Each model profile keeps its own index: switching profiles never mixes vectors."""
        return self.home / self.collection

    @property
    def catalog(self) -> str:
        return self.catalog_url or f"sqlite:///{self.index_dir / 'catalog.sqlite3'}"

    @property
    def edge_path(self) -> Path:
        return self.index_dir / "vectors"

    @property
    def collection(self) -> str:
        return "imgsearch-" + re.sub(r"[^a-z0-9]+", "-", self.models.lower()).strip("-")

    @property
    def service_file(self) -> Path:
        """Where a running service says how to reach it (url, token, pid)."""
        return self.index_dir / "service.json"

    @property
    def rerank_cache_dir(self) -> Path:
        return self.index_dir / "itm-cache"
