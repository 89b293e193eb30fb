"""Getting pretrained weights: from a local path, the hub's cache, or the hub — and failing at
once, with what to do, when none of these can work (offline machines otherwise hang for ~45 s
in retries before an opaque error)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from imgsearch.errors import ModelUnavailableError

HUB_HOST = "huggingface.co"
DIGESTS_FORMAT = 1
MAX_DIGESTS = 32


def is_local(ref: str) -> bool:
    return ref.startswith("local-dir:") or Path(ref).expanduser().exists()


def model_ref_id(ref: str, digests: Path | None = None) -> str:
    """A name for a model that changes when its weights do: hub ids as they are, local folders
    by name and weights digest (so retrained bundled models never mix with old results).
    `digests`: a small file remembering each digest by its files' size, times and inode, so a
    cold process does not read the weights again while they stay unchanged."""
    path = Path(ref.removeprefix("local-dir:")).expanduser()
    if not path.exists():
        return ref
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    stamp = [_stamp(f) for f in files]
    key = str(path.absolute())
    known = _read_digests(digests) if digests is not None else {}
    entry = known.get(key)
    if isinstance(entry, dict) and entry.get("files") == stamp and isinstance(entry.get("id"), str):
        return entry["id"]
    h = hashlib.sha256()
    for f in files:
        h.update(_fingerprint(f))
    found = f"{path.name}#{h.hexdigest()[:16]}"
    if digests is not None:
        _write_digests(digests, {**{k: v for k, v in known.items() if k != key}, key: {"files": stamp, "id": found}})
    return found


def _stamp(f: Path) -> list[str | int]:
    """What changes when a file is rewritten or replaced: its name, size, modification and
    status-change times (the latter cannot be set back by a copy that keeps times) and inode."""
    st = f.stat()
    return [f.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _read_digests(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    digests = data.get("digests") if isinstance(data, dict) and data.get("format") == DIGESTS_FORMAT else None
    return digests if isinstance(digests, dict) else {}


def _write_digests(file: Path, digests: dict[str, Any]) -> None:
    """Best effort (where it cannot be written, the next process reads the weights again),
    atomic (a reader never sees half a file), bounded (the newest entries are kept)."""
    kept = dict(list(digests.items())[-MAX_DIGESTS:])
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{file.name}-", dir=file.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"format": DIGESTS_FORMAT, "digests": kept}, fh)
        os.replace(tmp, file)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _fingerprint(f: Path, edge: int = 1 << 20) -> bytes:
    """Size plus the first and last MiB: tells retrained weights apart without reading a
    600 MB file on every start (safetensors headers and tensors change with any retraining)."""
    size = f.stat().st_size
    with open(f, "rb") as fh:
        head = fh.read(edge)
        fh.seek(max(0, size - edge))
        tail = fh.read(edge)
    return size.to_bytes(8, "little") + head + tail


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def cached_hub_file(repo_id: str, filename: str) -> str | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return hf_hub_download(repo_id, filename, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None


def unavailable(what: str, ref: str, override: str) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"{what} weights {ref!r} are not on this machine and {HUB_HOST} cannot be reached.\n"
        f"Connect to the internet once to download them (they are cached afterwards), or copy "
        f"them here and point {override} at the local path, or use the bundled offline models "
        f"with --models tiny."
    )


def require_hub(what: str, ref: str, override: str) -> None:
    """Call before a download: raise at once rather than hang when the hub is out of reach."""
    if not hub_reachable():
        raise unavailable(what, ref, override)
