"""One run's submit engine: enqueue its chunks, gather their partials, store the total.

Partials come back through the run's inbox (a Redis list) that the submitter reads with
BLPOP, so it wakes the moment a worker pushes, with no polling. At most ``max_in_flight``
chunks are queued or running at once: a generator is read as fast as the workers keep up.
The run hash goes out with the first jobs, and the seal (every job enqueued) with the last.
"""

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypedDict, cast

from redis.exceptions import RedisError

from app import codec
from app.connection import LOST_REDIS, redis_name
from app.errors import ChunksumError, RunFailedError, RunNotFoundError, RunTimeoutError
from app.exact import ExactSum, Total
from app.faults import describe, is_out_of_memory, redis_failure
from app.lease import Lease
from app.outages import Outages, run_lost
from app.queue import ChunkJob, ChunkQueue
from app.run_status import EndResult, RunStatus, Status
from app.runs import RunStore
from app.settings import Settings
from app.sources import ChunkArgs, Input, plan_source

Progress = Callable[[int, int | None], None]
"""Called with (chunks done, chunks in all, or None while a stream is still being read)."""

# BLPOP wakes on a push at once; the slice only bounds how long a dead run goes unnoticed.
WAIT_SLICE_S = 5.0
PIPELINE_BYTES = 1 << 20
FLUSH_AFTER_S = 0.05  # longest an encoded chunk waits in the pipeline for more to come
MAX_DRAIN = 1000  # inbox entries read per round trip after BLPOP wakes
logger = logging.getLogger(__name__)


class SubmitOptions(TypedDict, total=False):
    """How to chunk and run a submission (see :func:`app.submit.submit`)."""

    chunks: int | None
    chunk_size: int | None
    timeout: float | None
    on_progress: Progress | None
    decimal: bool


@dataclass(frozen=True, slots=True)
class RunResult:
    """A finished run: its id, exact total, how many numbers and chunks, and the wall time."""

    run_id: str
    total: Total
    count: int
    chunks: int
    elapsed_s: float


