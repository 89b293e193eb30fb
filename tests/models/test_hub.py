"""Local weights are named by their content (`model_ref_id`); a small file remembers each name by
its files' size, times and inode, so a cold query does not read the weights again while they stay
unchanged, and reads them again as soon as any of them changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imgsearch.models import hub
from imgsearch.models.hub import model_ref_id
from imgsearch.models.profiles import DIGESTS, resolve_profile
from imgsearch.settings import Settings


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "open_clip_model.safetensors").write_bytes(os.urandom(3 << 20))
    (folder / "open_clip_config.json").write_text("{}")
    return folder


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The weight files read to compute a digest, in order."""
    seen: list[Path] = []
    fingerprint = hub._fingerprint

    def counting(f: Path, *args: int) -> bytes:
        seen.append(f)
        return fingerprint(f, *args)

    monkeypatch.setattr(hub, "_fingerprint", counting)
    return seen


def test_an_unchanged_folder_is_not_read_again(weights: Path, tmp_path: Path, reads: list[Path]) -> None:
    digests = tmp_path / "index" / DIGESTS
    first = model_ref_id(f"local-dir:{weights}", digests)
    assert first == model_ref_id(f"local-dir:{weights}")  # the same name as without the file
    assert first.startswith("clip#") and len(reads) == 2
    reads.clear()
    assert model_ref_id(f"local-dir:{weights}", digests) == first and not reads


def test_a_rewritten_file_is_read_again_even_with_its_old_size_and_time(
        weights: Path, tmp_path: Path, reads: list[Path]) -> None:
    digests = tmp_path / DIGESTS
    f = weights / "open_clip_model.safetensors"
    before = model_ref_id(str(f), digests)
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[:16] = os.urandom(16)  # retrained: same size
    with open(f, "r+b") as fh:  # in place: same inode
        fh.write(data)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # and its old modification time
    reads.clear()
    after = model_ref_id(str(f), digests)
    assert reads == [f] and after != before
    assert after == model_ref_id(str(f))


def test_a_replaced_or_added_file_is_read_again(weights: Path, tmp_path: Path, reads: list[Path]) -> None:
    digests = tmp_path / DIGESTS
    ref = f"local-dir:{weights}"
    before = model_ref_id(ref, digests)
    new = weights / "new.safetensors"
    new.write_bytes((weights / "open_clip_model.safetensors").read_bytes())
    os.replace(new, weights / "open_clip_model.safetensors")  # the same bytes, another file
    reads.clear()
    assert model_ref_id(ref, digests) == before and reads  # read again, found the same
    (weights / "extra.bin").write_bytes(b"more weights")
    reads.clear()
    assert model_ref_id(ref, digests) != before and len(reads) == 2


@pytest.mark.parametrize("content", ["not json", '{"format": 99, "digests": {}}', '{"format": 1, "digests": []}'])
def test_a_damaged_or_foreign_file_only_costs_a_read(weights: Path, tmp_path: Path, content: str) -> None:
    digests = tmp_path / DIGESTS
    digests.write_text(content)
    assert model_ref_id(f"local-dir:{weights}", digests) == model_ref_id(f"local-dir:{weights}")
    assert json.loads(digests.read_text())["format"] == hub.DIGESTS_FORMAT  # rewritten whole


def test_an_unwritable_place_only_costs_a_read(weights: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert model_ref_id(f"local-dir:{weights}", blocker / DIGESTS) == model_ref_id(f"local-dir:{weights}")


def test_hub_ids_are_names_and_nothing_is_written(tmp_path: Path) -> None:
    digests = tmp_path / DIGESTS
    assert model_ref_id("datacomp_s34b_b86k", digests) == "datacomp_s34b_b86k"
    assert not digests.exists()


def test_the_file_is_bounded(tmp_path: Path) -> None:
    digests = tmp_path / DIGESTS
    for i in range(hub.MAX_DIGESTS + 5):
        f = tmp_path / f"w{i}.safetensors"
        f.write_bytes(bytes([i]) * 10)
        model_ref_id(str(f), digests)
    kept = json.loads(digests.read_text())["digests"]
    assert len(kept) == hub.MAX_DIGESTS and str(tmp_path / f"w{hub.MAX_DIGESTS + 4}.safetensors") in kept


def test_profiles_remember_digests_beside_their_index(tmp_path: Path, reads: list[Path]) -> None:
    settings = Settings(home=tmp_path / "home", models="tiny")
    profile = resolve_profile(settings)
    assert profile.digests == settings.index_dir / DIGESTS
    name = profile.clip_id
    assert (settings.index_dir / DIGESTS).exists() and reads
    reads.clear()
    assert resolve_profile(settings).clip_id == name and not reads
    assert name == resolve_profile(Settings(home=tmp_path / "other", models="tiny")).clip_id  # same weights
