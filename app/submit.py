"""Submit numbers and ask about runs: :func:`submit`, :func:`submit_sync` and :class:`Client`.

A :class:`Client` holds one connection to a deployment (a Redis and a key prefix). Its
``submit`` hands each run to an :class:`app.submission.Submission`; its other methods are
what an operator asks: a run's status, its result, waiting for it, cancelling it, the
recent runs, the live workers and the queue's depth.
"""

import time
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

from arq.connections import ArqRedis

from app import interrupts
from app.chunking import Numbers
from app.connection import LOST_REDIS, Backoff, close, connect, redis_name
from app.errors import (
    ChunksumError,
    RedisUnavailableError,
    RunFailedError,
    RunNotDoneError,
    RunNotFoundError,
    WaitTimeoutError,
)
from app.eviction import check_eviction
from app.exact import Total
from app.faults import describe
from app.heartbeat import WorkerInfo, live_workers
from app.keys import Keys
from app.outages import run_lost
from app.queue import ChunkQueue
from app.run_status import EndResult, RunStatus, Status
from app.runs import RunStore
from app.settings import Settings
from app.sources import Input
from app.submission import WAIT_SLICE_S, Progress, RunResult, Submission

NOT_OPEN = "the Client is not open: use `async with Client(settings) as client:`"


class Client:
    """A connection to one chunksum deployment; reuse it for many submits."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._redis: ArqRedis | None = None
        self._runs: RunStore | None = None
        self._queue: ChunkQueue | None = None
        self._active: set[str] = set()  # runs this client has seen active: gone means lost

    async def __aenter__(self) -> Self:
        self._redis = redis = await connect(self.settings)
        try:
            await check_eviction(
                redis, name=redis_name(self.settings), allow=self.settings.allow_eviction
            )
        except BaseException:
            await close(redis)
            raise
        self._runs = RunStore.for_settings(redis, self.settings)
        self._queue = ChunkQueue.for_settings(redis, self.settings)
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
            raise ChunksumError(NOT_OPEN)
        return self._redis

    @property
    def runs(self) -> RunStore:
        """Return the run store."""
        if self._runs is None:
            raise ChunksumError(NOT_OPEN)
        return self._runs

    @property
    def queue(self) -> ChunkQueue:
        """Return the chunk queue."""
        if self._queue is None:
            raise ChunksumError(NOT_OPEN)
        return self._queue

    async def submit(
        self,
        numbers: Input,
        *,
        chunks: int | None = None,
        chunk_size: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # the run's own deadline: it cleans up
        on_progress: Progress | None = None,
        decimal: bool = False,
    ) -> RunResult:
        """Sum ``numbers`` on the workers and store the total in Redis; see :func:`submit`."""
        submission = Submission(
            self.queue,
            self.runs,
            self.settings,
            numbers,
            chunks=chunks,
            chunk_size=chunk_size,
            timeout=timeout,
            on_progress=on_progress,
            decimal=decimal,
        )
        return await submission.run()

    async def recent_runs(self, limit: int = 20) -> list[RunStatus]:
        """Return up to ``limit`` runs still retained in Redis, newest first."""
        return await self.runs.recent(limit)

    async def workers(self) -> list[WorkerInfo]:
        """Return the live workers of this deployment (those with a fresh heartbeat)."""
        return await live_workers(self.redis, self.keys)

    async def queue_depth(self) -> int:
        """Return how many chunk jobs are queued or running, across every run."""
        return await self.queue.depth()

    async def status(self, run_id: str) -> RunStatus:
        """Return a run's stored state; raise RunNotFoundError for an unknown id, and
        RunLostError for a run whose state Redis lost (seen active by this client, or with
        some of its keys left: evicted, or a restart without persistence).

        A run still being enqueued whose submitter's lease has lapsed is abandoned first (a
        worker recording a partial does the same): its submitter is gone.
        """
        if await self.runs.abandon(run_id) is EndResult.ENDED:
            await self.queue.remove_queued(run_id)
        try:
            run = await self.runs.read(run_id)
        except RunNotFoundError:
            # a run seen active, or with keys left, existed: its state was lost, not mistyped
            if run_id in self._active or await self.runs.has_traces(run_id):
                self._active.discard(run_id)
                raise run_lost(run_id) from None
            raise
        if run.status.active:
            self._active.add(run_id)
        else:
            self._active.discard(run_id)
        return run

    async def cancel(self, run_id: str) -> RunStatus:
        """Cancel a run: queued chunks are removed, running ones are ignored, its submitter
        gets RunFailedError at once. Cancelling an ended run changes nothing."""
        if await self.runs.cancel(run_id, "cancelled with `chunksum cancel`") is EndResult.ENDED:
            await self.queue.remove_queued(run_id)
        return await self.runs.read(run_id)

    async def wait(self, run_id: str, timeout: float | None = None) -> RunStatus:  # noqa: ASYNC109
        """Wait until a run ends (done, failed or cancelled) and return it.

        Rides out a Redis outage (a restart, a Sentinel failover) of up to CHUNKSUM_OUTAGE_S.

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
                if backoff.failing_for_s() > self.settings.outage_s:
                    raise RedisUnavailableError(
                        f"lost Redis at {redis_name(self.settings)} for over "
                        f"{self.settings.outage_s:g} s (CHUNKSUM_OUTAGE_S) while waiting for run "
                        f"{run_id} ({describe(exc)}); the run goes on: wait again later"
                    ) from exc
                await backoff.wait(exc)

    async def _wait(
        self, run_id: str, deadline: float | None, timeout_s: float | None, backoff: Backoff
    ) -> RunStatus:
        async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.keys.ended_channel(run_id))  # before reading: no race
            while (run := await self.status(run_id)).status.active:
                backoff.reset()
                wait_s = WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
                if wait_s <= 0:
                    raise WaitTimeoutError(
                        f"run {run_id} is still {run.status} ({run.done_chunks} of "
                        f"{run.chunks or '?'} chunks done) after {timeout_s} s; wait longer"
                    )
                await pubsub.get_message(timeout=min(wait_s, WAIT_SLICE_S))
        return run

    async def result(self, run_id: str) -> Total:
        """Return a finished run's total; raise RunFailedError or RunNotDoneError otherwise."""
        run = await self.status(run_id)
        if run.status is Status.DONE and run.total is not None:
            return run.total
        if not run.status.active:
            raise RunFailedError(f"run {run_id} {run.status}: {run.error}", run_id=run_id)
        raise RunNotDoneError(
            f"run {run_id} is {run.status} ({run.done_chunks} of {run.chunks or '?'} chunks done); "
            "try again later"
        )