class Submission:
    """The submitter's side of one run, from the first chunk enqueued to the stored total.

    Args:
        timeout: the run's deadline in seconds; past it the run fails and its queued jobs go.
        job: the arq job that sums each chunk (the bench registers one of its own).
        decimal: sum text as exact decimals (app.decimals); the total is a Decimal.
    """

    def __init__(
        self,
        queue: ChunkQueue,
        runs: RunStore,
        settings: Settings,
        numbers: Input,
        *,
        chunks: int | None = None,
        chunk_size: int | None = None,
        timeout: float | None = None,  # the run's own deadline: it cleans up
        on_progress: Progress | None = None,
        job: ChunkJob | None = None,
        decimal: bool = False,
    ) -> None:
        self.queue, self.runs, self.settings = queue, runs, settings
        self.redis = runs.redis  # the connection the run's writes go through
        self._redis_name = redis_name(settings)
        self.run_id = uuid.uuid4().hex
        self._source = plan_source(
            numbers,
            chunks=chunks,
            chunk_size=chunk_size,
            settings=settings,
            job=job,
            decimal=decimal,
        )
        self.chunks = self._source.chunks  # None while a stream's length is unknown
        self._max_in_flight = min(
            settings.max_in_flight, self._source.max_in_flight or settings.max_in_flight
        )
        self._timeout_s = timeout
        self._deadline: float | None = None  # set as the run starts
        self._on_progress = on_progress
        self._pending: set[int] = set()
        self._total = ExactSum.of_decimal(0, 0) if decimal else ExactSum()
        self._count = self._sent = self._done = 0  # numbers: at enqueue, or from the workers
        self._outages = Outages(queue, runs, settings, self.run_id)
        self._created = False  # the run hash is in Redis
        self._finalised: RunStatus | None = None  # the run as a worker ended it, total and all
        self._inbox_empty = True  # as far as this submitter knows: see _receive

    async def run(self) -> RunResult:
        """Sum the numbers on the workers, store the total, and return the result."""
        started = time.perf_counter()
        if self._timeout_s is not None:
            self._deadline = time.monotonic() + self._timeout_s
        # held until the run is sealed (its key is then gone, and renewals do nothing)
        sender = Lease(
            self.redis, self.runs.keys.sender(self.run_id), lease_s=self.settings.submitter_lease_s
        )
        sender.start(leased=True)
        try:
            await self._drive()
            if self._finalised is None:
                await self._finish()
        except RedisError as exc:  # never raised as it is: it may hold a whole pipeline
            failure = await asyncio.shield(self._failure(exc))
            await asyncio.shield(self._abandon(failure))
            raise failure from exc
        except BaseException as exc:
            await asyncio.shield(self._abandon(exc))
            raise
        finally:
            await sender.stop()
        # a worker that finalised the run read every partial; this submitter may have missed
        # some that left the inbox with it (both totals are exact: the stored one is whole)
        total, count = self._total.value(), self._count
        if self._finalised is not None and self._finalised.total is not None:
            total, count = self._finalised.total, self._finalised.count or count
        elapsed_s = time.perf_counter() - started
        return RunResult(self.run_id, total, count, self._sent, elapsed_s)

    async def _finish(self) -> None:
        ended = await self.runs.finish(
            self.run_id, self._total, count=self._count, chunks=self._sent
        )
        # done: the last chunk's worker wrote the same total first
        if ended is EndResult.MISSING:
            raise run_lost(self.run_id)
        if ended not in (EndResult.ENDED, EndResult.WAS_DONE):
            raise RunFailedError(
                f"run {self.run_id} was {ended} before it finished", run_id=self.run_id
            )

    async def _drive(self) -> None:
        exhausted = False
        while True:
            free = self._max_in_flight - len(self._pending)
            if not exhausted and free > 0:
                exhausted = await self._enqueue(free)
            elif not self._pending:
                return
            else:
                await self._collect()
                if self._on_progress is not None:
                    self._on_progress(self._done, self._sent if exhausted else self.chunks)

    async def _enqueue(self, wanted: int) -> bool:
        """Encode and enqueue up to ``wanted`` chunks, one pipeline per megabyte; return
        whether the input ran out (the run is then sealed, in the last pipeline).

        A pipeline goes out while the next is encoded; the one after waits for it, so that
        the run is sealed only once every job before it is in.
        """
        pipe = self.redis.pipeline(transaction=False)
        if not self._created:  # the run goes out with its first jobs: one round trip fewer
            lease_s = self.settings.submitter_lease_s
            self.runs.add_create(pipe, self.run_id, chunks=self.chunks, sender_lease_s=lease_s)
        count = size = 0
        indexes: list[int] = []
        started = time.monotonic()
        sending: asyncio.Future[None] | None = None  # the pipeline before, on its way
        try:
            for chunk in itertools.islice(self._source.items, wanted):  # one by one
                size += self._add(pipe, chunk)
                indexes.append(chunk.index)
                count += 1
                # a slow stream's chunks go out as they come, not once a megabyte is ready
                if size >= PIPELINE_BYTES or time.monotonic() - started >= FLUSH_AFTER_S:
                    if sending is not None:
                        await sending
                    sending = asyncio.ensure_future(self._flush(pipe, indexes))
                    pipe = self.redis.pipeline(transaction=False)
                    size, indexes, started = 0, [], time.monotonic()
                    await asyncio.sleep(0)  # it is written out now, and Redis takes it in
            if sending is not None:
                await sending
        except BaseException:
            if sending is not None:  # let it land (or fail) before the run is abandoned
                await asyncio.wait([sending])
            raise
        exhausted = count < wanted or self._sent == self.chunks
        if exhausted:
            numbers = None if self._source.counted_by_workers else self._count
            self.runs.add_seal(pipe, self.run_id, chunks=self._sent, count=numbers)
        if indexes or exhausted or not self._created:
            await self._flush(pipe, indexes)
        return exhausted

    def _add(self, pipe: Any, chunk: ChunkArgs) -> int:
        size = self.queue.add(pipe, self.run_id, chunk.index, chunk.args, self._source.job)
        self._pending.add(chunk.index)
        self._count += chunk.count
        self._sent += 1
        return size

    async def _flush(self, pipe: Any, indexes: list[int]) -> None:
        """Send the pipeline, with a wake-up that names its jobs; if Redis is lost, ride out
        the outage and send it again (job ids are deterministic: a job sent twice is one)."""
        self.queue.add_wake(pipe, self.run_id, indexes)
        commands = list(pipe.command_stack)
        while True:
            try:
                await self.runs.replicas.execute(pipe, f"chunks of run {self.run_id}")
                break
            except LOST_REDIS as exc:
                entries = await self._outages.ride_out(
                    exc,
                    pending=self._pending,
                    created=self._created,
                    deadline=self._deadline,
                    unsent=frozenset(indexes),
                )
                for entry in entries:
                    self._accept(entry)
                for args, options in commands:  # execute() emptied the pipeline
                    pipe.execute_command(*args, **options)
        self._created = True

    async def _collect(self) -> None:
        wait_s = WAIT_SLICE_S
        if self._deadline is not None:
            wait_s = min(wait_s, self._deadline - time.monotonic())
            if wait_s <= 0:
                raise RunTimeoutError(
                    f"run {self.run_id} timed out with {len(self._pending)} of {self._sent} "
                    "chunks unfinished; are workers running on this Redis and key prefix? "
                    "Start one with `chunksum worker`, or allow a longer timeout",
                    run_id=self.run_id,
                )
        try:
            if self._outages.failing:
                entries = await self._outages.recover(self._pending, created=self._created)
            else:
                entries = await self._receive(wait_s)
        except LOST_REDIS as exc:
            await self._outages.back_off(exc, deadline=self._deadline)
            return
        if not entries or not all([self._accept(entry) for entry in entries]):
            await self._check_active()

    def _accept(self, entry: bytes) -> bool:
        """Add the partials of one inbox entry (one, or a worker's batch), or raise a chunk's
        failure; return False for the mark that a worker has finalised the run (see
        RunStore.finalise)."""
        return all([self._accept_item(item) for item in codec.loads_all(entry)])

    def _accept_item(self, item: Any) -> bool:
        match item:
            case [int(), None, str() as error]:
                raise RunFailedError(f"run {self.run_id} failed: {error}", run_id=self.run_id)
            case [int() as index, wire, int() as count] if index in self._pending:
                self._pending.remove(index)
                self._total += ExactSum.from_wire(wire)
                self._done += 1
                if self._source.counted_by_workers:
                    self._count += count
            case ["finalised"]:
                return False
        return True

    async def _receive(self, wait_s: float) -> list[bytes]:
        """Take all entries in the run's inbox; if there are none, wait for one (BLPOP).

        Taking first means that a partial arriving alone (the last one, say) is handed over
        by the BLPOP already waiting for it, with no round trip after it. Where the inbox was
        found empty (or the chunks were only just enqueued), the BLPOP goes first: it takes
        an entry already there as soon.
        """
        inbox = self.runs.keys.inbox(self.run_id)
        if not self._inbox_empty:
            taken = await cast(Awaitable[list[bytes] | None], self.redis.lpop(inbox, MAX_DRAIN))
            if taken:
                return taken
        # Redis >= 6 takes fractional BLPOP timeouts; redis-py's annotation says int
        timeout_s: Any = max(wait_s, 0.01)
        popped = await cast(Awaitable[list[bytes] | None], self.redis.blpop([inbox], timeout_s))
        self._inbox_empty = popped is None  # else more may have come with it
        return [] if popped is None else [popped[1]]

    async def _check_active(self) -> None:
        """Raise if the run has failed or was cancelled; take it as it is if a worker has
        finished it (its partials may have left the inbox unread: see RunStore.finalise)."""
        try:
            stored = await self.runs.read(self.run_id)
        except RunNotFoundError:  # it was there: the submitter wrote it
            raise run_lost(self.run_id) from None
        if stored.status is Status.DONE:
            self._finalised = stored
            self._pending.clear()
        elif not stored.status.active:
            raise RunFailedError(
                f"run {self.run_id} was {stored.status} while waiting: {stored.error}",
                run_id=self.run_id,
            )

    async def _failure(self, exc: RedisError) -> ChunksumError:
        """Return the chunksum error for a redis-py error that ends the run."""
        outcome = f"run {self.run_id} failed and its jobs were removed"
        memory = ""
        if is_out_of_memory(exc):
            with contextlib.suppress(Exception):  # the figures only help: go on without
                info = await self.redis.info("memory")
                memory = (
                    f" (maxmemory {info['maxmemory_human']}, {info['used_memory_human']} used, "
                    f"policy {info['maxmemory_policy']})"
                )
        return redis_failure(
            exc,
            redis=self._redis_name,
            outcome=outcome,
            memory=memory,
            max_in_flight=self.settings.max_in_flight,
        )

    async def _abandon(self, exc: BaseException) -> None:
        """Mark the run cancelled or failed, and remove its jobs first: deletes work even
        when Redis is out of memory, and free what ending the run writes."""
        cancelled = isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
        status = Status.CANCELLED if cancelled else Status.FAILED
        error = "cancelled by the submitter" if cancelled else describe(exc)
        try:
            await self.queue.remove(self.run_id, sorted(self._pending))
            await self.runs.end(self.run_id, status, error=error)
        except Exception as failure:  # logged in one line: it may hold a whole pipeline
            logger.warning("could not mark run %s %s: %s", self.run_id, status, describe(failure))
