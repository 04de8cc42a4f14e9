"""Chunk jobs summed as they are claimed, and recorded a claim batch at a time.

A chunk job does microseconds of work: sum a few thousand packed numbers. Run as arq runs
every job (a task for the job and another for its function, a timeout, the hooks, a lease
renewer, then a finish), the bookkeeping costs many times the sum. :class:`LeanChunks`
takes the ``sum_chunk`` jobs that a claim read (app.worker.claims) and sums them at once,
then records the partials of each run with one call of ``record.lua``, which finishes
their arq jobs too: for a batch of eight chunks, two round trips in all (the claim and the
record) where arq takes forty.

Everything out of the ordinary goes the usual way (app.worker.loaded_jobs), so arq's
semantics hold: a job whose record is gone, can't be decoded or summed, was asked to abort,
ran out of tries, or registers another function, runs as arq runs it. A chunk whose record
asks its worker to finalise or abandon the run does so under the job's lease (the
``on_job_start`` hook), as its job would. If Redis goes before the record, the jobs stay
claimed and run again once their leases lapse, as a killed worker's do.
"""

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from arq.jobs import SerializationError, deserialize_job_raw
from arq.typing import WorkerCoroutine
from arq.utils import timestamp_ms
from arq.worker import Function

from app.connection import REDIS_FAULTS
from app.faults import describe
from app.queue import ChunkQueue
from app.run_status import Recorded
from app.runs import ChunkRecord, RunStore
from app.timeline import Attempt
from app.worker.loaded_jobs import JobRun, Loaded, LoadedJobs, job_ref
from jobs.chunks import (
    QUEUE,
    RUNS,
    account,
    act_on,
    chunk_sum,
    sum_chunk,
    sum_failed,
    worker_name,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job a claim took: its id, queue score, and what the claim read of it (None: not
    read, for its job to read)."""

    job_id: str
    score: int
    loaded: Loaded | None


@dataclass(frozen=True, slots=True)
class Summed:
    """A chunk job summed as it was claimed."""

    run: JobRun  # the job's run, as arq's run_job would keep it
    ref: str  # arq's name for it in log lines
    run_id: str
    chunk: ChunkRecord


class LeanChunks(LoadedJobs):
    """An arq ``Worker`` that sums claimed chunk jobs at once (see :meth:`summed`) and
    records them a batch at a time (see :meth:`record`)."""

    def summed(self, jobs: list[Claimed]) -> tuple[list[Summed], list[Claimed]]:
        """Sum the plain chunk jobs of ``jobs``; return them, and the jobs to run as arq does."""
        queue: ChunkQueue | None = self.ctx.get(QUEUE)  # opened by chunksum's on_startup
        if queue is None:
            return [], jobs
        lean: list[Summed] = []
        usual: list[Claimed] = []
        for job in jobs:
            summed = self._sum(job, queue)
            if isinstance(summed, Summed):
                lean.append(summed)
            else:
                usual.append(summed)
        return lean, usual

    def _sum(self, job: Claimed, queue: ChunkQueue) -> Summed | Claimed:
        """Sum ``job`` if it is a plain chunk job due to run; else return it to run as arq
        does (with the failure to act on, if its sum raised)."""
        loaded = job.loaded
        if loaded is None or loaded.record is None or loaded.aborted or self._keeps_results:
            return job
        try:
            decoded = deserialize_job_raw(loaded.record, deserializer=self.job_deserializer)
        except SerializationError:
            return job
        name, args, kwargs, enqueue_job_try, enqueue_time_ms = decoded
        function = self.functions.get(name)
        if not isinstance(function, Function) or function.coroutine is not sum_chunk or args:
            return job
        max_tries = self.max_tries if function.max_tries is None else function.max_tries
        if (enqueue_job_try or 0) > loaded.job_try or loaded.job_try > max_tries:
            return job
        run_id, index = kwargs.get("run_id"), kwargs.get("index")
        if kwargs.keys() != {"run_id", "index", "parts"} or not isinstance(run_id, str):
            return job
        if type(index) is not int:
            return job
        start_ms = timestamp_ms()
        started = time.perf_counter()
        try:
            partial, count = chunk_sum(kwargs["parts"])
        except Exception as exc:  # the job's usual run acts on it, as sum_chunk would
            instead = replace(function, coroutine=_raising(exc))
            return replace(job, loaded=replace(loaded, instead=instead))
        seconds = time.perf_counter() - started
        run = JobRun(job.job_id, job.score, loaded.job_try, start_ms, name, args, kwargs)
        run.enqueue_time_ms = enqueue_time_ms
        ref = job_ref(run, function)
        self.log_start(run, ref)
        finish = queue.job_finish(job.job_id)
        # for its run's timeline: started as its sum did (start_ms is rounded to the ms)
        ran = Attempt(worker_name(self.ctx), time.time() - seconds, loaded.job_try)
        chunk = ChunkRecord(index, partial, count, seconds=seconds, finish=finish, attempt=ran)
        return Summed(run, ref, run_id, chunk)

    @property
    def _keeps_results(self) -> bool:
        """Whether arq keeps job results here (chunksum's workers don't: keep_result=0)."""
        return self.keep_result_forever or self.keep_result_s > 0

    async def record(self, summed: list[Summed]) -> None:
        """Record summed chunks, one script call a run; never raises (the worker's loop
        would end on it)."""
        by_run: dict[str, list[Summed]] = defaultdict(list)
        for chunk in summed:
            by_run[chunk.run_id].append(chunk)
        if len(by_run) == 1:  # the usual case: no task of its own
            ((run_id, chunks),) = by_run.items()
            await self._record_run(run_id, chunks)
            return
        await asyncio.gather(
            *(self._record_run(run_id, chunks) for run_id, chunks in by_run.items())
        )

    async def _record_run(self, run_id: str, chunks: list[Summed]) -> None:
        runs: RunStore = self.ctx[RUNS]
        try:
            replies = await runs.record_chunks(run_id, [chunk.chunk for chunk in chunks])
        except Exception as exc:  # they run again once their leases lapse
            level = logging.WARNING if isinstance(exc, REDIS_FAULTS) else logging.ERROR
            logger.log(
                level,
                "run %s: could not record %d chunks (%s); they run again once their leases lapse",
                run_id,
                len(chunks),
                describe(exc),
            )
            self.jobs_retried += len(chunks)
            return
        follow_ups = []
        for summed, recorded in zip(chunks, replies, strict=True):
            chunk = summed.chunk
            account(self.ctx, run_id, chunk.index, chunk.count, chunk.seconds, recorded)
            self.log_done(summed.run, summed.ref, recorded is not Recorded.NOTHING)
            self.jobs_complete += 1
            if recorded in (Recorded.LAST, Recorded.ABANDONED):
                follow_ups.append(self._act_on(summed, recorded))
        await asyncio.gather(*follow_ups)

    async def _act_on(self, summed: Summed, recorded: Recorded) -> None:
        """Finalise or abandon the run as ``recorded`` asks, under the job's lease, then
        finish the job (its record left it for this)."""
        run = summed.run
        ctx = self.job_ctx(run)
        try:
            if self.on_job_start:
                await self.on_job_start(ctx)
            try:
                await act_on(ctx, ctx[RUNS], summed.run_id, recorded)
            finally:
                if self.on_job_end:
                    await self.on_job_end(ctx)
            await asyncio.shield(self.finish_job(run.job_id, True, None, 0, False, None, None))
        except Exception as exc:  # its job runs again once its lease lapses
            logger.warning(
                "run %s: could not %s it (%s); chunk %d runs again once its lease lapses",
                summed.run_id,
                "finalise" if recorded is Recorded.LAST else "abandon",
                describe(exc),
                summed.chunk.index,
            )


def _raising(exc: Exception) -> WorkerCoroutine:
    """Return a chunk job that acts on a sum that raised ``exc`` as ``sum_chunk`` does."""

    async def sum_raised(ctx: dict[str, Any], *, run_id: str, index: int, parts: object) -> bool:
        await sum_failed(ctx, run_id, index, exc)
        raise exc

    return sum_raised
