"""The chunk job: sum one chunk exactly and record its partial for the run."""

import asyncio
from typing import Any

from app import codec
from app.errors import PayloadError
from app.runs import RunStore

MAX_SIMULATED_IO_S = 60.0


async def sum_chunk(
    ctx: dict[str, Any], *, run_id: str, index: int, parts: object, simulate_io_s: float = 0.0
) -> bool:
    """Sum chunk ``index`` of run ``run_id``; return False if the run already had it.

    A payload that can't be decoded fails the run (with the chunk index and reason) rather
    than being retried: running it again would fail the same way.

    Args:
        simulate_io_s: first await this long, as a chunk that waits on I/O would (benchmarks).
    """
    runs: RunStore = ctx["runs"]
    if not isinstance(run_id, str) or not isinstance(index, int) or isinstance(index, bool):
        raise PayloadError(f"sum_chunk needs run_id: str and index: int, got {run_id!r}, {index!r}")
    if not isinstance(simulate_io_s, int | float) or not 0 <= simulate_io_s <= MAX_SIMULATED_IO_S:
        raise PayloadError(f"simulate_io_s must be 0..{MAX_SIMULATED_IO_S}, got {simulate_io_s!r}")
    if simulate_io_s:
        await asyncio.sleep(simulate_io_s)
    try:
        partial = codec.sum_parts(parts)
    except PayloadError as exc:
        await runs.fail_chunk(run_id, index, f"chunk {index} can't be summed: {exc}")
        raise
    return await runs.record(run_id, index, partial)
