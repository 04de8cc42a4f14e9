"""Wake idle arq workers the moment jobs are enqueued, instead of polling every 0.5 s.

arq's worker loop reads the queue (``ZRANGEBYSCORE``) and then sleeps ``poll_delay``. A
short delay means prompt pick-up but hundreds of Redis commands per second per idle
worker; a long one means latency. chunksum gets both: submitters ``PUBLISH`` on
``<prefix>:wake`` after each enqueue, naming the jobs, and each worker's queue read, when
it finds nothing new, waits for that message (or ``worker_poll_s``, a fallback for delayed
retries and expired leases), then hands arq the named jobs without reading the queue. An
idle worker costs one queue read per ``worker_poll_s`` and starts claiming a new job as
soon as the message arrives.

A batch of jobs that one claim takes (``CLAIM_BATCH``) wakes one worker, not all: a worker
joins the idle workers (``<prefix>:idle``) once as it starts to wait, and the submitter's
wake-up goes to the one that went idle last, on that worker's own channel (app.queue).
Woken workers that found nothing to claim cost the busy ones CPU, on a machine of few cores.

arq's worker can't be subclassed from its CLI (``arq app.worker.WorkerSettings``), so the
waker wraps the queue read of the worker's own Redis client in ``on_startup``.
"""

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

from arq.connections import ArqRedis

from app.connection import LOST_REDIS, REDIS_FAULTS, Backoff
from app.keys import Keys
from app.queue import ChunkQueue


