"""A worker that claims queued jobs a batch per round trip, instead of four round trips each.

arq's worker claims the jobs its queue read found one at a time: WATCH the job's
in-progress key, EXISTS, ZSCORE, then MULTI/PSETEX/EXEC, four round trips in sequence
before the next job is even looked at. With a thousand small chunks, those round trips are
most of a run. :class:`ChunksumWorker` claims up to ``CLAIM_BATCH`` jobs with one Lua script
that makes the same checks and sets the same in-progress keys, atomically, so it shares a
queue with plain arq workers (``arq app.worker.WorkerSettings``) without either claiming a
job the other holds.
"""

import asyncio
import contextlib
import logging
from typing import Any

from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.commands.core import AsyncScript

from app import codec
from app.connection import LOST_REDIS, Backoff
from app.keys import arq_in_progress_key, chunk_of
from app.runs import RunStore
from app.settings import Settings

logger = logging.getLogger(__name__)
# Jobs claimed per round trip: enough to fill a worker quickly, few enough that one worker
# woken first doesn't take every chunk of a short run while the others watch.
CLAIM_BATCH = 8
FULL_WAIT_S = 1.0  # longest a full worker waits for a free slot before arq's housekeeping
# In a ChunksumWorker's ctx, the worker itself: its hooks (app.worker) and jobs (jobs.chunks)
# use it where there is one, and do without under a plain arq worker
WORKER = "chunksum_worker"
MAX_TALLIED_RUNS = 1000  # runs a worker keeps a tally of until it hears they ended
STOPPED_WITH = ("cancelled", "failed")  # a run ending so stops its running chunks

# KEYS: the queue, then each job's in-progress key; ARGV: now (ms), expiry (ms), job ids.
# Claims the jobs that are due and not already running; returns [id, score, id, score...].
_CLAIM = """
local now = tonumber(ARGV[1])
local claimed = {}
for i = 2, #KEYS do
  local id = ARGV[i + 1]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now
      and redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[2]) then
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = score
  end
end
return claimed
"""


