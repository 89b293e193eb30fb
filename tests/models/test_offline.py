"""Without weights and without the hub, the default profile fails at once and says what to do."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from imgsearch.errors import ModelUnavailableError
from imgsearch.models import Models
from imgsearch.settings import Settings


@pytest.fixture(autouse=True)
def _empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


@pytest.mark.parametrize("part", ["clip", "captioner", "itm"])
def test_default_profile_offline_fails_fast_with_advice(part: str) -> None:
    models = Models(Settings(models="default"))
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError) as err:
        getattr(models, part)
    # the point of the test is "at once, not after network retries": a generous fail-fast bound
    assert time.monotonic() - start < 30
    msg = str(err.value)
    assert "--models tiny" in msg and "IMGSEARCH_" in msg
