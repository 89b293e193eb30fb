"""`bench.caption_decoding` end to end on a few tiny captions: the product's decoding gives the
ids of transformers' `generate`, with fewer row-steps, and the figures are real numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.caption_decoding import main


def test_the_bench_compares_the_same_ids_and_counts_the_work_saved(tmp_path: Path) -> None:
    assert main([str(tmp_path), "--pictures", "20", "--rounds", "1"]) == 0
    result = json.loads((tmp_path / "caption_decoding.json").read_text())
    assert result["pictures"] == 20 and result["same_ids"] is True
    assert 0 < result["row_steps"]["dropping"] < result["row_steps"]["upstream"]
    assert all(math.isfinite(v) and v > 0 for v in result["s_median"].values())
