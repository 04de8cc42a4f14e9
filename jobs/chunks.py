"""The chunk job: sum one chunk exactly and record its partial for the run.

What the job uses of its worker comes through ``ctx``, under the keys below: the run store
and the chunk queue (every worker opens them at start-up), and, under ``chunksum worker``,
the worker's record of runs' ends (:class:`RunEnds`); a plain arq worker has none.
"""

import logging
import time
from typing import Any, Protocol, cast

from arq.worker import Retry

from app import codec
from app.connection import REDIS_FAULTS, waitable
from app.errors import PayloadError
from app.exact import ExactSum
from app.faults import describe
from app.metrics import CHUNK_SECONDS, DONE, DUPLICATE, FAILED, NUMBERS, RETRIED
from app.queue import ChunkQueue
from app.run_status import EndResult, Recorded
from app.runs import RunStore
from app.timeline import Attempt

logger = logging.getLogger(__name__)
RUNS = "runs"  # ctx: the RunStore
QUEUE = "queue"  # ctx: the ChunkQueue
RUN_ENDS = "run_ends"  # ctx: a RunEnds, under `chunksum worker` only
# ctx, under `chunksum worker` only: the ids of jobs their own record script finished, which
# the worker then doesn't finish again (app.worker.chunksum_worker)
FINISHED_JOBS = "finished_jobs"
WORKER_NAME = "worker_name"  # ctx: the worker's heartbeat id, for its runs' timelines
JOB_STARTED_S = "job_started_s"  # ctx: time.time() as the job started (app.worker.hooks)
CHUNK_TRIES = 4  # runs of a chunk that raises unexpectedly, before its run fails
RETRY_BASE_S = 0.5  # then 1 s, 2 s between tries
FINALISE_GRACE_S = 2.0  # how long the submitter has to write a complete run's total


class RunEnds(Protocol):
    """What a chunk job uses of its worker's record of runs' ends (app.worker.run_ends)."""

    def tally(self, run_id: str, count: int, seconds: float) -> None:
        """Count a chunk the worker recorded, for its summary as the run ends."""

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a run to end; return whether it has."""


async def sum_chunk(ctx: dict[str, Any], *, run_id: str, index: int, parts: object) -> bool:
    """Sum chunk ``index`` of run ``run_id``; return False if the run already had it.

    A payload that can't be decoded fails the run (with the chunk index and reason) rather
    than being retried: running it again would fail the same way.
    """
    started = time.perf_counter()
    if not isinstance(run_id, str) or not isinstance(index, int) or isinstance(index, bool):
        raise PayloadError(f"sum_chunk needs run_id: str and index: int, got {run_id!r}, {index!r}")
    try:
        partial, count = chunk_sum(parts)
    except Exception as exc:
        await sum_failed(ctx, run_id, index, exc, time.perf_counter() - started)
        raise
    return await record(ctx, run_id, index, partial, count, started)


async def sum_failed(
    ctx: dict[str, Any], run_id: str, index: int, exc: Exception, took_s: float = 0.0
) -> None:
    """Act on a chunk whose sum raised ``exc`` (``took_s`` into its job): a payload that
    can't be read fails the run; anything else is retried with backoff (raising Retry),
    until CHUNK_TRIES."""
    runs: RunStore = ctx[RUNS]
    ran = attempt(ctx, took_s)
    if isinstance(exc, PayloadError):
        await fail(runs, run_id, index, f"chunk {index} can't be summed: {exc}", ran)
    else:
        await retry_or_fail(runs, run_id, index, ran, exc)


def chunk_sum(parts: object) -> tuple[ExactSum, int]:
    """Return a chunk's exact sum and how many numbers it held; raise PayloadError if its
    packed numbers can't be read."""
    partial = codec.sum_parts(parts)
    return partial, codec.count_parts(cast(list[codec.Part], parts))


async def record(
    ctx: dict[str, Any], run_id: str, index: int, partial: ExactSum, count: int, started: float
) -> bool:
    """Record a summed chunk's partial for its run (finalising or abandoning the run if that
    is what recording it says); return False if the run already had it.

    Args:
        started: ``time.perf_counter()`` as the chunk's job started.
    """
    runs: RunStore = ctx[RUNS]
    tries = ctx.get("job_try", 1)
    finished: set[str] | None = ctx.get(FINISHED_JOBS)
    finish = None if finished is None else cast(ChunkQueue, ctx[QUEUE]).job_finish(ctx["job_id"])
    try:
        took_s = time.perf_counter() - started
        ran = attempt(ctx, took_s)
        recorded = await runs.record(
            run_id, index, partial, count=count, seconds=took_s, finish=finish, attempt=ran
        )
        if finished is not None and recorded in (Recorded.NOTHING, Recorded.RECORDED):
            finished.add(ctx["job_id"])  # record.lua finished the job: see its reply
        account(ctx, run_id, index, count, took_s, recorded)
        await act_on(ctx, runs, run_id, recorded)
    except REDIS_FAULTS as exc:
        # Redis went away, or is out of memory: run the chunk again later (recorded twice,
        # it counts once, and the last one's retry finalises the run all the same)
        if not waitable(exc):
            raise
        RETRIED.inc()
        raise Retry(defer=RETRY_BASE_S * 2 ** (tries - 1)) from exc
    return recorded is not Recorded.NOTHING


