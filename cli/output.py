"""Everything the CLI prints: tables, JSON, progress bars, error messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

err = Console(stderr=True)
out = Console()


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


class _RateColumn(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task: Any) -> Any:
        speed = task.finished_speed or task.speed
        from rich.text import Text

        return Text(f"{speed:.1f} img/s" if speed else "", style="progress.data.speed")


class RichProgress:
    """The library's Progress protocol drawn as rich bars: one per phase, with rate and ETA."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._task: Any = None

    def phase(self, name: str, total: int | None) -> None:
        if self._progress is not None and total != 0:  # nothing to do: no empty bar
            self._task = self._progress.add_task(name, total=total)

    def advance(self, n: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def done(self) -> None:
        self._task = None


@contextmanager
def progress_bar(enabled: bool) -> Iterator[RichProgress]:
    if not enabled:
        yield RichProgress(None)
        return
    columns = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               _RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False) as p:
        yield RichProgress(p)


def print_index_report(report: Any, as_json: bool) -> None:
    from dataclasses import asdict

    if as_json:
        d = asdict(report)
        d["skipped"] = [{"path": p, "reason": r} for p, r in report.skipped]
        d["problems"] = [{"path": p, "reason": r} for p, r in report.problems]
        out.print_json(json.dumps(d))
        return
    parts = [f"{report.seen} images seen", f"{report.embedded} embedded", f"{report.unchanged} unchanged"]
    for label, n in (("moved", report.moved), ("copied from duplicates", report.copied),
                     ("removed", report.removed), ("captioned", report.captioned),
                     ("repaired after an interrupted run", report.repaired)):
        if n:
            parts.append(f"{n} {label}")
    out.print(", ".join(parts))
    if report.skipped:
        out.print(f"[yellow]{len(report.skipped)} skipped:[/]")
        for path, reason in report.skipped[:20]:
            out.print(f"  {path}: {reason}", highlight=False)
        if len(report.skipped) > 20:
            out.print(f"  … and {len(report.skipped) - 20} more (imgsearch status lists them all)")
    for path, reason in report.problems:
        out.print(f"[yellow]not scanned:[/] {path}: {reason}", highlight=False)


def print_hits(hits: list[Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([h.as_json() for h in hits], indent=2))
        return
    if not hits:
        out.print("No results. Is anything indexed? Try: imgsearch index ~/Photos")
        return
    table = Table(show_edge=False)
    for col in ("#", "score", "clip", "itm", "path", "caption"):
        table.add_column(col, overflow="fold")
    for i, h in enumerate(hits, 1):
        itm = f"{h.itm_score:.3f}" if h.itm_score is not None else "-"
        table.add_row(str(i), f"{h.score:.3f}", f"{h.clip_score:.3f}", itm, h.path, h.caption or "")
    out.print(table)


def print_status(status: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(status.as_json(), indent=2, default=str))
        return
    vectors = "unknown (store busy)" if status.vectors is None else str(status.vectors)
    rows = [
        ("profile", status.profile), ("images", str(status.images)), ("vectors", vectors),
        ("captioned", str(status.captioned)), ("pending vectors", str(status.pending_vectors)),
        ("pending captions", str(status.pending_captions)), ("skipped", str(status.skipped)),
        ("catalog", status.catalog), ("vector store", status.vector_store),
    ] + [(k, v) for k, v in status.models.items()]
    for k, v in rows:
        out.print(f"{k:>17}: {v}", highlight=False)
    if status.note:
        out.print(f"[yellow]note:[/] {status.note}")
    for path, reason in status.skipped_files[:50]:
        out.print(f"  skipped {path}: {reason}", highlight=False)
