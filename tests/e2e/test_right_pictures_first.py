"""Through the CLI with the bundled tiny models: index a generated folder, ask for things in
words, and the right pictures come first (judged by the shapes world's own match rule)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imgsearch.cli.app import app
from imgsearch.shapes.render import load_manifest
from imgsearch.shapes.world import matches

from conftest import make_shapes

runner = CliRunner()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("right-first")
    make_shapes(root / "photos", 60, seed=404)
    home = root / "home"
    result = runner.invoke(app, ["index", str(root / "photos"), "--home", str(home), "--models", "tiny",
                                 "--no-captions", "--json"], env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0, result.stderr
    return root / "photos", home


def _queries(folder: Path) -> list[str]:
    """Attribute queries with at least two relevant pictures in the folder."""
    scenes = load_manifest(folder).values()
    seen = sorted({f"a {o.colour} {o.shape}" for s in scenes for o in s.objects})
    return [q for q in seen if sum(matches(q, s) for s in scenes) >= 2]


def test_attribute_queries_find_a_right_picture_first(indexed: tuple[Path, Path]) -> None:
    folder, home = indexed
    scenes = load_manifest(folder)
    queries = _queries(folder)
    assert len(queries) >= 8
    firsts = []
    for q in queries:
        result = runner.invoke(app, ["query", q, "--home", str(home), "--models", "tiny", "--json",
                                     "--no-rerank", "--limit", "3"], env={"HF_HUB_OFFLINE": "1"})
        assert result.exit_code == 0
        top = json.loads(result.stdout)[0]
        firsts.append(matches(q, scenes[Path(top["path"]).name]))
    # every query got a right first picture when the floor was set; 0.9 leaves room for
    # rounding differences between CPUs without letting a real regression through
    assert sum(firsts) >= 0.9 * len(queries), list(zip(queries, firsts))
