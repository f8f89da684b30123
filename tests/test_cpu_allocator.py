"""keep_freed_memory stops the page faults that freed-and-reallocated large tensors cost on the CPU."""

from __future__ import annotations

import subprocess
import sys

import pytest

from curio.cpu_allocator import keep_freed_memory

# Allocates, fills and frees a 64 MiB tensor over and over, and prints the minor page faults of the
# last five rounds (glibc's heap needs a few rounds to settle: the tensors are 64-byte aligned, so a
# freed block is not always reusable at once). Runs in a fresh process: the setting is process-wide.
_PROBE = """
import resource, sys, torch
from curio.cpu_allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    torch.empty(16 << 20).fill_(1.0)
before = faults()
for _ in range(5):
    torch.empty(16 << 20).fill_(1.0)
print(faults() - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_reallocations_stop_page_faulting():
    pages = 5 * (64 << 20) // 4096  # 81,920 pages of 4 KiB
    default, kept = _faults("default"), _faults("keep")
    assert default > pages // 2, f"glibc's default should fault in fresh pages every time, got {default}"
    assert kept < pages // 20, f"with keep_freed_memory the freed pages should be reused, got {kept} faults"


@pytest.mark.skipif(sys.platform.startswith("linux"), reason="elsewhere there is no glibc to configure")
def test_no_op_without_glibc():
    assert keep_freed_memory() is False
