"""The chunk job: sum one chunk exactly and record its partial for the run."""

import asyncio
import logging
import time
from typing import Any, cast

from arq.worker import Retry

from app import codec
from app.claims import WORKER, ChunksumWorker
from app.connection import LOST_REDIS
from app.errors import PayloadError
from app.metrics import CHUNK_SECONDS, DONE, DUPLICATE, FAILED, NUMBERS, RETRIED
from app.runs import Recorded, RunStore

logger = logging.getLogger(__name__)
MAX_SIMULATED_IO_S = 60.0
CHUNK_TRIES = 4  # runs of a chunk that raises unexpectedly, before its run fails
RETRY_BASE_S = 0.5  # then 1 s, 2 s between tries
FINALISE_GRACE_S = 2.0  # how long the submitter has to write a complete run's total


async def sum_chunk(
    ctx: dict[str, Any], *, run_id: str, index: int, parts: object, simulate_io_s: float = 0.0
) -> bool:
    """Sum chunk ``index`` of run ``run_id``; return False if the run already had it.

    A payload that can't be decoded fails the run (with the chunk index and reason) rather
    than being retried: running it again would fail the same way.

    Args:
        simulate_io_s: first await this long, as a chunk that waits on I/O would (benchmarks).
    """
    started = time.perf_counter()
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
        FAILED.inc()
        await runs.fail_chunk(run_id, index, f"chunk {index} can't be summed: {exc}")
        raise
    except Exception as exc:
        await _retry_or_fail(runs, run_id, index, ctx.get("job_try", 1), exc)
        raise
    tries = ctx.get("job_try", 1)
    try:
        took_s = time.perf_counter() - started
        recorded = await runs.record(run_id, index, partial, seconds=took_s)
        count = codec.count_parts(cast(list[codec.Part], parts))
        _account(ctx, run_id, index, count, took_s, recorded)
        if recorded is Recorded.LAST:
            await _finalise_unless_ended(ctx, runs, run_id)
        elif recorded is Recorded.ABANDONED:
            await runs.abandon(run_id)
    except LOST_REDIS as exc:
        # Redis went away: run the chunk again later (recorded twice, it counts once, and
        # the last one's retry finalises the run all the same)
        RETRIED.inc()
        raise Retry(defer=RETRY_BASE_S * 2 ** (tries - 1)) from exc
    return recorded is not Recorded.NOTHING


async def _finalise_unless_ended(ctx: dict[str, Any], runs: RunStore, run_id: str) -> None:
    """Write the total of a run whose last partial this job recorded, unless its submitter
    does so within FINALISE_GRACE_S (a ChunksumWorker hears of the run's end; another worker
    finalises at once). Written once either way; waiting spares the worker re-reading every
    partial in the usual case, where the submitter is alive and a moment away from it."""
    worker: ChunksumWorker | None = ctx.get(WORKER)
    if worker is not None and await worker.await_run_end(run_id, FINALISE_GRACE_S):
        return
    if await runs.finalise(run_id) is None:
        logger.info("run %s: every chunk summed; this worker wrote the total", run_id)


def _account(
    ctx: dict[str, Any], run_id: str, index: int, count: int, took_s: float, recorded: Recorded
) -> None:
    """Count a summed chunk in the metrics, the debug log and the worker's per-run tally."""
    (DUPLICATE if recorded is Recorded.NOTHING else DONE).inc()
    NUMBERS.inc(count)
    CHUNK_SECONDS.observe(took_s)
    if logger.isEnabledFor(logging.DEBUG):  # the fields are built per chunk otherwise
        fields = {"run": run_id, "chunk": index, "count": count, "seconds": round(took_s, 6)}
        logger.debug("chunk summed", extra={"chunk": fields})
    worker: ChunksumWorker | None = ctx.get(WORKER)
    if worker is not None and recorded is not Recorded.NOTHING:  # not a repeat
        worker.tally(run_id, count, took_s)


async def _retry_or_fail(
    runs: RunStore, run_id: str, index: int, tries: int, exc: Exception
) -> None:
    """Retry a chunk that failed unexpectedly, with backoff; after CHUNK_TRIES, fail the run."""
    if tries < CHUNK_TRIES:
        RETRIED.inc()
        await runs.note_retry(run_id)
        raise Retry(defer=RETRY_BASE_S * 2 ** (tries - 1)) from exc
    FAILED.inc()
    message = f"chunk {index} failed {tries} times on the workers, last with {exc!r}"
    await runs.fail_chunk(run_id, index, message)
