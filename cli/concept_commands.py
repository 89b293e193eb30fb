"""`imgsearch concept ...`: concepts taught by example pictures (a linear probe on CLIP vectors),
kept in the index's catalog. Through the running service when there is one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .options import HomeOpt, JsonOpt, ModelsOpt, QdrantOpt, guarded, open_index, settings
from .output import err, out

concept_app = typer.Typer(help="Concepts taught by example pictures: add, list, show, remove.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The concept's name (letters, digits, '_', '-', '.').")]


def _open(home: Path | None, models: str | None, qdrant_url: str | None) -> Any:
    return open_index(settings(home, models, qdrant_url))


def _guarded(fn: Any) -> Any:
    return guarded(fn, "interrupted")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=1, ensure_ascii=False))


def _describe(summary: dict[str, Any]) -> None:
    out.print(f"[bold]{summary['name']}[/]: {len(summary['positives'])} examples, "
              f"{len(summary['negatives'])} --not, {summary['random_negatives']} random library pictures "
              f"(updated {summary['updated_at']})", highlight=False)


@concept_app.command()
def add(
    name: NameArg,
    examples: Annotated[list[Path], typer.Argument(metavar="EXAMPLE", help="Pictures that show it: files or folders (indexed or not).")],
    not_: Annotated[Optional[list[Path]], typer.Option("--not", help="A picture (or folder) that does not show it.")] = None,
    random_negatives: Annotated[int, typer.Option("--random", min=0, max=10_000, help=(
        "Random library pictures to tell it from (besides --not)."))] = 200,
    home: HomeOpt = None, models: ModelsOpt = None, qdrant_url: QdrantOpt = None, as_json: JsonOpt = False,
) -> None:
    """Teach a concept by example pictures, or add examples to one (it is trained again, keeping
    the old examples). Indexed pictures lend their stored vectors; others are embedded now."""

    def run() -> Any:
        from imgsearch.concepts import ConceptError, check_name
        from imgsearch.library.concepts import gather

        check_name(name)
        positives, missing = gather(examples)
        negatives, missing_not = gather(not_ or [])
        if not positives:
            raise ConceptError("no example picture found in " + ", ".join(str(e) for e in examples))
        for path, reason in missing + missing_not:
            err.print(f"skipped {path}: {reason}", highlight=False)
        with _open(home, models, qdrant_url) as idx:
            return idx.concept_add(name, positives, negatives, random_negatives=random_negatives), missing + missing_not

    report, missing = _guarded(run)
    for path, reason in report.skipped:
        err.print(f"skipped {path}: {reason}", highlight=False)
    summary = report.concept.summary()
    if as_json:
        _print_json({"concept": summary, "added_positives": report.added_positives,
                     "added_negatives": report.added_negatives, "retrained": report.retrained,
                     "skipped": [{"path": p, "reason": r} for p, r in (*missing, *report.skipped)]})
        return
    verb = "retrained" if report.retrained else "trained"
    out.print(f"{verb} {name!r} with {report.added_positives} new examples and {report.added_negatives} new --not",
              highlight=False)
    _describe(summary)


@concept_app.command("list")
def list_(home: HomeOpt = None, models: ModelsOpt = None, qdrant_url: QdrantOpt = None, as_json: JsonOpt = False) -> None:
    """The concepts of this index."""

    def run() -> Any:
        with _open(home, models, qdrant_url) as idx:
            return [c.summary() for c in idx.concepts()]

    summaries = _guarded(run)
    if as_json:
        _print_json(summaries)
    elif not summaries:
        out.print("No concepts yet: imgsearch concept add NAME PICTURE...", highlight=False)
    for s in [] if as_json else summaries:
        _describe(s)


@concept_app.command()
def show(name: NameArg, home: HomeOpt = None, models: ModelsOpt = None, qdrant_url: QdrantOpt = None,
         as_json: JsonOpt = False) -> None:
    """A concept's examples, model and when it was made."""

    def run() -> Any:
        with _open(home, models, qdrant_url) as idx:
            return idx.concept(name).summary()

    s = _guarded(run)
    if as_json:
        _print_json(s)
        return
    _describe(s)
    out.print(f"CLIP model: {s['clip_model']} ({s['dim']}-d); made {s['created_at']}", highlight=False)
    for label, names in (("example", s["positives"]), ("not", s["negatives"])):
        for n in names:
            out.print(f"  {label}: {n}", highlight=False)


@concept_app.command()
def remove(name: NameArg, home: HomeOpt = None, models: ModelsOpt = None, qdrant_url: QdrantOpt = None,
           as_json: JsonOpt = False) -> None:
    """Forget a concept."""

    def run() -> None:
        with _open(home, models, qdrant_url) as idx:
            idx.concept_remove(name)

    _guarded(run)
    if as_json:
        _print_json({"removed": name})
    else:
        out.print(f"removed {name!r}", highlight=False)
