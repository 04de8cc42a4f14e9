"""The chunk job: sum one chunk exactly and record its partial for the run."""

from typing import Any

from app import codec
from app.errors import PayloadError
from app.runs import RunStore


async def sum_chunk(ctx: dict[str, Any], *, run_id: str, index: int, parts: object) -> bool:
    """Sum chunk ``index`` of run ``run_id``; return False if the run already had it.

    A payload that can't be decoded fails the run (with the chunk index and reason) rather
    than being retried: running it again would fail the same way.
    """
    runs: RunStore = ctx["runs"]
    if not isinstance(run_id, str) or not isinstance(index, int) or isinstance(index, bool):
        raise PayloadError(f"sum_chunk needs run_id: str and index: int, got {run_id!r}, {index!r}")
    try:
        partial = codec.sum_parts(parts)
    except PayloadError as exc:
        await runs.fail_chunk(run_id, index, f"chunk {index} can't be summed: {exc}")
        raise
    return await runs.record(run_id, index, partial)
