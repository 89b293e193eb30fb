"""`imgsearch dupes`: groups of pictures that are the same photo, the one to keep first, each other
one with what it lacks, and one line of the others' paths to copy. It deletes nothing. Through
the running service when there is one."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from .options import HomeOpt, JsonOpt, ModelsOpt, QdrantOpt, guarded, open_index, settings
from .output import err, out, progress_bar


def dupes(
    folders: Annotated[list[Path] | None, typer.Option("--in", help="Only pictures under this folder (repeat: any of them).")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", min=0.01, max=1.0, help=(
        "CLIP cosine two pictures need to be compared pixel by pixel (default 0.85; lower finds more, slower)."))] = None,
    home: HomeOpt = None,
    models: ModelsOpt = None,
    qdrant_url: QdrantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find copies of one photo (resized, recompressed, cropped a little, converted, without EXIF):
    groups, best first, with what differs. Nothing is deleted."""
    where = [str(f.expanduser().absolute()) for f in folders or ()]

    def run() -> Any:
        with open_index(settings(home, models, qdrant_url)) as idx, progress_bar(enabled=not as_json) as progress:
            return idx.dupes(threshold=threshold, folders=where, progress=progress)

    report = guarded(run, "interrupted; nothing was changed")
    print_dupes(report, as_json)


def print_dupes(report: dict[str, Any], as_json: bool) -> None:
    for skipped in report["skipped"]:
        err.print(f"skipped {skipped['path']}: {skipped['reason']}", highlight=False, markup=False)
    if as_json:
        out.print_json(json.dumps(report))
        return
    groups = report["groups"]
    if not groups:
        out.print(f"No copies of one photo among {report['pictures']} pictures.", highlight=False)
        return
    out.print(f"{len(groups)} groups of the same photo among {report['pictures']} pictures "
              "(the first of each is the one to keep; nothing was deleted):", highlight=False)
    for group in groups:
        keep, *others = group["members"]
        out.print("", highlight=False)
        out.print(f"keep  {keep['path']}  ({_facts(keep)})", highlight=False, markup=False, soft_wrap=True)
        for m in others:
            out.print(f"      {m['path']}  ({'; '.join(m['differs'])})", highlight=False, markup=False,
                      soft_wrap=True)
    out.print("", highlight=False)
    out.print("The others' paths:", highlight=False)
    out.print(" ".join(shlex.quote(p) for p in report["others"]), highlight=False, markup=False, soft_wrap=True)


def _facts(member: dict[str, Any]) -> str:
    quality = f" ~{member['quality']}" if member["quality"] else ""
    exif = ", EXIF" if member["exif"] else ""
    return f"{member['width']}×{member['height']}, {member['format']}{quality}{exif}"
