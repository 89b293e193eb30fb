"""Getting pretrained weights: from a local path, the hub's cache, or the hub — and failing at
once, with what to do, when none of these can work (offline machines otherwise hang for ~45 s
in retries before an opaque error)."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

from imgsearch.errors import ModelUnavailableError

HUB_HOST = "huggingface.co"


def is_local(ref: str) -> bool:
    return ref.startswith("local-dir:") or Path(ref).expanduser().exists()


def model_ref_id(ref: str) -> str:
    """A name for a model that changes when its weights do: hub ids as they are, local folders
    by name and weights digest (so retrained bundled models never mix with old results)."""
    path = Path(ref.removeprefix("local-dir:")).expanduser()
    if not path.exists():
        return ref
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    h = hashlib.sha256()
    for f in files:
        h.update(_fingerprint(f))
    return f"{path.name}#{h.hexdigest()[:16]}"


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
