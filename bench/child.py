"""Run measurements in child Python processes.

Full mode gives each measured configuration its own interpreter (`IsolatedRunner`), so its peak
RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`, read in the child at its end), imported
modules, allocator state and warm caches never leak into the next one. Smoke mode sends every
task to one long-lived worker (`SharedRunner`): on a busy 2-core machine each fresh interpreter
that imports torch costs ~10 s, and smoke mode only proves the harness works. The parent never
imports torch or the product.

Protocol: `python -m bench.child TASK` reads its arguments as JSON on stdin; `python -m bench.child
--serve` reads one `{"task": ..., "args": ...}` JSON object per line. Each answer is one stdout
line `SENTINEL + json` (libraries may print anything else around it).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from pathlib import Path
from typing import IO, Any, Protocol

REPO_ROOT = Path(__file__).resolve().parent.parent
SENTINEL = "@@bench-result@@ "
ERROR_KEY = "__error__"

# Lazily imported so a child loads only what its task needs.
TASKS: dict[str, str] = {
    "weights": "bench.weights:build_task",
    "index": "bench.indexing:product_task",
    "baseline": "bench.indexing:baseline_task",
    "queries": "bench.queries:warm_task",
    "vec-build": "bench.vectors:build_task",
    "vec-open": "bench.vectors:open_task",
    "dupes-build": "bench.dupes:build_task",
    "dupes-find": "bench.dupes:find_task",
    "dupes-all-pairs": "bench.dupes:all_pairs_task",
    "ocr": "bench.ocr:ocr_task",
    "tags": "bench.tagging:tags_task",
    "peer-gemm": "bench.peers:gemm_task",
    "peer-clip-phase": "bench.peers:clip_phase_task",
    "peer-warm-query": "bench.peers:warm_query_task",
}


class ChildFailed(RuntimeError):
    """A measurement failed in its child; the message carries the end of its traceback/stderr."""


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every process the harness starts: no stray IMGSEARCH_* setting of the
    user's (a server URL, another home) may change what is measured; the hubs are never asked
    (all weights are local); numpy's OpenBLAS gets one thread, because on a loaded machine its
    thread hand-off sleeps ~8 ms per small call and would measure the scheduler, not a search."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSEARCH_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OPENBLAS_NUM_THREADS": "1"})
    env.update(extra or {})
    return env


def timed(cmd: Sequence[str], env: Mapping[str, str], cwd: Path | None = None,
          timeout: float | None = 3600) -> dict[str, Any]:
    """Wall time, CPU time and peak RSS of one process (wait4: that child's own rusage), and its
    stdout; a failure raises with the end of its stderr."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(list(cmd), env=dict(env), cwd=cwd, stdout=out, stderr=err)
        deadline = None if timeout is None else t + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd[:4]))}... exited with {proc.returncode}: "
                               f"{err.read()[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024.0,
            "stdout": stdout}


def load_timed(models: Any, *parts: str) -> dict[str, float]:
    """Load model parts (`clip`, `captioner`, `itm`) one by one; seconds each, as `<part>_load_s`,
    so model loading is reported on its own and not charged to what is measured next."""
    out = {}
    for part in parts:
        t = time.perf_counter()
        getattr(models, part)
        out[f"{part}_load_s"] = time.perf_counter() - t
    return out


def peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _parse(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(SENTINEL):
            return json.loads(line[len(SENTINEL):])
    return None


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class Runner(Protocol):
    isolated: bool

    def run(self, task: str, args: Mapping[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


class IsolatedRunner:
    """A new interpreter per task."""

    isolated = True

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout

    def run(self, task: str, args: Mapping[str, Any]) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.child", task], input=json.dumps(dict(args)), capture_output=True,
            text=True, cwd=REPO_ROOT, env=child_env(), timeout=self.timeout,
        )
        result = _parse(proc.stdout)
        if result is not None and ERROR_KEY in result:
            raise ChildFailed(f"task {task!r} failed:\n{_tail(result[ERROR_KEY])}")
        if proc.returncode != 0 or result is None:
            raise ChildFailed(f"task {task!r} exited with {proc.returncode}:\n{_tail(proc.stderr)}")
        return result

    def close(self) -> None:
        pass


class SharedRunner:
    """One worker process for all tasks (smoke mode): peak RSS is then the worker's so far."""

    isolated = False

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout
        self._stderr: IO[str] = tempfile.TemporaryFile("w+")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.child", "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, cwd=REPO_ROOT, env=child_env(),
        )

    def run(self, task: str, args: Mapping[str, Any]) -> dict[str, Any]:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        timer = threading.Timer(self.timeout, proc.kill) if self.timeout else None
        try:
            if timer:
                timer.start()
            proc.stdin.write(json.dumps({"task": task, "args": dict(args)}) + "\n")
            proc.stdin.flush()
            for line in proc.stdout:
                if line.startswith(SENTINEL):
                    result: dict[str, Any] = json.loads(line[len(SENTINEL):])
                    break
            else:
                self._stderr.seek(0)
                raise ChildFailed(f"worker died during {task!r}:\n{_tail(self._stderr.read())}")
        except BrokenPipeError:
            self._stderr.seek(0)
            raise ChildFailed(f"worker gone before {task!r}:\n{_tail(self._stderr.read())}") from None
        finally:
            if timer:
                timer.cancel()
        if ERROR_KEY in result:
            raise ChildFailed(f"task {task!r} failed:\n{_tail(result[ERROR_KEY])}")
        return result

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()


def _run_task(task: str, args: dict[str, Any]) -> dict[str, Any]:
    try:
        module, name = TASKS[task].split(":")
        fn: Callable[[dict[str, Any]], dict[str, Any]] = getattr(import_module(module), name)
        result = fn(args)
    except Exception:
        return {ERROR_KEY: traceback.format_exc()}
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def _answer(result: dict[str, Any]) -> None:
    sys.stdout.write("\n" + SENTINEL + json.dumps(result) + "\n")  # own line, whatever came before
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[1] == "--serve":
        for line in sys.stdin:
            if line.strip():
                request = json.loads(line)
                _answer(_run_task(request["task"], request["args"]))
        return 0
    if len(argv) != 2 or argv[1] not in TASKS:
        print(f"usage: python -m bench.child {{--serve,{','.join(TASKS)}}}", file=sys.stderr)
        return 2
    result = _run_task(argv[1], json.load(sys.stdin))
    _answer(result)
    return 1 if ERROR_KEY in result else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
