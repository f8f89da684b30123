"""Keep freed CPU memory in the process instead of handing it back to the OS after every free.

A training step on the CPU allocates and frees many ``[chunk, vocab]`` float32 temporaries (tens of
MiB each: logits, softmax, their gradients). glibc serves blocks this large with ``mmap`` and
unmaps them on free, so every new temporary starts as fresh pages and pays one page fault per
4 KiB on first touch: measured at about a third of a CPU training step (docs/benchmarks.md). On a
GPU, PyTorch's caching allocator already reuses blocks; this is the CPU equivalent, done with two
``mallopt`` settings (the same as ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<huge>`` in the
environment). The cost: the resident set no longer shrinks when tensors are freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# Largest value mallopt takes (an int): never trim the heap's top.
_NEVER = 2**31 - 1


def keep_freed_memory() -> bool:
    """Make glibc serve large blocks from its heap and never return freed heap memory to the OS.

    Affects allocations made after the call, in this process only. Returns True if both settings
    took effect, False where there is no glibc (macOS, Windows, musl) and nothing changed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER))
