"""Wake-ups: idle workers wait for a submitter's PUBLISH instead of polling the queue."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from redis.asyncio.client import PubSub

from app.keys import Keys
from app.queue import ChunkQueue
from app.settings import Settings
from app.submit import Client
from app.worker.wakeup import QueueWaker
from tests.harness import eventually, running_worker

LONG_POLL_S = 30.0  # far beyond every test's timeout: only a wake-up can explain prompt pick-up


async def command_calls(redis: ArqRedis, command: str) -> int:
    """Return how many times the server has run ``command`` (INFO commandstats)."""
    stats = await redis.info("commandstats")
    calls: int = stats.get(f"cmdstat_{command}", {}).get("calls", 0)
    return calls


async def subscribers(redis: ArqRedis, channel: str) -> int:
    """Return how many connections subscribe to ``channel``."""
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count)


@contextlib.asynccontextmanager
async def idle_worker(settings: Settings, redis: ArqRedis) -> AsyncIterator[Worker]:
    """Run an in-process worker; enter once it has found the queue empty and waits."""
    before = await command_calls(redis, "zrangebyscore")

    async def has_read_queue() -> bool:
        return await command_calls(redis, "zrangebyscore") > before

    async with running_worker(settings) as worker:
        await eventually(has_read_queue, what="the worker's first queue read")
        yield worker


@pytest.fixture
def keys(settings: Settings) -> Keys:
    """Return the test's key names."""
    return Keys(settings.key_prefix)


@pytest.fixture
def long_poll(settings: Settings) -> Settings:
    """Return the test's settings with a fallback poll longer than any test may take."""
    return replace(settings, worker_poll_s=LONG_POLL_S)


@pytest.fixture
async def waker(redis: ArqRedis, keys: Keys) -> AsyncIterator[QueueWaker]:
    """Start a QueueWaker with a long idle wait on the test's pool; close it afterwards."""
    started = QueueWaker(redis, keys, idle_s=LONG_POLL_S)
    await started.start()
    yield started
    await started.close()


async def read_queue(redis: ArqRedis, keys: Keys) -> list[bytes]:
    """Read the queue as arq's worker loop does."""
    job_ids: list[bytes] = await redis.zrangebyscore(
        keys.queue, min=float("-inf"), max=time.time() * 1000, start=0, num=100
    )
    return job_ids


async def test_idle_worker_with_long_poll_takes_a_new_run_at_once(
    long_poll: Settings, redis: ArqRedis
) -> None:
    """An idle worker picks up a new run on its wake-up, long before its fallback poll."""
    async with idle_worker(long_poll, redis), Client(long_poll) as client:
        result = await client.submit(range(100), chunks=2, timeout=10)
    assert result.total == 4950
    assert result.elapsed_s < 5


async def test_idle_worker_reads_the_queue_once_per_poll(
    settings: Settings, redis: ArqRedis
) -> None:
    """An idle worker reads the queue about once per worker_poll_s, not every loop pass."""
    assert settings.worker_poll_s == 0.2
    async with idle_worker(settings, redis):
        before = await command_calls(redis, "zrangebyscore")
        # not synchronisation: idleness can only be observed over time, so count for 1 s
        await asyncio.sleep(1.0)
        reads = await command_calls(redis, "zrangebyscore") - before
    # 5 expected; arq's 5 ms loop delay without the waker would make it about 200
    assert 1 <= reads <= 10


async def test_close_restores_the_plain_queue_read(redis: ArqRedis, keys: Keys) -> None:
    """QueueWaker wraps the queue read while started; close restores it and unsubscribes."""
    plain = redis.zrangebyscore
    waker = QueueWaker(redis, keys, idle_s=LONG_POLL_S)
    await waker.start()
    assert redis.zrangebyscore != plain
    assert await subscribers(redis, keys.wake_channel) == 1
    await waker.close()
    assert redis.zrangebyscore == plain

    async def unsubscribed() -> bool:
        return await subscribers(redis, keys.wake_channel) == 0

    await eventually(unsubscribed, what="the waker to unsubscribe")


async def test_reads_of_other_keys_pass_through(redis: ArqRedis, waker: QueueWaker) -> None:
    """Sorted-set reads of keys other than the queue return at once, arguments intact."""
    await redis.zadd("other", {"a": 1, "b": 2})
    async with asyncio.timeout(2):
        assert await redis.zrangebyscore("other", 0, 10) == [b"a", b"b"]
        assert await redis.zrangebyscore("other", 2, 10, withscores=True) == [(b"b", 2.0)]
        assert await redis.zrangebyscore("empty", 0, 10) == []


