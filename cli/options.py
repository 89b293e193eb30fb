"""What every command shares: the options naming the index (`--home`, `--models`,
`--qdrant-url`), `--json`, how the settings are built from them, how the index is opened (the
running service's, else this process's own) and how a library error becomes a message and an
exit code. One definition for `imgsearch`, `imgsearch concept …` and `imgsearch dupes`."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .output import fail

HomeOpt = Annotated[Optional[Path], typer.Option("--home", help="Data directory (env IMGSEARCH_HOME).")]
ModelsOpt = Annotated[Optional[str], typer.Option("--models", help="Model profile: default or tiny (env IMGSEARCH_MODELS).")]
QdrantOpt = Annotated[Optional[str], typer.Option("--qdrant-url", help="Use a Qdrant server instead of the embedded store.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def settings(home: Path | None, models: str | None, qdrant_url: str | None) -> Any:
    """Settings from the environment, with the options given on the command line on top."""
    from imgsearch.settings import Settings

    given = (("home", home), ("models", models), ("qdrant_url", qdrant_url))
    return Settings(**{k: v for k, v in given if v is not None})


def open_index(settings: Any) -> Any:
    """The index: the running service's when there is one, else this process's own."""
    from imgsearch.library import open_index as open_any

    index = open_any(settings)
    start_up_done()
    return index


def start_up_done() -> None:
    """Turn the garbage collector back on once the command's start-up (its imports) is over, with
    what the start-up made set aside (frozen), so later collections do not walk it again: a long
    command (an index run, the service) collects as usual. A no-op where `app.main` did not turn
    it off (tests, the library called directly). A model loaded later is frozen once loaded, as
    the start-up is: this process keeps it until it exits."""
    if not gc.isenabled():
        from imgsearch.models import freeze_what_loads_make

        freeze_what_loads_make()
        gc.freeze()
        gc.enable()


def guarded(fn: Any, interrupted: str = "interrupted; the next run picks up where this one stopped") -> Any:
    """`fn()`, with an ImgsearchError said plainly (its exit code) and Ctrl-C as exit 130."""
    from imgsearch.errors import ImgsearchError

    try:
        return fn()
    except ImgsearchError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail(interrupted, 130)
