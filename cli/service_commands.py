"""`imgsearch service ...`: install the watch service as a systemd user unit, see it, stop it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .options import HomeOpt, ModelsOpt, settings
from .output import out

service_app = typer.Typer(help="Run `imgsearch watch` as a background service (systemd user unit).",
                          no_args_is_help=True)


def _settings(home: Path | None, models: str | None) -> Any:
    return settings(home, models, None)


@service_app.command()
def install(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Folders the service watches.")] = None,
    home: HomeOpt = None, models: ModelsOpt = None,
) -> None:
    """Write and enable a systemd user unit that runs `imgsearch watch` at login."""
    from imgsearch.service.systemd import install as do_install

    for line in do_install(_settings(home, models), paths or []):
        out.print(line, highlight=False)


@service_app.command()
def status(home: HomeOpt = None, models: ModelsOpt = None) -> None:
    """Is the unit installed, is a service running for this data directory, where is it."""
    from imgsearch.service.client import find_service, read_service_file
    from imgsearch.service.systemd import unit_state

    settings = _settings(home, models)
    out.print(f"unit: {unit_state(settings)}", highlight=False)
    client = find_service(settings)
    info = read_service_file(settings) or {}
    out.print(f"service: running at {client.url} (pid {info.get('pid')})" if client else "service: not running",
              highlight=False)


@service_app.command()
def stop(home: HomeOpt = None, models: ModelsOpt = None) -> None:
    """Stop the running service (SIGTERM: it finishes the batch in hand and flushes)."""
    from imgsearch.service.client import find_service, read_service_file

    settings = _settings(home, models)
    info = read_service_file(settings)
    if not info or find_service(settings) is None:
        out.print("no service is running for this data directory")
        return
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    for _ in range(600):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            out.print(f"stopped (pid {pid})")
            return
        time.sleep(0.1)
    out.print(f"sent SIGTERM to pid {pid}; it is still finishing its batch")


@service_app.command()
def uninstall(home: HomeOpt = None, models: ModelsOpt = None) -> None:
    """Stop, disable and remove the systemd user unit."""
    from imgsearch.errors import ImgsearchError
    from imgsearch.service.systemd import uninstall as do_uninstall

    from .output import fail

    try:
        for line in do_uninstall(_settings(home, models)):
            out.print(line, highlight=False)
    except ImgsearchError as e:
        fail(str(e), e.exit_code)