async def test_new_job_ids_are_returned_at_once(
    redis: ArqRedis, keys: Keys, waker: QueueWaker
) -> None:
    """A queue read that finds job ids it hasn't returned before returns them immediately."""
    async with asyncio.timeout(2):
        await redis.zadd(keys.queue, {"job-1": 1})
        assert await read_queue(redis, keys) == [b"job-1"]
        await redis.zadd(keys.queue, {"job-2": 2})
        assert sorted(await read_queue(redis, keys)) == [b"job-1", b"job-2"]


async def waiting_read(redis: ArqRedis, keys: Keys) -> asyncio.Task[list[bytes]]:
    """Start a queue read; return once it has read the queue and waits for a wake-up."""
    before = await command_calls(redis, "zrangebyscore")
    reading = asyncio.create_task(read_queue(redis, keys))

    async def has_read() -> bool:
        return await command_calls(redis, "zrangebyscore") > before

    await eventually(has_read, what="the queue read")
    return reading


async def test_read_with_nothing_new_waits_for_a_wake_up(
    redis: ArqRedis, keys: Keys, waker: QueueWaker
) -> None:
    """A queue read with nothing new waits, and a PUBLISH on the wake channel ends the wait
    with the jobs it names."""
    await redis.zadd(keys.queue, {"job-1": 1})
    assert await read_queue(redis, keys) == [b"job-1"]
    reading = await waiting_read(redis, keys)  # job-1 again: nothing new
    async with redis.pipeline(transaction=False) as pipe:  # as the client enqueues
        pipe.zadd(keys.queue, {"job-2": 2, "job-3": 3})
        pipe.publish(keys.wake_channel, "job-2 job-3")
        await pipe.execute()
    assert sorted(await asyncio.wait_for(reading, 2)) == [b"job-2", b"job-3"]


async def test_wake_up_hands_over_its_jobs_without_a_queue_read(
    redis: ArqRedis, keys: Keys, waker: QueueWaker
) -> None:
    """The jobs a wake-up names are returned as they are: the queue is not read again
    (arq's claim checks each job against the queue)."""
    reading = await waiting_read(redis, keys)  # an empty queue: waits
    reads = await command_calls(redis, "zrangebyscore")
    await redis.publish(keys.wake_channel, "named-1 named-2")  # not in the queue at all
    assert sorted(await asyncio.wait_for(reading, 2)) == [b"named-1", b"named-2"]
    assert await command_calls(redis, "zrangebyscore") == reads


async def test_wake_up_without_names_reads_the_queue(
    redis: ArqRedis, keys: Keys, waker: QueueWaker
) -> None:
    """A wake-up that names no jobs (e.g. a resubscription) makes the waiting read read again."""
    reading = await waiting_read(redis, keys)
    await redis.zadd(keys.queue, {"job-1": 1})
    await redis.publish(keys.wake_channel, "")
    assert await asyncio.wait_for(reading, 2) == [b"job-1"]


async def test_read_with_nothing_new_falls_back_after_idle_s(redis: ArqRedis, keys: Keys) -> None:
    """Without a wake-up, a read of an empty queue returns nothing after idle_s, not at once."""
    waker = QueueWaker(redis, keys, idle_s=0.3)
    await waker.start()
    try:
        started = time.monotonic()
        assert await asyncio.wait_for(read_queue(redis, keys), 2) == []
        assert time.monotonic() - started >= 0.25
    finally:
        await waker.close()


