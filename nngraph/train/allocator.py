"""Keep freed memory in the process on Linux CPUs: glibc hands large blocks straight back to the
kernel, so every training step faults fresh zeroed pages in for its big activations. Raising the
mmap and trim thresholds made a relational-transformer step about 1.7x faster on 2 cores."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_done = False


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to reuse freed blocks instead of unmapping them; True if applied.
    A no-op elsewhere (macOS, Windows, musl). The process keeps its peak memory until it ends."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 2**31 - 1) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1 and ok
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok
