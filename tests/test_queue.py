"""Tests for app.queue: the chunks' arq job records, against the test Redis server."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
import pytest
from arq.connections import ArqRedis
from arq.jobs import deserialize_job
from redis.asyncio.client import PubSub

from app import codec
from app.errors import ChunkingError
from app.exact import ExactSum
from app.keys import Keys, arq_job_key, job_id
from app.outages import lost_chunks
from app.queue import CLAIM_BATCH, ChunkJob, ChunkQueue
from app.runs import RunStore
from tests.harness import create_run

RUN = "run1"
KEYS = Keys("test")


@pytest.fixture
def queue(redis: ArqRedis) -> ChunkQueue:
    """Return a chunk queue whose job records live a minute."""
    return ChunkQueue(redis, KEYS, job_ttl_s=60, max_chunk_bytes=1 << 20)


async def enqueue(redis: ArqRedis, queue: ChunkQueue, run_id: str, indexes: range) -> None:
    """Enqueue chunks ``indexes`` of a run, each holding its own index."""
    async with redis.pipeline(transaction=False) as pipe:
        for index in indexes:
            queue.add(pipe, run_id, index, {"parts": codec.encode_chunk([index], 0)}, ChunkJob())
        await pipe.execute()


async def test_add_writes_an_arq_job_and_queues_it(queue: ChunkQueue, redis: ArqRedis) -> None:
    """A chunk becomes arq's job record, named by run and index, expiring, on the queue;
    a job of another name carries that job's own arguments too."""
    async with redis.pipeline(transaction=False) as pipe:
        parts = codec.encode_chunk([1, 2], 0)
        queue.add(pipe, RUN, 3, {"parts": parts}, ChunkJob("slow", {"io_s": 0.5}))
        await pipe.execute()
    data = await redis.get(arq_job_key(job_id(RUN, 3)))
    assert data is not None
    job = deserialize_job(data, deserializer=codec.loads)
    assert (job.function, job.kwargs["io_s"], job.kwargs["index"]) == ("slow", 0.5, 3)
    assert codec.sum_parts(job.kwargs["parts"]) == ExactSum.of_ints(np.array([1, 2]))
    assert 0 < await redis.pttl(arq_job_key(job_id(RUN, 3))) <= 60_000
    assert await queue.queued(RUN) == [3]
    assert await queue.depth() == 1


async def test_a_chunk_over_the_size_limit_is_refused(redis: ArqRedis) -> None:
    """An encoded job over max_chunk_bytes raises ChunkingError naming the setting."""
    queue = ChunkQueue(redis, KEYS, job_ttl_s=60, max_chunk_bytes=100)
    with pytest.raises(ChunkingError, match="CHUNKSUM_MAX_CHUNK_BYTES=100"):
        queue.add(
            redis.pipeline(), RUN, 0, {"parts": codec.encode_chunk(list(range(100)), 0)}, ChunkJob()
        )


async def test_remove_takes_only_the_given_chunks(queue: ChunkQueue, redis: ArqRedis) -> None:
    """remove takes the given chunks' jobs off the queue and deletes their job records;
    other runs' jobs stay."""
    await enqueue(redis, queue, RUN, range(3))
    await enqueue(redis, queue, "other", range(1))
    await queue.remove(RUN, [0, 2])
    assert sorted(await redis.zrange(KEYS.queue, 0, -1)) == [b"other:0", b"run1:1"]
    assert await queue.exist(RUN, [0, 1, 2]) == [False, True, False]
    assert await queue.exist("other", [0]) == [True]


async def test_remove_nothing_is_a_no_op(queue: ChunkQueue, redis: ArqRedis) -> None:
    """remove with no indexes touches nothing."""
    await enqueue(redis, queue, RUN, range(1))
    await queue.remove(RUN, [])
    assert await queue.depth() == 1


async def test_remove_queued_empties_a_runs_share_of_the_queue(
    queue: ChunkQueue, redis: ArqRedis
) -> None:
    """remove_queued takes every job of the run off the queue, whatever its index."""
    await enqueue(redis, queue, RUN, range(12))
    await enqueue(redis, queue, "run10", range(2))  # "run1" is a prefix of it: not matched
    assert sorted(await queue.queued(RUN)) == list(range(12))
    await queue.remove_queued(RUN)
    assert await queue.queued(RUN) == []
    assert sorted(await queue.queued("run10")) == [0, 1]


