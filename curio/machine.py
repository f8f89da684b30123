"""What a measurement names of the machine it ran on."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The processor's name (``/proc/cpuinfo``'s model name on Linux). Results depend on it beyond
    speed: torch's CPU kernels differ between processors (instruction sets, block sizes), so the
    same training run can end in other weights on another one."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown processor"
