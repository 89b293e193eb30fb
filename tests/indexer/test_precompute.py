"""`--precompute-rerank` fills the ITM state cache; stopped early (a service shutting down) it
keeps what it did, and the next run does only the rest."""

from __future__ import annotations

from pathlib import Path

from imgsearch.indexer import index
from imgsearch.indexer.precompute import precompute_rerank
from imgsearch.models import Models
from imgsearch.settings import Settings
from imgsearch.stores import open_stores
from imgsearch.vision_states import open_state_cache


def _cached(settings: Settings, models: Models) -> int:
    return len(list(open_state_cache(settings, models.itm).folder.glob("*/*.safetensors")))


def test_a_cancelled_precompute_keeps_its_work_and_the_next_run_finishes(tiny_settings: Settings,
                                                                          shapes_folder: Path) -> None:
    models = Models(tiny_settings)
    with open_stores(tiny_settings, models.facts(), models.clip.dim) as stores:
        index([shapes_folder], stores, models, captions=False)
        polls = []

        def stop_after_first_chunk() -> bool:
            polls.append(1)
            return len(polls) > 1

        assert precompute_rerank(stores, models, chunk=5, cancel=stop_after_first_chunk) is False
        assert _cached(tiny_settings, models) == 5
        assert precompute_rerank(stores, models, chunk=5) is True
        assert _cached(tiny_settings, models) == 12
