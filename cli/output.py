"""Everything the CLI prints: tables, JSON, progress bars, error messages."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer


class _Console:
    """A rich Console made on first use: a command that prints JSON only never imports rich
    (~30 ms of a cold `query --json`)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def get(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


err = _Console(stderr=True)
out = _Console()


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


class RichProgress:
    """The library's Progress protocol drawn as rich bars: one per phase, with rate and ETA."""

    def __init__(self, progress: Any) -> None:  # a rich Progress, or None: draw nothing
        self._progress = progress
        self._task: Any = None
        self._waiting: float | None = None  # when the note being shown was said

    def phase(self, name: str, total: int | None) -> None:
        if self._progress is not None and total != 0:  # nothing to do: no empty bar
            self._task = self._progress.add_task(name, total=total)

    def advance(self, n: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def note(self, text: str | None) -> None:
        """A line above the bars when a one-off wait starts, its time when it ends."""
        if self._progress is None:
            return
        from rich.text import Text  # a Text, not print's style=, which would dim the bars drawn with it

        if text is not None:
            self._waiting = time.monotonic()
            self._progress.console.print(Text(f"{text[0].upper()}{text[1:]}...", style="dim"))
        elif self._waiting is not None:
            took = time.monotonic() - self._waiting
            self._progress.console.print(Text(f"  done in {took:.0f} s", style="dim"))
            self._waiting = None

    def done(self) -> None:
        self._task = None


@contextmanager
def progress_bar(enabled: bool) -> Iterator[RichProgress]:
    if not enabled:
        yield RichProgress(None)
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(TextColumn):
        def __init__(self) -> None:
            super().__init__("")

        def render(self, task: Any) -> Any:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f} img/s" if speed else "", style="progress.data.speed")

    columns = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=err.get(), transient=False) as p:
        yield RichProgress(p)


def print_index_report(report: dict[str, Any], as_json: bool) -> None:
    """`report`: an index report as JSON (what the library's report_json and the service give)."""
    if as_json:
        out.print_json(json.dumps(report))
        return
    parts = [f"{report['seen']} images seen", f"{report['embedded']} embedded", f"{report['unchanged']} unchanged"]
    for label, key in (("moved", "moved"), ("copied from duplicates", "copied"), ("removed", "removed"),
                       ("tagged", "tagged"), ("captioned", "captioned"), ("text read", "texts_read"),
                       ("repaired after an interrupted run", "repaired")):
        if report.get(key):
            parts.append(f"{report[key]} {label}")
    if report.get("search_index_built"):
        parts.append("search index (HNSW) built")
    out.print(", ".join(parts))
    skipped = report.get("skipped", [])
    if skipped:
        out.print(f"[yellow]{len(skipped)} skipped:[/]")
        for s in skipped[:20]:
            out.print(f"  {s['path']}: {s['reason']}", highlight=False)
        if len(skipped) > 20:
            out.print(f"  … and {len(skipped) - 20} more (imgsearch status lists them all)")
    for p in report.get("problems", []):
        out.print(f"[yellow]not scanned:[/] {p['path']}: {p['reason']}", highlight=False)
    if report.get("cancelled"):
        out.print("[yellow]stopped early; the next run finishes the work[/]")


def print_hits(hit_dicts: list[dict[str, Any]], as_json: bool, empty: str | None = None) -> None:
    """`empty`: what to say when nothing came back (the default asks whether anything is indexed)."""
    from types import SimpleNamespace

    if as_json:
        typer.echo(json.dumps(hit_dicts, indent=2))
        return
    hits = [SimpleNamespace(**h) for h in hit_dicts]
    if not hits:
        out.print(empty or "No results. Is anything indexed? Try: imgsearch index ~/Photos")
        return
    from rich.table import Table

    table = Table(show_edge=False)
    for col in ("#", "match", "score", "clip", "path", "caption", "tags"):
        table.add_column(col, overflow="fold")
    for i, h in enumerate(hits, 1):
        tags = ", ".join(list(getattr(h, "tags", None) or {})[:4])
        table.add_row(str(i), _num(h.match), _num(h.score), _num(h.clip_score), h.path, h.caption or "", tags)
    out.print(table)
    explained = [h for h in hits if h.explain]
    for i, h in enumerate(explained, 1):
        out.print(f"{i}. {h.path}: {_why(h.explain)}", highlight=False)


