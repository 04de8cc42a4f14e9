"""``chunksum worker``'s arq Worker: batched claims, plus fixes to arq's failure handling.

:class:`ChunksumWorker` claims jobs a batch per round trip (app.worker.claims), hears of
runs' ends (app.worker.run_ends), rides out a Redis outage instead of dying, and never lets
a job arq gives up on, or re-queues after it finished elsewhere, strand or fail a run. It
reads arq's queue and job format, so plain arq workers can serve the same queue.
"""

import contextlib
import logging
from typing import Any

from app import codec
from app.connection import REDIS_FAULTS, Backoff, waitable
from app.faults import bounded, describe, is_out_of_memory
from app.keys import arq_in_progress_key, chunk_of
from app.runs import RunStore
from app.settings import Settings
from app.worker.claims import BatchClaimWorker
from app.worker.run_ends import RunEnds
from jobs.chunks import FINISHED_JOBS, RUN_ENDS

logger = logging.getLogger(__name__)
WORKER = "chunksum_worker"  # in its ctx, the worker itself, for its hooks (app.worker.hooks)


class ChunksumWorker(BatchClaimWorker):
    """The worker ``chunksum worker`` runs, with :func:`app.worker.worker_settings`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings: Settings = kwargs["ctx"]["settings"]
        super().__init__(*args, lease_s=settings.lease_s, **kwargs)
        self.run_ends = RunEnds(stop_chunks=self.abort_run)
        self.ctx[WORKER] = self
        self.ctx[RUN_ENDS] = self.run_ends  # what its jobs use of it
        self.finished_jobs: set[str] = set()  # by their record script: see finish_job
        self.ctx[FINISHED_JOBS] = self.finished_jobs
        self._backoff = Backoff("worker loop")

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_FAULTS as exc:
            # arq's loop would end the worker on this (a claim, or a job's finish, that
            # lost Redis, or that Redis refused for want of memory): wait it out instead;
            # the jobs it held go back on lease expiry
            if not waitable(exc):
                raise
            await self._backoff.wait(exc)
        else:
            self._backoff.reset()

    async def run_job(self, job_id: str, score: int) -> None:
        """Run a job as arq does; if Redis goes (or runs out of memory) before arq has read
        or finished the job, say so (the job's lease lapses and a worker runs it again)
        instead of dying unheard."""
        try:
            await super().run_job(job_id, score)
        except REDIS_FAULTS as exc:
            if not waitable(exc):
                raise
            logger.warning(
                "job %s: Redis %s before arq could finish it (%s); it runs again once its "
                "lease lapses",
                job_id,
                "out of memory" if is_out_of_memory(exc) else "unreachable",
                describe(exc),
            )

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """Finish a job arq gave up on without running it, and fail its chunk's run.

        arq drops a job whose record expired or can't be decoded, or that ran out of tries
        (a worker killed under it every time), with nothing but a log line: the run would
        wait for that chunk until its timeout, or for ever.
        """
        await super().finish_failed_job(job_id, result_data)
        if (chunk := chunk_of(job_id)) is None:
            return
        run_id, index = chunk
        runs: RunStore = self.ctx["runs"]
        if await runs.partials(run_id, [index]):
            # a stale queue entry of a chunk already summed (a plain arq worker's retry can
            # leave one: see finish_job): nothing was lost
            return
        reason = "no reason given"
        with contextlib.suppress(Exception):  # arq's result record, msgpack-encoded by codec
            reason = str(codec.loads(result_data or b"")["r"])
        message = f"chunk {index} was given up by arq without being summed: {bounded(reason)}"
        await runs.fail_chunk(run_id, index, message)

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """Finish a job as arq does, except that a job its record script finished already
        (jobs.chunks.record) is left as it is, and a retry re-queues the job only if it is
        still queued.

        arq re-queues a retried job with ZINCRBY, which adds the job back if it is gone. A
        chunk retried because its worker lost Redis (jobs.chunks) is retried once Redis is
        back, by when another worker may have taken it over on lease expiry and finished
        it, job record and all: the entry added back has no job behind it, and comes back
        as "job expired", which would fail the run (finish_failed_job).
        """
        if job_id in self.finished_jobs:
            self.finished_jobs.remove(job_id)
            if finish and result_data is None:  # nothing left to do: one round trip fewer
                return
        if finish or not incr_score or keep_in_progress is not None:
            await super().finish_job(
                job_id,
                finish,
                result_data,
                result_timeout_s,
                keep_result_forever,
                incr_score,
                keep_in_progress,
            )
            return
        async with self.pool.pipeline(transaction=True) as pipe:
            pipe.delete(arq_in_progress_key(job_id))
            pipe.zadd(self.queue_name, {job_id: incr_score}, xx=True, incr=True)  # XX: never add
            await pipe.execute()

    def abort_run(self, run_id: str) -> None:
        """Abort this worker's running chunks of a run (arq then finishes them as aborted)."""
        for job_id, task in list(self.job_tasks.items()):
            if (chunk := chunk_of(job_id)) is not None and chunk[0] == run_id:
                self.aborting_tasks.add(job_id)
                task.cancel()

    def stats(self) -> dict[str, int]:
        """Return the job counts its heartbeat reports (app.heartbeat)."""
        return {
            "done": self.jobs_complete,
            "failed": self.jobs_failed,
            "retried": self.jobs_retried,
            "running": len(self.job_tasks),
        }