def attempt(ctx: dict[str, Any], took_s: float) -> Attempt:
    """Return who runs this chunk job, since when (as it started, else ``took_s`` ago), on
    which try."""
    # no start in the ctx of a worker without app.worker.hooks (some tests' workers)
    started_s = ctx.get(JOB_STARTED_S) or time.time() - took_s
    return Attempt(worker=worker_name(ctx), started_s=started_s, job_try=ctx.get("job_try", 1))


def worker_name(ctx: dict[str, Any]) -> str:
    """Return the name of the worker running a job, as its heartbeat gives it."""
    # none in the ctx of a worker without app.worker.hooks (some tests' workers)
    name: str = ctx.get(WORKER_NAME, "unnamed")
    return name


async def fail(runs: RunStore, run_id: str, index: int, message: str, ran: Attempt) -> None:
    """Fail the run because chunk ``index`` can't be summed, however often it is tried."""
    FAILED.inc()
    await runs.fail_chunk(run_id, index, message, ran)


async def act_on(ctx: dict[str, Any], runs: RunStore, run_id: str, recorded: Recorded) -> None:
    """Do what recording a chunk asked of its worker: finalise the run (LAST) or abandon it
    (ABANDONED)."""
    if recorded is Recorded.LAST:
        await _finalise_unless_ended(ctx, runs, run_id)
    elif recorded is Recorded.ABANDONED:
        await _abandon(ctx, runs, run_id)


async def _finalise_unless_ended(ctx: dict[str, Any], runs: RunStore, run_id: str) -> None:
    """Write the total of a run whose last partial this job recorded, unless its submitter
    does so within FINALISE_GRACE_S (a ChunksumWorker hears of the run's end; another worker
    finalises at once). Written once either way; waiting spares the worker re-reading every
    partial in the usual case, where the submitter is alive and a moment away from it."""
    run_ends: RunEnds | None = ctx.get(RUN_ENDS)
    if run_ends is not None and await run_ends.wait(run_id, FINALISE_GRACE_S):
        return
    if await runs.finalise(run_id) is EndResult.ENDED:
        logger.info("run %s: every chunk summed; this worker wrote the total", run_id)


async def _abandon(ctx: dict[str, Any], runs: RunStore, run_id: str) -> None:
    """Fail a run whose submitter's lease lapsed before it had enqueued every chunk, and
    take its queued jobs off the queue."""
    if await runs.abandon(run_id) is EndResult.ENDED:
        queue: ChunkQueue = ctx[QUEUE]
        await queue.remove_queued(run_id)


def account(
    ctx: dict[str, Any], run_id: str, index: int, count: int, took_s: float, recorded: Recorded
) -> None:
    """Count a summed chunk in the metrics, the debug log and the worker's per-run tally."""
    (DUPLICATE if recorded is Recorded.NOTHING else DONE).inc()
    NUMBERS.inc(count)
    CHUNK_SECONDS.observe(took_s)
    if logger.isEnabledFor(logging.DEBUG):  # the fields are built per chunk otherwise
        fields = {"run": run_id, "chunk": index, "count": count, "seconds": round(took_s, 6)}
        logger.debug("chunk summed", extra={"chunk": fields})
    run_ends: RunEnds | None = ctx.get(RUN_ENDS)
    if run_ends is not None and recorded is not Recorded.NOTHING:  # not a repeat
        run_ends.tally(run_id, count, took_s)


async def retry_or_fail(
    runs: RunStore, run_id: str, index: int, ran: Attempt, exc: Exception
) -> None:
    """Retry a chunk that failed unexpectedly, with backoff; after CHUNK_TRIES, fail the run."""
    tries = ran.job_try
    if tries < CHUNK_TRIES:
        RETRIED.inc()
        await runs.note_retry(run_id, index, ran)
        raise Retry(defer=RETRY_BASE_S * 2 ** (tries - 1)) from exc
    error = f"{type(exc).__name__}: {describe(exc)}"
    message = f"chunk {index} failed {tries} times on the workers, last with {error}"
    await fail(runs, run_id, index, message, ran)