def print_tags(listing: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(listing, indent=2))
        return
    if not listing["tags"]:
        out.print("No picture is tagged yet. Index some: imgsearch index ~/Photos" if not listing["tagged"]
                  else f"None of the {listing['tagged']} tagged pictures carries a tag of the vocabulary.")
        return
    from rich.table import Table

    table = Table(show_edge=False)
    table.add_column("tag")
    table.add_column("pictures", justify="right")
    for t in listing["tags"]:
        table.add_row(t["label"], str(t["count"]))
    out.print(table)
    out.print(f"{listing['tagged']} of {listing['images']} pictures tagged; vocabulary: {listing['vocabulary']}",
              highlight=False)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _why(e: dict[str, Any]) -> str:
    """One line of `--explain`: the scores, the ranks it came in at, the words found where."""
    parts = [f"CLIP {_num(e['clip'])}", f"ITM {_num(e['itm'])}" if e["reranked"] else "not reranked"]
    if e.get("not_penalty"):
        parts.append(f"--not {_num(e['not_penalty'])}")
    ranks = ", ".join(f"{k} #{v}" for k, v in e["ranks"].items() if v is not None)
    if ranks:
        parts.append(f"found by {ranks}")
    found = [f"{', '.join(ws)} in its {field}" for field, ws in (e.get("words") or {}).items() if ws]
    if found:
        parts.append("; ".join(found))
    if e.get("names_match"):
        parts.append("every word in its name or folders: a match")
    return "; ".join(parts)


def print_status(status_json: dict[str, Any], as_json: bool) -> None:
    from types import SimpleNamespace

    if as_json:
        typer.echo(json.dumps(status_json, indent=2, default=str))
        return
    status = SimpleNamespace(**status_json)
    status.skipped_files = [(s["path"], s["reason"]) for s in status_json["skipped_files"]]
    vectors = "unknown (store busy)" if status.vectors is None else str(status.vectors)
    rows = [
        ("profile", status.profile), ("images", str(status.images)), ("vectors", vectors),
        ("captioned", str(status.captioned)), ("text read", str(status.text_read)),
        ("tagged", str(status_json.get("tagged", 0))),
        ("pending vectors", str(status.pending_vectors)),
        ("pending captions", str(status.pending_captions)), ("skipped", str(status.skipped)),
        ("catalog", status.catalog), ("vector store", status.vector_store),
    ] + [(k, v) for k, v in status.models.items()]
    if status_json.get("image_runtime"):
        from imgsearch.models.onnx_image import describe

        rows.append(("image runtime", describe(status_json["image_runtime"])))
        for role, choice in (status_json["image_runtime"].get("blip_vision") or {}).items():
            rows.append((f"{role} vision", f"{choice.get('chosen')} ({choice.get('why')})"))
            if choice.get("decoder"):
                rows.append((f"{role} decoder", choice["decoder"]))
        text = status_json["image_runtime"].get("text_tower")
        if text:
            rows.append(("CLIP text tower", f"{text['chosen']} ({text['why']})"))
    for k, v in rows:
        out.print(f"{k:>17}: {v}", highlight=False)
    activity = status_json.get("activity")
    if activity:
        busy = activity["state"] if activity["state"] == "idle" else (
            f"{activity['state']} {activity['done']}/{activity['total'] if activity['total'] is not None else '?'}")
        out.print(f"{'service':>17}: {status_json.get('service', 'running')}, {busy}, {activity['queued']} waiting",
                  highlight=False)
    if status.note:
        out.print(f"[yellow]note:[/] {status.note}")
    for path, reason in status.skipped_files[:50]:
        out.print(f"  skipped {path}: {reason}", highlight=False)
