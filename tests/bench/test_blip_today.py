"""bench.blip_today: an earlier commit's BLIP, timed in a child process that runs that commit's
own code (not the installed package)."""

from pathlib import Path

from PIL import Image

from bench.blip_today import Baseline


def test_baseline_times_the_commits_own_captioner_and_itm(tmp_path: Path) -> None:
    files = []
    for i, colour in enumerate(("red", "blue", "green")):
        path = tmp_path / f"photo{i}.jpg"
        Image.new("RGB", (96, 64), colour).save(path)
        files.append(path)
    baseline = Baseline("HEAD", tmp_path / "out", {"models": "tiny", "dtype": "float32"}, files)
    try:
        captions, rerank = baseline.time("captions"), baseline.time("rerank")
    finally:
        baseline.close()
    assert captions > 0 and rerank > 0
    source = tmp_path / "out" / f"baseline-{baseline.commit}" / "imgsearch"
    assert Path(baseline.imported) == source.resolve()
    assert (source / "models" / "blip.py").is_file()
    assert baseline.child.returncode == 0
