"""The CLI end to end through Typer's runner: index, query, status, JSON shapes, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imgsearch.cli.app import app

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "300"})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def indexed(shapes_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IMGSEARCH_MODELS", "tiny")
    (shapes_folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    code, out, err = _run("index", str(shapes_folder), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["embedded"] == 12 and report["captioned"] == 12
    assert [s["path"] for s in report["skipped"]] == [str(shapes_folder / "broken.jpg")]
    return shapes_folder


def test_query_json_has_the_documented_fields(indexed: Path) -> None:
    code, out, _ = _run("query", "a red circle", "--json", "--limit", "5", "--min-match", "0")
    assert code == 0
    hits = json.loads(out)
    assert len(hits) == 5
    for h in hits:
        assert {"path", "score", "clip_score", "itm_score", "caption", "match", "explain"} <= set(h)
        assert Path(h["path"]).is_absolute() and Path(h["path"]).exists()
        assert h["itm_score"] is not None and h["caption"]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_no_rerank_gives_clip_order_and_null_itm(indexed: Path) -> None:
    code, out, _ = _run("query", "a blue square", "--json", "--no-rerank", "--mode", "vector")
    hits = json.loads(out)
    assert code == 0 and all(h["itm_score"] is None for h in hits)
    assert [h["score"] for h in hits] == [h["clip_score"] for h in hits]
    assert [h["clip_score"] for h in hits] == sorted((h["clip_score"] for h in hits), reverse=True)


def test_cold_no_rerank_query_loads_no_torch_and_agrees(indexed: Path, tmp_path: Path) -> None:
    """The index run left CLIP's text tower as ONNX: a fresh process answers `--no-rerank`
    without importing torch, with the hits of the full path (scores within bf16 rounding). The
    garbage collector, off for the start-up (`app.main`), is on again once the index is open."""
    import subprocess
    import sys

    code = ("import sys, json\nfrom imgsearch.cli.app import main\n"
            "sys.argv = ['imgsearch', 'query', 'a blue square', '--json', '--no-rerank']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "import gc\nassert gc.isenabled() and gc.get_freeze_count(), 'collector not back on after start-up'\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH', file=sys.stderr)\n")
    cold = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert cold.returncode == 0, cold.stderr
    assert cold.stderr.strip().endswith("NO TORCH")
    from imgsearch.library.local import LocalIndex
    from imgsearch.models import Models
    from imgsearch.searcher.request import SearchRequest, words
    from imgsearch.settings import Settings

    with LocalIndex(Settings(), models=Models(Settings())) as idx:  # torch, not the export
        full = idx.search(SearchRequest((words("a blue square"),), rerank_k=0))
    light = json.loads(cold.stdout)
    assert [h["path"] for h in light][:3] == [h.path for h in full][:3]
    assert max(abs(a["clip_score"] - b.clip_score) for a, b in zip(light, full)) < 0.02


def _index_in_a_fresh_process(folder: Path) -> tuple[dict, list[str]]:
    """`imgsearch index FOLDER --json` in a new process: its report, and which of the heavy
    model modules it imported."""
    import ast
    import subprocess
    import sys

    code = ("import sys\nfrom imgsearch.cli.app import main\n"
            f"sys.argv = ['imgsearch', 'index', {str(folder)!r}, '--json']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "import gc\nassert gc.isenabled(), 'an index run without the garbage collector'\n"
            "heavy = ('torch', 'open_clip', 'transformers')\n"
            "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout), ast.literal_eval(run.stderr.strip().splitlines()[-1])


def test_index_again_loads_no_model_unless_a_picture_is_new(indexed: Path) -> None:
    """A run that finds every picture as it was (the everyday re-run), or moved, renamed or
    copied, loads no model: neither torch nor open_clip is imported (seconds before any work).
    A picture with new content is embedded, tagged and searchable as before."""
    report, heavy = _index_in_a_fresh_process(indexed)
    assert report["embedded"] == report["captioned"] == report["tagged"] == 0 and report["unchanged"] == 13
    assert heavy == []

    (indexed / "moved").mkdir()
    pictures = sorted(p for p in indexed.iterdir() if p.suffix in (".jpg", ".png") and p.name != "broken.jpg")
    first, second = pictures[:2]
    first.rename(indexed / "moved" / first.name)
    (indexed / f"copy{second.suffix}").write_bytes(second.read_bytes())
    report, heavy = _index_in_a_fresh_process(indexed)
    assert (report["moved"], report["copied"], report["embedded"], report["removed"]) == (1, 1, 0, 0)
    assert report["tagged"] == 1 and heavy == []  # the copy, from its stored vector and the kept classes

    from PIL import Image

    Image.new("RGB", (96, 96), (250, 250, 250)).save(indexed / "late.png")
    code, out, err = _run("index", str(indexed), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["embedded"] == report["tagged"] == report["captioned"] == 1 and report["unchanged"] == 14
    code, out, _ = _run("query", "a white background", "--json", "--no-rerank", "--min-match", "0",
                        "--limit", "20")
    assert str(indexed / "late.png") in [h["path"] for h in json.loads(out)]


def test_rerank_k_limits_how_many_are_reranked(indexed: Path) -> None:
    _, out, _ = _run("query", "a blue square", "--json", "--rerank-k", "3", "--limit", "8", "--min-match", "0")
    hits = json.loads(out)
    assert sum(h["itm_score"] is not None for h in hits) == 3
    assert all(h["itm_score"] is None for h in hits[3:])


def test_table_output_and_status(indexed: Path) -> None:
    code, out, _ = _run("query", "a green star", "--limit", "3", "--json")
    paths = [h["path"] for h in json.loads(out)]
    code, out, _ = _run("query", "a green star", "--limit", "3")
    assert code == 0 and "score" in out
    assert [p for p in paths if p in out] == paths
    code, out, _ = _run("status", "--json")
    status = json.loads(out)
    assert code == 0
    assert status["images"] == status["vectors"] == 12
    assert status["captioned"] == 12 and status["skipped"] == 1
    assert status["skipped_files"][0]["reason"]
    code, out, _ = _run("status")
    assert code == 0 and "skipped" in out


def test_unknown_profile_is_a_clear_error() -> None:
    code, _, err = _run("status", "--models", "huge")
    assert code != 0
    code, _, err = _run("query", "x", "--models", "huge")
    assert code == 2 and "unknown model profile" in err and "tiny" in err


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for command in ("index", "query", "status", "tags", "concept", "dupes", "watch", "example", "service"):
        code, out, _ = _run(command, "--help")
        assert code == 0 and "Usage" in out
        assert f"imgsearch {command}" in readme
    for sub in ("install", "status", "stop", "uninstall"):
        code, out, _ = _run("service", sub, "--help")
        assert code == 0 and "Usage" in out and sub in readme
    for sub in ("add", "list", "show", "remove"):
        code, out, _ = _run("concept", sub, "--help")
        assert code == 0 and "Usage" in out and f"concept {sub}" in readme


def test_a_wait_inside_a_phase_is_printed_above_the_bars_with_its_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from io import StringIO
    from types import SimpleNamespace

    from rich.console import Console
    from rich.progress import Progress

    from imgsearch.cli import output
    from imgsearch.cli.output import RichProgress
    from imgsearch.progress import reporting, waiting

    clock = iter([100.0, 117.4])  # the wait's start and end, as the note reads them: no real clock
    monkeypatch.setattr(output, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    printed = StringIO()
    with Progress(console=Console(file=printed, width=200)) as bars:
        progress = RichProgress(bars)
        progress.phase("vectors", 10)
        with reporting(progress), waiting("building a faster image encoder for this CPU, once for this model"):
            pass
        progress.advance(10)
    lines = printed.getvalue().splitlines()
    said = next(i for i, line in enumerate(lines) if "Building a faster image encoder" in line)
    assert lines[said].strip() == "Building a faster image encoder for this CPU, once for this model..."
    assert lines[said + 1].strip() == "done in 17 s"
    quiet = RichProgress(None)  # --json, no terminal: nothing drawn, nothing said
    quiet.note("building")
    quiet.note(None)
