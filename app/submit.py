"""Submit numbers: chunk them, enqueue one arq job per chunk, gather the partials, store the total.

Partials come back through a per-run Redis list that the submitter reads with BLPOP, so
it wakes the moment a worker pushes, with no polling. At most ``max_in_flight`` chunks
are queued or running at once: a generator is read as fast as the workers keep up.
"""

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Self, cast

from arq.connections import ArqRedis
from arq.jobs import serialize_job

from app import codec
from app.chunking import Chunk, Numbers, plan
from app.connection import LOST_REDIS, Backoff, close, connect
from app.errors import (
    ChunkingError,
    ChunksumError,
    RedisUnavailableError,
    RunFailedError,
    RunNotDoneError,
    RunTimeoutError,
    WaitTimeoutError,
)
from app.exact import ExactSum
from app.heartbeat import WorkerInfo, live_workers
from app.keys import SUM_CHUNK_JOB, Keys, arq_job_key, job_id
from app.lease import Lease
from app.replication import Replicas
from app.runs import ACTIVE, RunStatus, RunStore
from app.settings import Settings

Progress = Callable[[int, int | None], None]
"""Called with (chunks done, chunks in all, or None while a stream is still being read)."""

# BLPOP wakes on a push at once; the slice only bounds how long a dead run goes unnoticed.
WAIT_SLICE_S = 5.0
PIPELINE_BYTES = 1 << 20
FLUSH_AFTER_S = 0.05  # longest an encoded chunk waits in the pipeline for more to come
MAX_DRAIN = 1000  # inbox entries read per round trip after BLPOP wakes
RECONNECT_S = 30.0  # how long a submitter rides out an unreachable Redis
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunResult:
    """A finished run: its id, exact total, how many numbers and chunks, and the wall time."""

    run_id: str
    total: int | float
    count: int
    chunks: int
    elapsed_s: float


@dataclass(slots=True)
class _Run:
    """The submitter's side of a run in progress."""

    run_id: str
    chunks: int | None
    deadline: float | None
    simulate_io_s: float = 0.0
    pending: set[int] = field(default_factory=set)
    total: ExactSum = field(default_factory=ExactSum)
    count: int = 0
    sent: int = 0
    done: int = 0
    backoff: Backoff = field(default_factory=lambda: Backoff("submitter"))
    created: bool = False  # the run hash is in Redis
    finalised: RunStatus | None = None  # the run as a worker ended it, total and all

    def accept(self, entry: bytes) -> bool:
        """Add one inbox entry's partial, or raise the chunk's failure; return False for the
        mark that a worker has finalised the run (see RunStore.finalise)."""
        match codec.loads(entry):
            case [int() as index, None, str() as error]:
                raise RunFailedError(f"run {self.run_id} failed: {error}", run_id=self.run_id)
            case [int() as index, wire] if index in self.pending:
                self.pending.remove(index)
                self.total += ExactSum.from_wire(wire)
                self.done += 1
            case ["finalised"]:
                return False
        return True