async def test_wake_up_names_the_jobs(queue: ChunkQueue, redis: ArqRedis) -> None:
    """The wake-up published after a batch names its jobs; an empty batch publishes none."""
    async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(KEYS.wake_channel)
        async with redis.pipeline(transaction=False) as pipe:
            queue.add_wake(pipe, RUN, [])
            queue.add_wake(pipe, RUN, [4, 5])
            await pipe.execute()
        async with asyncio.timeout(5):  # the subscription's confirmation comes first
            while (message := await pubsub.get_message(timeout=5)) is None:
                pass
        assert message["data"] == b"run1:4 run1:5"


async def test_lost_chunks_have_neither_job_nor_partial(queue: ChunkQueue, redis: ArqRedis) -> None:
    """After a failover, a chunk with a job (queued or running) or a partial is safe; one
    with neither was lost. A run whose hash is gone lost everything; an ended one, nothing."""
    runs = RunStore(redis, KEYS, ttl_s=None)
    await create_run(runs, RUN, chunks=3)
    await enqueue(redis, queue, RUN, range(1))
    await runs.record(RUN, 1, ExactSum.of_ints(np.array([5])), count=1)

    async def lost(run_id: str, indexes: list[int]) -> list[int]:
        jobs = await queue.exist(run_id, indexes)
        return lost_chunks(indexes, jobs, *await runs.snapshot(run_id, indexes))

    assert await lost(RUN, [0, 1, 2]) == [2]
    assert await lost(RUN, []) == []
    assert await lost("vanished", [0, 1]) == [0, 1]
    await runs.cancel(RUN, "test")
    assert await lost(RUN, [0, 1, 2]) == []


class TestWake:
    """A wake-up for a batch one claim takes goes to one idle worker; a bigger one to all."""

    @contextlib.asynccontextmanager
    async def listen(self, redis: ArqRedis, *workers: str) -> AsyncIterator[PubSub]:
        """Subscribe to the wake channel and the given workers' own channels."""
        async with redis.pubsub() as pubsub:
            await pubsub.subscribe(KEYS.wake_channel, *map(KEYS.worker_wake_channel, workers))
            for _ in range(1 + len(workers)):
                await pubsub.get_message(timeout=5)  # the confirmations
            yield pubsub

    async def heard(self, pubsub: PubSub) -> dict[str, bytes]:
        """Return the messages that reached ``pubsub``, by channel."""
        messages: dict[str, bytes] = {}
        while (message := await pubsub.get_message(timeout=0.2)) is not None:
            messages[message["channel"].decode()] = message["data"]
        return messages

    async def wake(self, redis: ArqRedis, queue: ChunkQueue, indexes: range) -> None:
        """Send the wake-up for chunks ``indexes`` of RUN, as a submitter's pipeline does."""
        async with redis.pipeline(transaction=False) as pipe:
            queue.add_wake(pipe, RUN, list(indexes))
            await pipe.execute()

    async def test_the_worker_idle_last_is_woken_alone(
        self, redis: ArqRedis, queue: ChunkQueue
    ) -> None:
        """Of two idle workers, the one that went idle last hears a small batch, on its own
        channel, and is no longer idle; the other isn't woken."""
        async with self.listen(redis, "first", "last") as pubsub:
            await queue.mark_idle("first")
            await queue.mark_idle("last")
            await self.wake(redis, queue, range(CLAIM_BATCH))
            names = " ".join(job_id(RUN, index) for index in range(CLAIM_BATCH)).encode()
            assert await self.heard(pubsub) == {KEYS.worker_wake_channel("last"): names}
        assert await redis.zrange(KEYS.idle_workers, 0, -1) == [b"first"]

    async def test_workers_gone_are_skipped_then_all_are_woken(
        self, redis: ArqRedis, queue: ChunkQueue
    ) -> None:
        """Idle workers that nobody listens for (gone since) are passed over; with none left,
        the wake-up goes to every worker."""
        async with self.listen(redis) as pubsub:
            await queue.mark_idle("gone")
            await self.wake(redis, queue, range(2))
            assert list(await self.heard(pubsub)) == [KEYS.wake_channel]
        assert await redis.zcard(KEYS.idle_workers) == 0

    async def test_a_bigger_batch_wakes_every_worker(
        self, redis: ArqRedis, queue: ChunkQueue
    ) -> None:
        """More jobs than one claim takes wake every idle worker; none leaves the idle set."""
        async with self.listen(redis, "idle") as pubsub:
            await queue.mark_idle("idle")
            await self.wake(redis, queue, range(CLAIM_BATCH + 1))
            assert list(await self.heard(pubsub)) == [KEYS.wake_channel]
        assert await redis.zrange(KEYS.idle_workers, 0, -1) == [b"idle"]
        await queue.mark_busy("idle")
        assert await redis.zcard(KEYS.idle_workers) == 0
