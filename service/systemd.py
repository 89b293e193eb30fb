"""`imgsearch service install|status|stop|uninstall`: the watch service as a systemd user unit.

The unit runs `python -m imgsearch.cli.app watch` with this interpreter and these settings, so
the service sees the same data directory and models as the command that installed it."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from imgsearch.errors import ConfigError
from imgsearch.settings import Settings

Runner = Callable[[list[str]], subprocess.CompletedProcess]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def unit_name(settings: Settings) -> str:
    return f"imgsearch-{settings.models}.service" if settings.models != "default" else "imgsearch.service"


def unit_path(settings: Settings) -> Path:
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "systemd" / "user" / unit_name(settings)


def unit_text(settings: Settings, paths: Sequence[Path]) -> str:
    args = [sys.executable, "-m", "imgsearch.cli.app", "watch", *(os.path.abspath(p) for p in paths)]
    env = {"IMGSEARCH_HOME": str(settings.home.absolute()), "IMGSEARCH_MODELS": settings.models,
           "IMGSEARCH_HOST": settings.host, "IMGSEARCH_PORT": str(settings.port)}
    if settings.qdrant_url:
        env["IMGSEARCH_QDRANT_URL"] = settings.qdrant_url
    lines = [
        "[Unit]", "Description=imgsearch: keeps photo folders indexed and answers searches",
        "After=network.target", "",
        "[Service]", "Type=simple", f"ExecStart={shlex.join(args)}",
        *(f"Environment={shlex.quote(f'{k}={v}')}" for k, v in env.items()),
        "Restart=on-failure", "RestartSec=5", "KillSignal=SIGTERM", "TimeoutStopSec=60",
        "Nice=10", "IOSchedulingClass=idle", "",
        "[Install]", "WantedBy=default.target", "",
    ]
    return "\n".join(lines)


def _systemctl(run: Runner, *args: str) -> subprocess.CompletedProcess | None:
    if shutil.which("systemctl") is None:
        return None
    return run(["systemctl", "--user", *args])


def install(settings: Settings, paths: Sequence[Path], run: Runner = _run) -> list[str]:
    """Write and enable the unit; returns what was done and how to undo it, line by line."""
    path, name = unit_path(settings), unit_name(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(unit_text(settings, paths))
    done = [f"wrote {path}"]
    reload = _systemctl(run, "daemon-reload")
    if reload is None:
        done.append("systemctl is not on this machine: start the service yourself with "
                    f"`imgsearch watch` (or enable {path} where systemd runs)")
    else:
        enable = _systemctl(run, "enable", "--now", name)
        if enable is not None and enable.returncode != 0:
            done.append(f"could not enable it: {enable.stderr.strip()} — the unit file is written; "
                        f"run `systemctl --user enable --now {name}` in your desktop session")
        else:
            done.append(f"enabled and started {name} (systemctl --user status {name})")
    done.append("undo: imgsearch service uninstall")
    return done


def uninstall(settings: Settings, run: Runner = _run) -> list[str]:
    path, name = unit_path(settings), unit_name(settings)
    if not path.exists():
        raise ConfigError(f"no unit at {path}: nothing to uninstall")
    done = []
    if _systemctl(run, "disable", "--now", name) is not None:
        done.append(f"stopped and disabled {name}")
    path.unlink()
    done.append(f"removed {path}")
    _systemctl(run, "daemon-reload")
    return done


def unit_state(settings: Settings, run: Runner = _run) -> str:
    path, name = unit_path(settings), unit_name(settings)
    if not path.exists():
        return "not installed (imgsearch service install)"
    active = _systemctl(run, "is-active", name)
    state = active.stdout.strip() if active is not None else "unknown (no systemctl here)"
    return f"installed at {path}; {state}"