class Client:
    """A connection to one chunksum deployment; reuse it for many submits."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._job_ttl_ms = int((settings.result_ttl_s or 86_400) * 1000)
        self._redis: ArqRedis | None = None
        self._runs: RunStore | None = None

    async def __aenter__(self) -> Self:
        self._redis = await connect(self.settings)
        replicas = Replicas.for_settings(self.settings)
        self._runs = RunStore(
            self._redis, self.keys, ttl_s=self.settings.result_ttl_s, replicas=replicas
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await close(self.redis)

    @property
    def redis(self) -> ArqRedis:
        """Return the open connection pool."""
        if self._redis is None:
            raise ChunksumError(
                "the Client is not open: use `async with Client(settings) as client:`"
            )
        return self._redis

    @property
    def runs(self) -> RunStore:
        """Return the run store."""
        if self._runs is None:
            raise ChunksumError(
                "the Client is not open: use `async with Client(settings) as client:`"
            )
        return self._runs

    async def submit(
        self,
        numbers: Numbers,
        *,
        chunks: int | None = None,
        chunk_size: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # the run's own deadline: it cleans up
        on_progress: Progress | None = None,
        simulate_io_s: float = 0.0,
    ) -> RunResult:
        """Sum ``numbers`` on the workers and store the total in Redis; see :func:`submit`."""
        started = time.perf_counter()
        chunked = plan(
            numbers, chunks=chunks, chunk_size=chunk_size, default_size=self.settings.chunk_size
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        run = _Run(uuid.uuid4().hex, chunked.chunks, deadline, simulate_io_s)
        # held until the run is sealed (its key is then gone, and renewals do nothing)
        sender = Lease(
            self.redis, self.keys.sender(run.run_id), lease_s=self.settings.submitter_lease_s
        )
        sender.start(leased=True)
        try:
            await self._drive(run, chunked.items, on_progress)
            if run.finalised is None:
                ended = await self.runs.finish(
                    run.run_id, run.total, count=run.count, chunks=run.sent
                )
                if ended not in (None, "done"):  # done: the last chunk's worker wrote it
                    raise RunFailedError(
                        f"run {run.run_id} was {ended} before it finished", run_id=run.run_id
                    )
        except BaseException as exc:
            await asyncio.shield(self._abandon(run, exc))
            raise
        finally:
            await sender.stop()
        # a worker that finalised the run read every partial; this submitter may have missed
        # some that left the inbox with it (both totals are exact: the stored one is whole)
        stored = None if run.finalised is None else run.finalised.total
        total = run.total.value() if stored is None else stored
        return RunResult(run.run_id, total, run.count, run.sent, time.perf_counter() - started)

    async def recent_runs(self, limit: int = 20) -> list[RunStatus]:
        """Return up to ``limit`` runs still retained in Redis, newest first."""
        return await self.runs.recent(limit)

    async def workers(self) -> list[WorkerInfo]:
        """Return the live workers of this deployment (those with a fresh heartbeat)."""
        return await live_workers(self.redis, self.keys)

    async def queue_depth(self) -> int:
        """Return how many chunk jobs are queued or running, across every run."""
        return int(await cast(Awaitable[int], self.redis.zcard(self.keys.queue)))

    async def status(self, run_id: str) -> RunStatus:
        """Return a run's stored state; raise RunNotFoundError for an unknown id."""
        return await self.runs.read(run_id)

    async def cancel(self, run_id: str) -> RunStatus:
        """Cancel a run: queued chunks are removed, running ones are ignored, its submitter
        gets RunFailedError at once. Cancelling an ended run changes nothing."""
        await self.runs.cancel(run_id, "cancelled with `chunksum cancel`")
        return await self.runs.read(run_id)

    async def wait(self, run_id: str, timeout: float | None = None) -> RunStatus:  # noqa: ASYNC109
        """Wait until a run ends (done, failed or cancelled) and return it.

        Rides out a Redis outage (a restart, a Sentinel failover) of up to RECONNECT_S.

        Args:
            timeout: seconds; then WaitTimeoutError (the run goes on). None waits for good.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = Backoff(f"wait for run {run_id}")
        while True:
            try:
                return await self._wait(run_id, deadline, timeout, backoff)
            except WaitTimeoutError:  # a TimeoutError, so an OSError: not a lost Redis
                raise
            except LOST_REDIS as exc:
                if backoff.failing_for_s() > RECONNECT_S:
                    raise RedisUnavailableError(
                        f"lost Redis for over {RECONNECT_S:.0f} s while waiting for run "
                        f"{run_id} ({exc}); the run goes on: wait again later"
                    ) from exc
                await backoff.wait(exc)

    async def _wait(
        self, run_id: str, deadline: float | None, timeout_s: float | None, backoff: Backoff
    ) -> RunStatus:
        async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.keys.ended_channel(run_id))  # before reading: no race
            while (run := await self.runs.read(run_id)).status in ACTIVE:
                backoff.reset()
                wait_s = WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
                if wait_s <= 0:
                    raise WaitTimeoutError(
                        f"run {run_id} is still {run.status} ({run.done_chunks} of "
                        f"{run.chunks or '?'} chunks done) after {timeout_s} s; wait longer"
                    )
                await pubsub.get_message(timeout=min(wait_s, WAIT_SLICE_S))
        return run

    async def result(self, run_id: str) -> int | float:
        """Return a finished run's total; raise RunFailedError or RunNotDoneError otherwise."""
        run = await self.runs.read(run_id)
        if run.status == "done" and run.total is not None:
            return run.total
        if run.status in ("failed", "cancelled"):
            raise RunFailedError(f"run {run_id} {run.status}: {run.error}", run_id=run_id)
        raise RunNotDoneError(
            f"run {run_id} is {run.status} ({run.done_chunks} of {run.chunks or '?'} chunks done); "
            "try again later"
        )

    async def _drive(self, run: _Run, items: Iterator[Chunk], on_progress: Progress | None) -> None:
        exhausted = False
        while True:
            free = self.settings.max_in_flight - len(run.pending)
            if not exhausted and free > 0:
                exhausted = await self._enqueue(run, items, free)
            elif not run.pending:
                return
            else:
                await self._collect(run)
                if on_progress is not None:
                    on_progress(run.done, run.sent if exhausted else run.chunks)

    async def _enqueue(self, run: _Run, items: Iterator[Chunk], wanted: int) -> bool:
        """Encode and enqueue up to ``wanted`` chunks, one pipeline per megabyte; return
        whether ``items`` ran out (the run is then sealed, in the last pipeline)."""
        pipe = self.redis.pipeline(transaction=False)
        if not run.created:  # the run goes out with its first jobs: one round trip fewer
            lease_s = self.settings.submitter_lease_s
            self.runs.add_create(pipe, run.run_id, chunks=run.chunks, sender_lease_s=lease_s)
        count = size = 0
        job_ids: list[str] = []
        started = time.monotonic()
        for chunk in itertools.islice(items, wanted):  # one by one: raw numbers don't pile up
            size += self._add_job(pipe, run, chunk)
            job_ids.append(job_id(run.run_id, chunk.index))
            count += 1
            # a slow stream's chunks go out as they come, not once a megabyte is ready
            if size >= PIPELINE_BYTES or time.monotonic() - started >= FLUSH_AFTER_S:
                await self._flush(pipe, run, job_ids)
                size, job_ids, started = 0, [], time.monotonic()
        exhausted = count < wanted or run.sent == run.chunks
        if exhausted:
            self.runs.add_seal(pipe, run.run_id, chunks=run.sent, count=run.count)
        if job_ids or exhausted or not run.created:
            await self._flush(pipe, run, job_ids)
        return exhausted

    async def _flush(self, pipe: Any, run: _Run, job_ids: list[str]) -> None:
        """Send the pipeline, with a wake-up that names its jobs (see app.wakeup)."""
        if job_ids:
            pipe.publish(self.keys.wake_channel, " ".join(job_ids))
        await self.runs.replicas.execute(pipe, f"chunks of run {run.run_id}")
        run.created = True

    def _add_job(self, pipe: Any, run: _Run, chunk: Chunk) -> int:
        parts = codec.encode_chunk(chunk.values, chunk.offset)
        now_ms = int(time.time() * 1000)
        kwargs: dict[str, Any] = {"run_id": run.run_id, "index": chunk.index, "parts": parts}
        if run.simulate_io_s:
            kwargs["simulate_io_s"] = run.simulate_io_s
        data = serialize_job(SUM_CHUNK_JOB, (), kwargs, None, now_ms, serializer=codec.dumps)
        if len(data) > self.settings.max_chunk_bytes:
            raise ChunkingError(
                f"chunk {chunk.index} packs to {len(data):,} bytes, over CHUNKSUM_MAX_CHUNK_BYTES="
                f"{self.settings.max_chunk_bytes:,}; pass a smaller chunk_size (or more chunks)"
            )
        chunk_job = job_id(run.run_id, chunk.index)
        pipe.psetex(arq_job_key(chunk_job), self._job_ttl_ms, data)
        pipe.zadd(self.keys.queue, {chunk_job: now_ms})
        run.pending.add(chunk.index)
        run.count += len(chunk.values)
        run.sent += 1
        return len(data)

    async def _collect(self, run: _Run) -> None:
        wait_s = WAIT_SLICE_S
        if run.deadline is not None:
            wait_s = min(wait_s, run.deadline - time.monotonic())
            if wait_s <= 0:
                raise RunTimeoutError(
                    f"run {run.run_id} timed out with {len(run.pending)} of {run.sent} chunks "
                    "unfinished; are workers running on this Redis and key prefix? Start one "
                    "with `chunksum worker`, or allow a longer timeout",
                    run_id=run.run_id,
                )
        try:
            if not run.backoff.failing:
                entries = await self._receive(run, wait_s)
            else:
                entries = await self._recover(run)
        except LOST_REDIS as exc:
            await self._back_off(run, exc)
            return
        if not entries:
            await self._check_active(run)
        if not all([run.accept(entry) for entry in entries]):
            await self._check_active(run)

    async def _receive(self, run: _Run, wait_s: float) -> list[bytes]:
        """Take all partials in the run's inbox; if there are none, wait for one (BLPOP).

        Taking first means that a partial arriving alone (the last one, say) is handed over
        by the BLPOP already waiting for it, with no round trip after it.
        """
        inbox = self.keys.inbox(run.run_id)
        if taken := await cast(Awaitable[list[bytes] | None], self.redis.lpop(inbox, MAX_DRAIN)):
            return taken
        # Redis >= 6 takes fractional BLPOP timeouts; redis-py's annotation says int
        timeout_s: Any = max(wait_s, 0.01)
        popped = await cast(Awaitable[list[bytes] | None], self.redis.blpop([inbox], timeout_s))
        return [] if popped is None else [popped[1]]

    async def _recover(self, run: _Run) -> list[bytes]:
        """Back from an outage: take the partials recorded meanwhile (an inbox entry popped as
        the connection broke is lost with it), and fail the run if Redis lost any chunks."""
        found = await self.runs.check_chunks(run.run_id, sorted(run.pending))
        if found.lost:  # a failover to a replica that had not received them
            raise RunFailedError(
                f"Redis came back without {len(found.lost)} of run {run.run_id}'s chunks (e.g. "
                f"chunk {found.lost[0]}): a failover promoted a replica that had not received "
                "them. Submit the numbers again; CHUNKSUM_WAIT_REPLICAS=1 or more makes this rarer",
                run_id=run.run_id,
            )
        run.backoff.reset()
        return found.partials

    async def _back_off(self, run: _Run, exc: Exception) -> None:
        """Wait a little while Redis is unreachable; give up after RECONNECT_S."""
        if run.backoff.failing_for_s() > RECONNECT_S:
            raise RedisUnavailableError(
                f"lost Redis for over {RECONNECT_S:.0f} s during run {run.run_id} ({exc}); its "
                f"workers may still finish it: see `chunksum status {run.run_id}` later"
            ) from exc
        await run.backoff.wait(exc)

    async def _check_active(self, run: _Run) -> None:
        """Raise if the run has failed or was cancelled; take it as it is if a worker has
        finished it (its partials may have left the inbox unread: see RunStore.finalise)."""
        stored = await self.runs.read(run.run_id)
        if stored.status == "done":
            run.finalised = stored
            run.pending.clear()
        elif stored.status not in ACTIVE:
            raise RunFailedError(
                f"run {run.run_id} was {stored.status} while waiting: {stored.error}",
                run_id=run.run_id,
            )

    async def _abandon(self, run: _Run, exc: BaseException) -> None:
        cancelled = isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
        status = "cancelled" if cancelled else "failed"
        error = "cancelled by the submitter" if cancelled else str(exc)
        try:
            await self.runs.end(run.run_id, status, error=error)
            await self.runs.remove_jobs(run.run_id, sorted(run.pending))
        except Exception:
            logger.warning("could not mark run %s %s", run.run_id, status, exc_info=True)