async def submit(
    numbers: Input,
    *,
    chunks: int | None = None,
    chunk_size: int | None = None,
    timeout: float | None = None,  # noqa: ASYNC109  # the run's own deadline: it cleans up
    redis_url: str | None = None,
    settings: Settings | None = None,
    on_progress: Progress | None = None,
    decimal: bool = False,
) -> RunResult:
    """Sum ``numbers`` exactly on chunksum workers and store the total in Redis.

    Args:
        numbers: ints and/or floats: a list, tuple, range, NumPy array, or any iterable;
            iterables without a length are streamed, never held in memory in full. Or a
            ``TextFile``: a file the workers read themselves, in byte ranges (or, with
            ``shared=False``, that this process ships them unparsed); or a ``TextStream``.
        chunks: how many chunks to split a sized input (or a file) into (balanced sizes).
        chunk_size: how many numbers per chunk; default ``CHUNKSUM_CHUNK_SIZE``.
        timeout: seconds to wait for the whole run; then RunTimeoutError, and the run is
            marked failed and its queued jobs removed. None waits as long as it takes.
        redis_url: overrides ``REDIS_URL``; settings default to ``Settings.from_env()``.
        on_progress: called after each batch of partials arrives.
        decimal: sum text (a ``TextFile``, ``TextStream`` or ``CsvColumn``) as exact
            decimals (``0.1 + 0.2 == Decimal("0.3")``); the total is then a ``Decimal``.
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
            decimal=decimal,
        )


def submit_sync(numbers: Numbers, **kwargs: Any) -> RunResult:
    """Run :func:`submit` from synchronous code (it starts and closes its own event loop)."""
    return interrupts.run(submit(numbers, **kwargs))


__all__ = ["Client", "RunResult", "submit", "submit_sync"]
