"""The bench's own jobs: the arq baselines' jobs, and a chunk job slowed by simulated I/O.

``naive_sum`` is what a user writes in ten minutes with arq, and is kept that way on
purpose: a positional list argument (pickled by arq's default serializer) and a plain
``sum``. ``tuned_sum`` is the same after an afternoon's tuning: the chunk's numbers packed
as int64 or float64 bytes (msgpack carries them, never pickle) and summed by NumPy.
``sum_chunk_after_io`` is chunksum's own chunk job after an awaited pause, as a
chunk that fetched its numbers from elsewhere would spend (W6, `--scaling`, tests).
"""

import asyncio
from typing import Any

import numpy as np

from app.errors import PayloadError
from jobs.chunks import sum_chunk

MAX_IO_S = 60.0
PACKED_DTYPES = ("<i8", "<f8")


async def naive_sum(ctx: dict[str, Any], numbers: list[int | float]) -> int | float:
    """Return the sum of ``numbers`` (floats rounded at every step, as ``sum`` does)."""
    return sum(numbers)


async def tuned_sum(ctx: dict[str, Any], data: bytes, dtype: str) -> int | float:
    """Return the sum of packed int64s or float64s (floats rounded as ``numpy.sum`` does)."""
    if dtype not in PACKED_DTYPES or not isinstance(data, bytes):
        raise PayloadError(f"tuned_sum takes bytes of {' or '.join(PACKED_DTYPES)}")
    total: int | float = np.frombuffer(data, dtype=dtype).sum().item()
    return total


async def sum_chunk_after_io(ctx: dict[str, Any], *, io_s: float, **chunk: Any) -> bool:
    """Await ``io_s`` seconds (0..60), then sum the chunk as ``sum_chunk`` does."""
    if not isinstance(io_s, int | float) or not 0 <= io_s <= MAX_IO_S:
        raise PayloadError(f"io_s must be 0..{MAX_IO_S}, got {io_s!r}")
    await asyncio.sleep(io_s)
    return await sum_chunk(ctx, **chunk)
