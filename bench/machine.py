"""What the numbers were measured on. Speed claims without the machine are meaningless, and on a
shared machine the load average at the start says how much to trust them."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

PACKAGES = ("imgsearch", "torch", "torchvision", "open_clip_torch", "transformers", "qdrant-edge-py",
            "qdrant-client", "pillow", "numpy")
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")


def cpuinfo() -> tuple[str, set[str], int]:
    """CPU model name, feature flags and physical core count from /proc/cpuinfo."""
    model, flags, cores = platform.processor() or "unknown", set(), set()
    phys = core = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name":
                    model = value
                elif key == "flags" and not flags:
                    flags = set(value.split())
                elif key == "physical id":
                    phys = value
                elif key == "core id":
                    core = value
                    cores.add((phys, core))
    except OSError:
        pass
    return model, flags, len(cores)


def _mem_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def machine_facts() -> dict[str, Any]:
    """Everything but torch's own answers (those come from a measuring child, see `torch_facts`)."""
    model, flags, physical = cpuinfo()
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "physical_cores": physical or None,
        "cpu_bf16_flags": [f for f in BF16_FLAGS if f in flags],
        "memory_gb": _mem_gb(),
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }
