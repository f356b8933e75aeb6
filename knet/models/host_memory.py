"""Keep freed host memory in the process during CPU inference (glibc malloc settings).

A det K-Net at 800x1216 allocates and frees dozens of activations of 30-62 MB per image (stride-4
maps of 64-256 channels). glibc's malloc serves every block above its mmap threshold (at most
32 MB, however it adapts) with a fresh mmap and unmaps it on free, so each such activation is
page-faulted in again, 4 KB at a time, on every image: instance R-50, 1 thread, 340-380 thousand
faults (~1.4 GB) per image, 0.35-1.0 s of its ~3 s (process CPU time, most of it kernel time;
bench/model.py, mode "malloc-default-compiled", is the in-run baseline).

`keep_freed_memory()` makes glibc keep freed memory for reuse instead:

    mallopt(M_MMAP_MAX, 0)                 every block comes from the heap (no per-block mmap)
    mallopt(M_TRIM_THRESHOLD, INT_MAX)     the heap's free top is not returned to the system

Effects, process-wide and for the rest of the process: later allocations reuse freed heap memory
without faults (from the third image on, none at all); the resident memory is higher (instance
R-50 at 800x1216, 1 thread, six images: 1.43 GB steady instead of a 1.32 GB peak) and memory
freed after the peak is not given back to the system until the process ends. This is what PyTorch's CPU tuning guide gets from swapping in jemalloc or
tcmalloc, without preloading a library. The det models apply it on their CPU inference path
(DetKNetConfig.keep_freed_memory, default on; eval mode with autograd off). Not glibc (macOS,
musl): nothing is changed and the function returns False.
"""

from __future__ import annotations

import ctypes
import platform
import sys

# glibc <malloc.h> parameter numbers
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
INT_MAX = 2**31 - 1

_APPLIED: list[bool] = []  # the outcome of the first call (the settings are process-wide)


def _is_glibc() -> bool:
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def keep_freed_memory() -> bool:
    """Apply the malloc settings above once per process; True when they are in effect (glibc)."""
    if not _APPLIED:
        ok = False
        if _is_glibc():
            mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            mallopt.restype = ctypes.c_int
            ok = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1
        _APPLIED.append(ok)
    return _APPLIED[0]


def freed_memory_kept() -> bool:
    """True when keep_freed_memory() has been applied in this process."""
    return bool(_APPLIED) and _APPLIED[0]


__all__ = ["freed_memory_kept", "keep_freed_memory"]