class ChunksumWorker(Worker):
    """An arq ``Worker`` whose claims take one round trip per ``CLAIM_BATCH`` jobs."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        settings: Settings = self.ctx["settings"]
        # claimed with a lease's expiry, not arq's job timeout + 10 s: a worker killed before
        # the job's lease starts renewing (app.lease) loses the job as soon
        self._lease_ms = int(settings.lease_s * 1000)
        self.ctx[WORKER] = self
        self._run_ends: dict[str, asyncio.Event] = {}  # runs whose end a job waits for
        self._tallies: dict[str, list[float]] = {}  # run id -> [chunks, numbers, seconds]
        # No pause between queue reads: an idle read waits for a wake-up (app.wakeup), and a
        # full worker waits for a free slot (below). arq's pause would delay each pick-up.
        self.poll_delay_s = 0.0
        self._slot_freed = asyncio.Event()
        self._claim: AsyncScript | None = None
        self._backoff = Backoff("worker loop")

    async def _poll_iteration(self) -> None:
        if self.job_counter >= self.max_jobs:  # full: wait for a job to end, don't spin
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):  # then carry on with arq's housekeeping
                await asyncio.wait_for(self._slot_freed.wait(), FULL_WAIT_S)
        try:
            await super()._poll_iteration()
        except LOST_REDIS as exc:
            # arq's loop would end the worker on this (a claim, or a job's finish, that
            # lost Redis): wait it out instead; the jobs it held go back on lease expiry
            await self._backoff.wait(exc)
        else:
            self._backoff.reset()

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._slot_freed.set()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Claim and start jobs of ``job_ids``, in order, while there are free job slots."""
        if self._claim is None:  # arq opens the pool in main(), after __init__
            self._claim = self.pool.register_script(_CLAIM)
        to_try = [job_id.decode() for job_id in job_ids]
        while to_try:
            slots = await self._reserve(min(len(to_try), CLAIM_BATCH))
            if not slots:
                return
            batch, to_try = to_try[:slots], to_try[slots:]
            claimed = await self._claim(
                keys=[self.queue_name, *map(arq_in_progress_key, batch)],
                args=[timestamp_ms(), self._lease_ms, *batch],
            )
            for _ in range(slots - len(claimed) // 2):  # running, done or deferred
                self._release_sem_dec_counter_on_complete()
            for job_id, score in zip(claimed[::2], claimed[1::2], strict=True):
                self._start(job_id.decode(), int(float(score)))

    async def _reserve(self, wanted: int) -> int:
        """Take up to ``wanted`` job slots, waiting for the first as arq does; return how many."""
        await self.sem.acquire()
        if self.job_counter >= self.max_jobs:
            self.sem.release()
            return 0
        self.job_counter += 1
        slots = 1
        while slots < wanted and self.job_counter < self.max_jobs and not self.sem.locked():
            await self.sem.acquire()  # free (not locked): returns at once
            self.job_counter += 1
            slots += 1
        return slots

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
        message = f"chunk {index} was given up by arq without being summed: {reason}"
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
        """Finish a job as arq does, except that a retry re-queues the job only if it is
        still queued.

        arq re-queues a retried job with ZINCRBY, which adds the job back if it is gone. A
        chunk retried because its worker lost Redis (jobs.chunks) is retried once Redis is
        back, by when another worker may have taken it over on lease expiry and finished
        it, job record and all: the entry added back has no job behind it, and comes back
        as "job expired", which would fail the run (finish_failed_job).
        """
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

    def tally(self, run_id: str, count: int, seconds: float) -> None:
        """Count a chunk this worker recorded, for the summary it logs as the run ends."""
        if run_id not in self._tallies and len(self._tallies) >= MAX_TALLIED_RUNS:
            self._tallies.pop(next(iter(self._tallies)))  # an end we never heard of
        done = self._tallies.setdefault(run_id, [0, 0, 0.0])
        done[0], done[1], done[2] = done[0] + 1, done[1] + count, done[2] + seconds

    async def await_run_end(self, run_id: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a run to end; return whether it has."""
        # the run can't end before its last partial, which the job calling this has just
        # recorded, reaches the submitter: listening now, it hears the end (or, where the
        # end is read first from a busy socket, waits the timeout out and finds it ended)
        ended = self._run_ends.setdefault(run_id, asyncio.Event())
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), timeout_s)
            return ended.is_set()
        finally:
            self._run_ends.pop(run_id, None)

    def run_ended(self, run_id: str, status: str) -> None:
        """Log what this worker did for a run that ended; wake its jobs waiting for that;
        abort its running chunks of a run that was cancelled or failed (their partials would
        be refused, and their slots can serve other runs)."""
        if (ended := self._run_ends.get(run_id)) is not None:
            ended.set()
        if (done := self._tallies.pop(run_id, None)) is not None:
            chunks, numbers, seconds = int(done[0]), int(done[1]), done[2]
            logger.info(
                "run %s %s: this worker summed %d chunks, %d numbers, in %.3f s of chunk time",
                *(run_id, status, chunks, numbers, seconds),
                extra={"chunk": {"run": run_id, "status": status, "chunks": chunks}},
            )
        if status not in STOPPED_WITH:
            return
        for job_id, task in list(self.job_tasks.items()):
            if (chunk := chunk_of(job_id)) is not None and chunk[0] == run_id:
                self.aborting_tasks.add(job_id)  # arq then finishes the job as aborted
                task.cancel()

    def stats(self) -> dict[str, int]:
        """Return the job counts its heartbeat reports (app.heartbeat)."""
        return {
            "done": self.jobs_complete,
            "failed": self.jobs_failed,
            "retried": self.jobs_retried,
            "running": len(self.job_tasks),
        }

    async def run_job(self, job_id: str, score: int) -> None:
        """Run a job as arq does; if Redis goes before arq has read or finished the job, say
        so (the job's lease lapses and a worker runs it again) instead of dying unheard."""
        try:
            await super().run_job(job_id, score)
        except LOST_REDIS as exc:
            logger.warning(
                "job %s: Redis unreachable before arq could finish it (%s); it runs again once "
                "its lease lapses",
                job_id,
                exc,
            )

    def _start(self, job_id: str, score: int) -> None:
        task = self.loop.create_task(self.run_job(job_id, score))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task