async def submit(
    numbers: Numbers,
    *,
    chunks: int | None = None,
    chunk_size: int | None = None,
    timeout: float | None = None,  # noqa: ASYNC109  # the run's own deadline: it cleans up
    redis_url: str | None = None,
    settings: Settings | None = None,
    on_progress: Progress | None = None,
    simulate_io_s: float = 0.0,
) -> RunResult:
    """Sum ``numbers`` exactly on chunksum workers and store the total in Redis.

    Args:
        numbers: ints and/or floats: a list, tuple, range, NumPy array, or any iterable;
            iterables without a length are streamed, never held in memory in full.
        chunks: how many chunks to split a sized input into (balanced sizes).
        chunk_size: how many numbers per chunk; default ``CHUNKSUM_CHUNK_SIZE``.
        timeout: seconds to wait for the whole run; then RunTimeoutError, and the run is
            marked failed and its queued jobs removed. None waits as long as it takes.
        redis_url: overrides ``REDIS_URL``; settings default to ``Settings.from_env()``.
        on_progress: called after each batch of partials arrives.
        simulate_io_s: make each chunk job first await this long (0..60 s), as if it did
            I/O; for benchmarks of how many chunks a worker overlaps. Off by default.
    """
    settings = settings or Settings.from_env()
    if redis_url is not None:
        settings = replace(settings, redis_url=redis_url)
    async with Client(settings) as client:
        return await client.submit(
            numbers,
            chunks=chunks,
            chunk_size=chunk_size,
            timeout=timeout,
            on_progress=on_progress,
            simulate_io_s=simulate_io_s,
        )


def submit_sync(numbers: Numbers, **kwargs: Any) -> RunResult:
    """Run :func:`submit` from synchronous code (it starts and closes its own event loop)."""
    return asyncio.run(submit(numbers, **kwargs))


__all__ = ["Client", "RunResult", "submit", "submit_sync"]
