"""CI floor of the duplicate finder's evaluation (python -m imgsearch.evaluation.dupes) on a small
held-out collection: 12 originals, 3 copies each, hard negatives. Measured on it: pair precision
1.000, recall 0.958 (seed 4343, threshold 0.85); the floors leave room for a CPU's rounding."""

from __future__ import annotations

from pathlib import Path

from imgsearch.evaluation.dupes import evaluate, markdown


def test_groups_copies_and_keeps_other_photos_of_a_scene_apart(tmp_path: Path) -> None:
    result = evaluate(tmp_path, originals=12, seed=4343, copies=3, thresholds=())
    row = result["rows"][f"{result['default_threshold']:g}"]
    assert row["precision"] >= 0.95, row["wrong_pairs"]
    assert row["recall"] >= 0.85, row["recall_by_copy"]
    assert row["groups_keeping_the_original"] >= row["groups"] - 1
    assert "pair precision" in markdown(result)
