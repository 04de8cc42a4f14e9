"""Keep chunk-sized buffers in malloc's heap instead of fresh memory maps (glibc only).

glibc's ``malloc`` serves blocks over its mmap threshold (128 KiB, raised at run time to
a few MiB at most) from fresh memory maps, and hands the heap's free top back to the
system soon after. A chunk payload is hundreds of KiB and is copied several times on its
way to Redis (packing, msgpack, the socket buffer), so each copy lands in new pages that
the kernel must fault in and zero: for 10 M int64 numbers in 100 chunks that was a third
of the submit (``chunksum bench``, W3). Raising both thresholds lets freed payload memory
be reused instead. The `chunksum` command does this for its own process (submitters and
workers); programs that call :func:`app.submit` can call ``app.tune_allocator()`` at
start-up too.
"""

import ctypes
import os
import sys

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 8 << 20  # blocks this big or smaller come from the heap
TRIM_THRESHOLD = 32 << 20  # free heap top kept for reuse before it is given back
_ENV_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_allocator() -> bool:
    """Raise glibc malloc's mmap and trim thresholds; return whether they were set.

    Does nothing off Linux, on a libc without ``mallopt``, or where the environment already
    sets either threshold (glibc reads ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``).
    """
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _ENV_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover  # a libc without mallopt
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
