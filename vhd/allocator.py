"""Keep freed host memory in the process (glibc), so CPU training does not page-fault per step.

glibc serves every large allocation (an activation of a few MB and up) with a fresh ``mmap`` and
gives it back to the system on free; the next step's tensor of the same size then faults in its
pages again, one by one. On a 2-core CPU this made element-wise ops on (32, 76, 1024)
activations 5-7 times slower than on warm memory and cost about 15% of a VideoLights training
step (``benchmarks/videolights_step.py``). Serving them from the heap and not trimming it keeps
the pages mapped: the process holds on to its peak host memory instead. Same numbers, only the
allocator changes. ``VHD_KEEP_FREED_MEMORY=0`` turns it off; other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # mallopt parameters of glibc's malloc.h
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes (an int): never trim in practice


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and do not trim it; True when it took effect."""
    if os.environ.get("VHD_KEEP_FREED_MEMORY", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl's mallopt does nothing)
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
