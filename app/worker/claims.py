"""Claims of queued jobs a batch per round trip, instead of five round trips each.

arq's worker claims the jobs its queue read found one at a time: WATCH the job's
in-progress key, EXISTS, ZSCORE, then MULTI/PSETEX/EXEC, four round trips in sequence
before the next job is even looked at, and a fifth to read the job. With a thousand small
chunks, those round trips are most of a run. :class:`BatchClaimWorker` claims up to
``CLAIM_BATCH`` jobs with one Lua script (``app/lua/claim.lua``) that makes the same checks
and sets the same in-progress keys, atomically, so it shares a queue with plain arq workers
(``arq app.worker.WorkerSettings``) without either claiming a job the other holds; the
script reads the jobs it claimed too, and each runs from that read (app.worker.loaded_jobs).
"""

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from arq.utils import timestamp_ms
from redis.commands.core import AsyncScript

from app import scripts
from app.keys import ARQ_ABORT_SET, arq_in_progress_key, arq_job_key, arq_retry_key
from app.queue import CLAIM_BATCH
from app.worker.lean_chunks import Claimed, LeanChunks, Summed
from app.worker.loaded_jobs import Loaded

# The biggest job record a claim reads for its job: a chunk of a few thousand numbers, whose
# own round trip would be a good part of its time; a bigger one is read by its job.
CLAIM_READ_BYTES = 64 * 1024
FULL_WAIT_S = 1.0  # longest a full worker waits for a free slot before arq's housekeeping


class BatchClaimWorker(LeanChunks):
    """An arq ``Worker`` whose claims take one round trip per ``CLAIM_BATCH`` jobs.

    Args:
        lease_s: the in-progress keys' expiry: a job lease (app.lease), not arq's job
            timeout + 10 s, so a worker killed before the job renews it loses the job as soon.
    """

    def __init__(self, *args: Any, lease_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lease_ms = int(lease_s * 1000)
        # No pause between queue reads: an idle read waits for a wake-up (app.worker.wakeup),
        # and a full worker waits for a free slot. arq's pause would delay each pick-up.
        self.poll_delay_s = 0.0
        self._slot_freed = asyncio.Event()
        self._claim: AsyncScript | None = None

    async def _poll_iteration(self) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # arq's stop (SIGTERM, close) cancels this loop; redis-py 5 turns a cancel that
            # lands in its connection check into a timeout it ignores (app.interrupts): the
            # loop would run on, without a pause between passes
            raise asyncio.CancelledError
        # full, or stopping (SIGTERM) with jobs still running: wait for a job to end rather
        # than spin, as a loop with no pause between passes would
        stopping = not self.allow_pick_jobs and self.job_counter
        if self.job_counter >= self.max_jobs or stopping:
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):  # then carry on with arq's housekeeping
                await asyncio.wait_for(self._slot_freed.wait(), FULL_WAIT_S)
        await super()._poll_iteration()

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._slot_freed.set()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Claim and start jobs of ``job_ids``, in order, while there are free job slots."""
        if self._claim is None:  # arq opens the pool in main(), after __init__
            self._claim = self.pool.register_script(scripts.source("claim"))
        # not the jobs this worker runs already (a run's last chunk stays queued until its
        # worker has finalised the run: see record.lua)
        to_try = [job_id for job_id in map(bytes.decode, job_ids) if job_id not in self.tasks]
        while to_try:
            slots = await self._reserve(min(len(to_try), CLAIM_BATCH))
            if not slots:
                return
            batch, to_try = to_try[:slots], to_try[slots:]
            claimed = await self._claim(
                keys=[self.queue_name, ARQ_ABORT_SET, *_job_keys(batch)],
                args=[
                    timestamp_ms(),
                    self._lease_ms,
                    int(self.allow_abort_jobs),
                    CLAIM_READ_BYTES,
                    *batch,
                ],
            )
            for _ in range(slots - len(claimed) // 5):  # running, done or deferred
                self._release_sem_dec_counter_on_complete()
            jobs = [
                Claimed(job_id.decode(), int(float(score)), _loaded(record, job_try, aborted))
                for job_id, score, record, job_try, aborted in _fives(claimed)
            ]
            lean, usual = self.summed(jobs)
            if lean:
                self._start_lean(lean)
            for job in usual:
                if job.loaded is not None:
                    self.preload(job.job_id, job.loaded)
                self._start(job.job_id, job.score)

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

    def _start_lean(self, lean: list[Summed]) -> None:
        """Record summed chunk jobs in a task of their own, which holds their job slots."""
        task = self.loop.create_task(self.record(lean))

        def release(_: object) -> None:
            for _job in lean:
                self._release_sem_dec_counter_on_complete()

        task.add_done_callback(release)
        for summed in lean:  # arq's shutdown waits for them, and its loop reaps them
            self.tasks[summed.run.job_id] = task

    def _start(self, job_id: str, score: int) -> None:
        task = self.loop.create_task(self.run_job(job_id, score))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task


def _job_keys(job_ids: list[str]) -> list[str]:
    """Return the claim script's keys for each job: in-progress mark, record, try count."""
    return [
        key
        for job_id in job_ids
        for key in (arq_in_progress_key(job_id), arq_job_key(job_id), arq_retry_key(job_id))
    ]


def _loaded(record: bytes | None, job_try: int, aborted: int) -> Loaded | None:
    """Return what the claim read of a job (None for a job left for its run to read)."""
    return Loaded(record, job_try, bool(aborted)) if job_try else None


def _fives(reply: list[Any]) -> Iterator[tuple[Any, Any, Any, Any, Any]]:
    """Return the claim script's reply a claimed job at a time."""
    items = iter(reply)
    return zip(items, items, items, items, items, strict=True)