class QueueWaker:
    """Make a worker's idle queue reads wait for a submitter's wake-up message."""

    def __init__(
        self,
        redis: ArqRedis,
        keys: Keys,
        *,
        idle_s: float,
        on_run_ended: Callable[[str, str], None] | None = None,
        queue: ChunkQueue | None = None,
        worker_id: str | None = None,
    ) -> None:
        """
        Args:
            on_run_ended: called with (run id, status) as each run ends (on the same
                subscription: see Keys.ends_channel).
            queue, worker_id: given both, the worker joins the idle workers as it waits, and
                hears the wake-ups meant for it alone (see ChunkQueue.add_wake).
        """
        self.redis = redis
        self.keys = keys
        self.idle_s = idle_s
        self.on_run_ended = on_run_ended
        self._queue = queue if worker_id is not None else None
        self._worker_id = worker_id or ""
        self._own_channel = keys.worker_wake_channel(self._worker_id).encode()
        self._idle = False  # among the idle workers, as far as this worker knows
        self._picked = False  # a submitter took it out of them to wake it alone
        self._leaving: set[asyncio.Task[None]] = set()  # its ways out of them, under way
        self._ends_channel = keys.ends_channel.encode()
        self._read = redis.zrangebyscore
        self._woken = asyncio.Event()
        self._last: list[bytes] = []
        self._announced: list[bytes] = []  # job ids named by wake-ups since the last read
        self._backoff = Backoff("queue read")
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe to wake-ups and wrap the worker's queue read."""
        pubsub = self.redis.pubsub()  # with subscribe confirmations: see _listen
        channels = [self.keys.wake_channel]
        if self._queue is not None:
            channels.append(self.keys.worker_wake_channel(self._worker_id))
        if self.on_run_ended is not None:
            channels.append(self.keys.ends_channel)
        await pubsub.subscribe(*channels)
        for _ in channels:  # the confirmations; a resubscription's wake the reads (_listen)
            await pubsub.get_message(timeout=None)
        self._listener = asyncio.create_task(self._listen(pubsub), name="chunksum-wakeup")
        self.redis.zrangebyscore = self._read_queue  # type: ignore[method-assign,assignment]  # see module doc

    async def close(self) -> None:
        """Stop listening and restore the plain queue read."""
        self.redis.zrangebyscore = self._read  # type: ignore[method-assign]  # see module doc
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await asyncio.gather(*self._leaving, return_exceptions=True)
        if self._idle and self._queue is not None:
            with contextlib.suppress(*REDIS_FAULTS):  # if Redis is away, a wake-up finds it gone
                await self._queue.mark_busy(self._worker_id)

    async def _read_queue(self, name: str, *args: Any, **kwargs: Any) -> list[bytes]:
        if name != self.keys.queue:
            other: list[bytes] = await self._read(name, *args, **kwargs)
            return other
        # cleared before the read, so a wake-up during it is not lost; the read itself sees
        # every job announced so far
        self._woken.clear()
        self._announced.clear()
        job_ids = await self._read_or_back_off(name, *args, **kwargs)
        if job_ids and job_ids != self._last:
            self._last = job_ids
            self._leave_idle()
            return _rotated(job_ids)
        # nothing new (empty, or the same ids still running elsewhere): wait for a wake-up
        await self._join_idle()
        try:
            await asyncio.wait_for(self._woken.wait(), self.idle_s)
        except TimeoutError:
            return job_ids
        self._leave_idle()
        # the wake-up names its jobs: no need to read them (arq's claim checks each one)
        self._last = self._announced[:] or await self._read_or_back_off(name, *args, **kwargs)
        return _rotated(self._last)

    async def _join_idle(self) -> None:
        """Join the idle workers, once per spell of waiting (see ChunkQueue.add_wake)."""
        if self._idle or self._queue is None:
            return
        await asyncio.gather(*self._leaving, return_exceptions=True)  # not after it joins
        self._picked = False
        with contextlib.suppress(*REDIS_FAULTS):  # then only wake-ups to all reach it
            await self._queue.mark_idle(self._worker_id)
            self._idle = True

    def _leave_idle(self) -> None:
        """Leave the idle workers, in the background, unless a submitter took it out."""
        if not self._idle or self._queue is None:
            return
        self._idle = False
        if not self._picked:
            leaving = asyncio.create_task(self._mark_busy(self._queue))
            self._leaving.add(leaving)
            leaving.add_done_callback(self._leaving.discard)

    async def _mark_busy(self, queue: ChunkQueue) -> None:
        with contextlib.suppress(*REDIS_FAULTS):  # a wake-up meant for it alone then finds it
            await queue.mark_busy(self._worker_id)  # busy, and the others' next read finds its jobs

    async def _read_or_back_off(self, name: str, *args: Any, **kwargs: Any) -> list[bytes]:
        """Read the queue; while Redis is unreachable, wait (backing off) and read nothing.

        arq's loop dies on any error from its queue read; a Redis restart must not kill
        idle workers, so the read waits out the outage instead.
        """
        try:
            job_ids: list[bytes] = await self._read(name, *args, **kwargs)
        except LOST_REDIS as exc:
            await self._backoff.wait(exc)
            return []
        self._backoff.reset()
        return job_ids

    async def _listen(self, pubsub: Any) -> None:
        backoff = Backoff("wake-up channel")
        async with pubsub:
            while True:
                try:
                    message = await pubsub.get_message(timeout=None)
                    backoff.reset()
                except LOST_REDIS as exc:
                    # redis-py resubscribes on the next read; meanwhile the fallback poll runs
                    await backoff.wait(exc)
                    continue
                # a wake-up, or a (re)subscription confirmed: wake-ups published while the
                # channel was down were lost, so read the queue again only now, when no later
                # one can be lost (waking before resubscribing would miss those in between)
                if message is None:
                    continue
                if message["channel"] == self._ends_channel:
                    if message["type"] == "message" and self.on_run_ended is not None:
                        run_id, _, status = message["data"].decode().partition(" ")
                        self.on_run_ended(run_id, status)
                    continue
                if message["type"] == "message":
                    self._announced.extend(message["data"].split())
                    self._picked |= message["channel"] == self._own_channel
                self._woken.set()


def _rotated(job_ids: list[bytes]) -> list[bytes]:
    """Return the ids starting at a random one, keeping their order after it.

    Workers woken together read the same ids; trying them from the same end, they would
    race for each job in turn (arq claims one job per round trip). Starting at different
    places, each claims different jobs at once.
    """
    if not job_ids:
        return job_ids
    start = random.randrange(len(job_ids))
    return job_ids[start:] + job_ids[:start]
