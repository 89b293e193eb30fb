"""A run killed with SIGKILL in the middle of indexing leaves stores the next run repairs:
no image lost, none twice, images == vectors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import make_shapes


def _vectors_marked(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("select count(*) from files where has_vector").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imgsearch.cli.app", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_kill_minus_nine_mid_index_then_repair(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    make_shapes(photos, 120, seed=21)
    home = tmp_path / "home"
    env = {**os.environ, "IMGSEARCH_HOME": str(home), "IMGSEARCH_MODELS": "tiny",
           "IMGSEARCH_BATCH_SIZE": "4", "HF_HUB_OFFLINE": "1"}
    db = home / "imgsearch-tiny" / "catalog.sqlite3"
    killed_at = []
    for threshold in (10, 40):
        proc = subprocess.Popen([sys.executable, "-m", "imgsearch.cli.app", "index", str(photos), "--no-captions",
                                 "--json"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while _vectors_marked(db) < threshold and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at.append(_vectors_marked(db))
    assert killed_at[0] < 120, "the first run must be killed before it finished"

    done = _cli("index", str(photos), "--json", env=env)
    assert done.returncode == 0, done.stderr
    status = json.loads(_cli("status", "--json", env=env).stdout)
    assert status["images"] == status["vectors"] == 120
    assert status["captioned"] == 120 and status["skipped"] == 0
    with sqlite3.connect(db) as con:
        paths = [p for (p,) in con.execute("select path from files")]
    assert len(paths) == len(set(paths)) == 120