@pytest.mark.timeout(60)
async def test_wake_ups_survive_a_dropped_connection(
    long_poll: Settings, redis: ArqRedis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """After its pub/sub connection is killed the listener resubscribes and wake-ups still work."""

    async def resubscribed() -> bool:
        return await subscribers(redis, keys.wake_channel) == 1

    async with idle_worker(long_poll, redis), Client(long_poll) as client:
        assert await redis.client_kill_filter(_type="pubsub") >= 1  # CLIENT KILL TYPE pubsub
        # submitted at once: its wake-up may go out while the listener is reconnecting
        assert (await client.submit(range(10), chunks=2, timeout=10)).total == 45
        await eventually(resubscribed, what="the listener to resubscribe")
        # now only the resubscribed listener can wake the worker within the timeout
        assert (await client.submit(range(100), chunks=2, timeout=10)).total == 4950
    assert any(
        record.levelno == logging.WARNING and record.getMessage().startswith("wake-up channel")
        for record in caplog.records
    )


async def test_job_published_while_reconnecting_is_not_missed(
    redis: ArqRedis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job whose wake-up is lost while the listener reconnects is read once it resubscribes."""
    reconnecting, reconnect = asyncio.Event(), asyncio.Event()
    resubscribe = PubSub.on_connect

    async def gated_resubscribe(pubsub: PubSub, connection: Any) -> None:
        reconnecting.set()
        await reconnect.wait()
        await resubscribe(pubsub, connection)

    # before start(): redis-py registers the resubscribe callback when it first connects
    monkeypatch.setattr(PubSub, "on_connect", gated_resubscribe)
    waker = QueueWaker(redis, keys, idle_s=LONG_POLL_S)
    await waker.start()
    try:

        async def worker_loop() -> list[bytes]:
            while not (job_ids := await read_queue(redis, keys)):
                pass
            return job_ids

        reading = asyncio.create_task(worker_loop())
        assert await redis.client_kill_filter(_type="pubsub") >= 1
        await asyncio.wait_for(reconnecting.wait(), 5)
        async with redis.pipeline(transaction=False) as pipe:  # its wake-up goes nowhere
            pipe.zadd(keys.queue, {"job-1": 1})
            pipe.publish(keys.wake_channel, "run")
            assert (await pipe.execute())[1] == 0
        reconnect.set()
        assert await asyncio.wait_for(reading, 5) == [b"job-1"]
    finally:
        reconnect.set()
        await waker.close()


async def test_new_ids_come_back_rotated(redis: ArqRedis, keys: Keys, waker: QueueWaker) -> None:
    """New ids come back in queue order from a random start, so woken workers don't collide."""
    ids = [f"job-{i}".encode() for i in range(8)]
    await redis.zadd(keys.queue, {job: 1 for job in ids})
    got = await read_queue(redis, keys)
    start = ids.index(got[0])
    assert got == ids[start:] + ids[:start]


class TestIdleWorkers:
    """A waiting worker joins the idle workers once, and leaves them when it has work."""

    @pytest.fixture
    async def idle_waker(self, redis: ArqRedis, keys: Keys) -> AsyncIterator[QueueWaker]:
        """Start a QueueWaker that joins the idle workers as ``me``; close it afterwards."""
        queue = ChunkQueue(redis, keys, job_ttl_s=60, max_chunk_bytes=1 << 20)
        started = QueueWaker(redis, keys, idle_s=0.2, queue=queue, worker_id="me")
        await started.start()
        yield started
        await started.close()

    async def idle(self, redis: ArqRedis, keys: Keys) -> list[bytes]:
        """Return the idle workers' ids."""
        members: list[bytes] = await redis.zrange(keys.idle_workers, 0, -1)
        return members

    async def joined(self, redis: ArqRedis, keys: Keys) -> None:
        """Wait until ``me`` is among the idle workers."""

        async def probe() -> bool:
            return await self.idle(redis, keys) == [b"me"]

        await eventually(probe, what="the worker to join the idle workers")

    async def test_a_waiting_worker_joins_once_per_spell(
        self, redis: ArqRedis, keys: Keys, idle_waker: QueueWaker
    ) -> None:
        """Waiting, the worker joins the idle workers with one command, not one per poll."""
        before = await command_calls(redis, "zadd")
        for _ in range(3):  # three polls of an empty queue, 0.2 s each
            assert await asyncio.wait_for(read_queue(redis, keys), 2) == []
        assert await command_calls(redis, "zadd") == before + 1
        assert await self.idle(redis, keys) == [b"me"]

    async def test_a_wake_up_for_it_alone_hands_over_its_jobs(
        self, redis: ArqRedis, keys: Keys, idle_waker: QueueWaker
    ) -> None:
        """A submitter's wake-up for a few jobs reaches the waiting worker on its own channel,
        takes it out of the idle workers, and the worker has nothing more to remove."""
        reading = asyncio.create_task(read_queue(redis, keys))
        await self.joined(redis, keys)
        removals = await command_calls(redis, "zrem")
        queue = ChunkQueue(redis, keys, job_ttl_s=60, max_chunk_bytes=1 << 20)
        async with redis.pipeline(transaction=False) as pipe:
            queue.add_wake(pipe, "run", [0, 1])
            assert await pipe.execute() == [1]  # one worker heard it
        assert sorted(await asyncio.wait_for(reading, 2)) == [b"run:0", b"run:1"]
        assert await self.idle(redis, keys) == []
        assert await command_calls(redis, "zrem") == removals

    async def test_a_worker_woken_with_the_others_leaves_the_idle_workers(
        self, redis: ArqRedis, keys: Keys, idle_waker: QueueWaker
    ) -> None:
        """Woken by a wake-up to all, the worker leaves the idle workers itself, so that no
        submitter picks it while it works; closing, it leaves them too."""
        reading = asyncio.create_task(read_queue(redis, keys))
        await self.joined(redis, keys)
        await redis.publish(keys.wake_channel, "job-1")
        assert await asyncio.wait_for(reading, 2) == [b"job-1"]

        async def left() -> bool:
            return await self.idle(redis, keys) == []

        await eventually(left, what="the worker to leave the idle workers")
        assert await asyncio.wait_for(read_queue(redis, keys), 2) == []  # waits again: joins
        await idle_waker.close()
        assert await self.idle(redis, keys) == []
