"""The `imgsearch` command. It parses, calls one library function, prints. Heavy imports (torch,
SQLAlchemy, Qdrant) happen inside the commands so `imgsearch --help` is instant."""

from __future__ import annotations

import gc
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .concept_commands import concept_app
from .dupes_command import dupes
from .options import HomeOpt, JsonOpt, ModelsOpt, QdrantOpt
from .options import guarded as _guarded
from .options import open_index as _open
from .options import settings as _settings
from .options import start_up_done
from .output import err, print_hits, print_index_report, print_status, print_tags, progress_bar
from .output import out as _out
from .service_commands import service_app

app = typer.Typer(
    name="imgsearch",
    help="Search your photos with plain words: CLIP vectors in Qdrant, BLIP captions and reranking.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.command()
def index(
    paths: Annotated[list[Path], typer.Argument(help="Folders (or files) to index.")],
    no_captions: Annotated[bool, typer.Option("--no-captions", help="Only CLIP vectors; skip BLIP captions.")] = False,
    no_ocr: Annotated[bool, typer.Option("--no-ocr", help="Do not read the text in pictures (env IMGSEARCH_OCR=0).")] = False,
    precompute_rerank: Annotated[bool, typer.Option("--precompute-rerank", help="Also fill the ITM rerank cache.")] = False,
    ray: Annotated[Optional[str], typer.Option("--ray", metavar="ADDRESS", help=(
        "Run the models (CLIP, captions, OCR) on a Ray cluster (its head's host:port; auto: start one on "
        "this machine). Every node must read PATHS at the same path (a shared mount). Needs the scale extra "
        "(Ray)."))] = None,
    ray_workers: Annotated[Optional[int], typer.Option("--ray-workers", min=1, help=(
        "Model actors on the cluster (default: one per GPU, else one per IMGSEARCH_RAY_WORKER_CPUS cores)."))] = None,
    home: HomeOpt = None,
    models: ModelsOpt = None,
    qdrant_url: QdrantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Scan folders and bring the index in step: new, changed, moved and deleted images."""
    settings = _settings(home, models, qdrant_url)
    if ray_workers is not None:
        settings = settings.model_copy(update={"ray_workers": ray_workers})

    def run() -> Any:
        if ray is not None:  # this process writes; the models run on the cluster
            from imgsearch.indexer.distributed import run_ray_index

            with progress_bar(enabled=not as_json) as progress:
                return run_ray_index(settings, paths, ray, captions=not no_captions, texts=not no_ocr,
                                     precompute_rerank=precompute_rerank, progress=progress).as_json()
        with _open(settings) as idx, progress_bar(enabled=not as_json) as progress:
            return idx.index(paths, captions=not no_captions, texts=not no_ocr, precompute_rerank=precompute_rerank,
                             progress=progress)

    print_index_report(_guarded(run), as_json)


@app.command()
def query(
    terms: Annotated[Optional[list[str]], typer.Argument(
        metavar="[QUERY]...", help="Words, a picture file or an http(s) URL of one; several add up "
        "(`2:beach` weighs twice). None: the filters alone list pictures, newest first.")] = None,
    not_: Annotated[Optional[list[str]], typer.Option("--not", help="Push away pictures like this (words or picture).")] = None,
    folders: Annotated[Optional[list[Path]], typer.Option("--in", help="Only pictures under this folder (repeat: any of them).")] = None,
    date_from: Annotated[Optional[str], typer.Option("--from", help="From this date on: YYYY, YYYY-MM or YYYY-MM-DD.")] = None,
    date_until: Annotated[Optional[str], typer.Option("--until", help="Up to the end of this date (YYYY[-MM[-DD]]).")] = None,
    camera: Annotated[Optional[str], typer.Option("--camera", help="EXIF make or model contains this (any case).")] = None,
    tags: Annotated[Optional[list[str]], typer.Option("--tag", help="Only pictures tagged this (repeat: all of them; see `imgsearch tags`).")] = None,
    concepts: Annotated[Optional[list[str]], typer.Option("--concept", help=(
        "Rank by a concept taught by example (`imgsearch concept add`), cut at --min-match; repeat: all of them."))] = None,
    sort: Annotated[Optional[str], typer.Option("--sort", help="relevance, newest or oldest (default: relevance; newest without QUERY).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many results (1-10,000).")] = 20,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many (paging: --limit 10 --offset 10).")] = 0,
    rerank_k: Annotated[int, typer.Option("--rerank-k", help="Rerank this many top CLIP hits with BLIP ITM (0-1,000).")] = 20,
    no_rerank: Annotated[bool, typer.Option("--no-rerank", help="CLIP order only (same as --rerank-k 0).")] = False,
    min_match: Annotated[Optional[float], typer.Option("--min-match", min=0.0, max=1.0, help=(
        "Only pictures at least this likely to match the words (BLIP ITM probability, 0-1; 0: show all; "
        "default: env IMGSEARCH_MIN_MATCH, 0.5). Needs the rerank."))] = None,
    mode: Annotated[str, typer.Option("--mode", help=(
        "hybrid: CLIP and words in file names, folders and captions; vector: CLIP only; text: words only."))] = "hybrid",
    explain: Annotated[bool, typer.Option("--explain", help="Say why each picture matched (scores, ranks, words).")] = False,
    home: HomeOpt = None,
    models: ModelsOpt = None,
    qdrant_url: QdrantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find pictures by words, by picture, or both, best first; narrow them by folder, date, camera."""
    settings = _settings(home, models, qdrant_url)

    def run() -> Any:
        from imgsearch.searcher.request import SearchRequest

        from .terms import term

        request = SearchRequest(
            (*(term(t) for t in terms or ()), *(term(t, negative=True) for t in not_ or ())),
            folders=tuple(str(f.expanduser().absolute()) for f in folders or ()), date_from=date_from,
            date_until=date_until, camera=camera, tags=tuple(tags or ()), concepts=tuple(concepts or ()),
            sort=sort or ("relevance" if terms or concepts else "newest"),
            limit=limit, offset=offset, rerank_k=0 if no_rerank else rerank_k, mode=mode,
            min_match=settings.min_match if min_match is None else min_match, explain=explain,
        ).check()  # the same limits and message with or without a service
        with _open(settings) as idx:
            return request, [h.as_json() for h in idx.search(request)]

    request, hits = _guarded(run)
    cutoff = request.min_match if (request.positive_words and request.rerank_k > 0) or request.concepts else 0
    empty = (f"No picture matches (none at least {cutoff:g} likely); --min-match 0 shows the closest ones."
             if cutoff else None)
    print_hits(hits, as_json, empty)


@app.command("tags")
def tags_command(
    home: HomeOpt = None,
    models: ModelsOpt = None,
    qdrant_url: QdrantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The tags pictures carry (zero-shot, from the profile's vocabulary or IMGSEARCH_TAGS_FILE),
    with how many carry each: what `query --tag` filters by."""
    settings = _settings(home, models, qdrant_url)

    def run() -> Any:
        with _open(settings) as idx:
            return idx.tags()

    print_tags(_guarded(run), as_json)


@app.command()
def status(
    home: HomeOpt = None,
    models: ModelsOpt = None,
    qdrant_url: QdrantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What the index holds, what is pending, what was skipped and why, where it all lives."""
    settings = _settings(home, models, qdrant_url)

    def run() -> Any:
        with _open(settings) as idx:
            return idx.status()

    print_status(_guarded(run), as_json)


@app.command()
def watch(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Folders to watch (added to those it already watches).")] = None,
    host: Annotated[Optional[str], typer.Option("--host", help="Address to serve on (default 127.0.0.1; others need a token).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="Port to serve on (0: any free port).")] = None,
    token: Annotated[Optional[str], typer.Option("--token", help="Token requests must carry (env IMGSEARCH_TOKEN).")] = None,
    polling: Annotated[bool, typer.Option("--polling", help="Poll for changes instead of inotify (network mounts).")] = False,
    no_captions: Annotated[bool, typer.Option("--no-captions", help="Only CLIP vectors; skip BLIP captions.")] = False,
    no_ocr: Annotated[bool, typer.Option("--no-ocr", help="Do not read the text in pictures.")] = False,
    query_only: Annotated[bool, typer.Option("--query-only", help=(
        "Only answer queries, from stores another process writes (a Qdrant server: --qdrant-url; the "
        "catalog: IMGSEARCH_CATALOG_URL): no writer lock, no watching, no indexing. Several may run."))] = False,
    home: HomeOpt = None,
    models: ModelsOpt = None,
    qdrant_url: QdrantOpt = None,
) -> None:
    """Run the background service: keep the folders indexed as they change and answer queries
    (HTTP API on 127.0.0.1) with warm models. Stop with Ctrl-C or SIGTERM."""
    settings = _settings(home, models, qdrant_url)
    overrides = {k: v for k, v in (("host", host), ("port", port), ("token", token)) if v is not None}
    if polling:
        overrides["polling"] = True
    if no_ocr:
        overrides["ocr"] = False
    if overrides:
        settings = settings.model_copy(update=overrides)

    def run() -> None:
        from imgsearch.service.run import run_service

        start_up_done()
        run_service(settings, paths or [], captions=not no_captions, echo=lambda m: err.print(m, highlight=False),
                    stop=_STOP, query_only=query_only)

    _guarded(run)


@app.command()
def example(
    folder: Annotated[Path, typer.Argument(help="Where to write the example pictures.")],
    count: Annotated[int, typer.Option("--count", min=1, help="How many pictures.")] = 60,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generator (same seed, same pictures).")] = 7,
) -> None:
    """Write the bundled example collection (pictures of the shapes world the tiny models know)
    to FOLDER, to try imgsearch offline: `imgsearch index FOLDER --models tiny`."""
    from imgsearch.shapes.examples import write_examples

    written = write_examples(folder, count, seed)
    _out.print(f"wrote {written} pictures to {folder}; try: imgsearch index {folder} --models tiny")


app.add_typer(service_app, name="service")
app.command("dupes")(dupes)
app.add_typer(concept_app, name="concept")


def main() -> None:
    # A cold command spent ~0.4 s of its ~1.8 s in the cyclic garbage collector (AVX2 EPYC, a
    # cold `query --no-rerank`): collections while the imports build SQLAlchemy's, typer's and
    # pydantic's many objects, none of them garbage, and at exit, over everything the interpreter
    # is about to free anyway. So it is off until the index is open (`options.start_up_done`
    # turns it on, the start-up's objects frozen), and everything is frozen before the exit.
    gc.disable()
    if sys.argv[1:2] == ["watch"]:
        _catch_stop_signals()
    try:
        app()
    finally:
        gc.freeze()


_STOP = threading.Event()


def _catch_stop_signals() -> None:
    """`watch` takes seconds to import and load: a SIGTERM (systemd stopping it) or Ctrl-C in
    that time must still end it cleanly (exit 0), so from the first moment they only set a flag
    that the service looks at between its start-up steps."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: _STOP.set())


if __name__ == "__main__":
    sys.exit(main())
