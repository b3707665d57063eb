"""Keep freed memory in the process (glibc ``mallopt``), so a training step's large tensors reuse
warm pages instead of page-faulting fresh ones from the OS on every step.

By default glibc serves each allocation over a (moving) threshold with its own ``mmap`` and hands
it back on free, so a CPU step that allocates tens of MB of activations and gradients pays
thousands of page faults every step (about 10,000 a step, a third of the time, training the zoo's
200 CNNs at once). This is what PyTorch's CPU tuning guide gets from jemalloc or tcmalloc; glibc
can do it with three settings. The cost: the process keeps its peak memory until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks (up to 1 GiB each) for reuse; True when it took effect,
    False where there is no glibc (macOS, Windows, musl), which is left as it is."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    most = 2**31 - 1  # mallopt takes a C int
    settings = ((_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, most), (_M_TOP_PAD, 1 << 28))
    return all(mallopt(option, value) == 1 for option, value in settings)
