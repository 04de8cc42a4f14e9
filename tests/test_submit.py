"""End-to-end submits against a real Redis and a real (in-process) arq worker."""

import asyncio
import contextlib
import math
import random
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from arq.connections import ArqRedis
from arq.worker import Worker

from app import (
    ChunkingError,
    Client,
    InvalidNumberError,
    RedisUnavailableError,
    RunFailedError,
    RunTimeoutError,
    Settings,
    WaitTimeoutError,
    submit,
    submit_sync,
)
from app.bench.slow_chunks import submit_slow
from app.keys import Keys, arq_job_key, job_id
from app.redis_server import RedisServer
from tests.harness import (
    ROOT,
    eventually,
    expire_together,
    free_port,
    process_env,
    queue_holds,
    read_hash,
    run_ids,
    running_worker,
    worker_command,
    worker_process,
)


async def run_keys(redis: ArqRedis, settings: Settings) -> list[str]:
    """Return the test prefix's keys and arq job keys, but the deployment's own: arq's
    health check, the runs index, worker heartbeats, and the idle workers."""
    keys = Keys(settings.key_prefix)
    found = await redis.keys(f"{settings.key_prefix}:*") + await redis.keys("arq:job:*")
    return sorted(
        key
        for key in (k.decode() for k in found)
        if not key.endswith(":health-check")
        and key not in (keys.runs, keys.workers, keys.idle_workers)
        and not key.startswith(keys.worker(""))
    )


async def settled_keys(redis: ArqRedis, settings: Settings, expected: list[str]) -> list[str]:
    """Return :func:`run_keys` once it is ``expected``, or after 5 s.

    A submit returns as soon as the last partial is in; the worker's arq then deletes that
    job's keys a moment later.
    """

    async def settled() -> bool:
        return await run_keys(redis, settings) == expected

    with contextlib.suppress(AssertionError):  # the caller's assert shows the keys left
        await eventually(settled, what=f"the keys to be {expected}")
    return await run_keys(redis, settings)


async def test_classic_example_stores_the_total(
    client: Client, redis: ArqRedis, worker: Worker
) -> None:
    """1..10000 in four chunks sums to 50005000, stored in the run hash with its counts."""
    result = await client.submit(range(1, 10_001), chunks=4, timeout=30)
    assert (result.total, result.count, result.chunks) == (50_005_000, 10_000, 4)
    stored = await read_hash(redis, client.keys.run(result.run_id))
    assert stored[b"total"] == b"50005000"
    assert stored[b"total_type"] == b"int"
    assert (stored[b"status"], stored[b"done_chunks"], stored[b"chunks"]) == (b"done", b"4", b"4")
    assert float(stored[b"finished_at"]) >= float(stored[b"created_at"])


async def test_nothing_but_the_run_hash_is_left(
    client: Client, redis: ArqRedis, worker: Worker, settings: Settings
) -> None:
    """After a run only its hash and its timeline remain, expiring together: no partials,
    inbox or arq job keys."""
    result = await client.submit(list(range(1000)), chunks=10, timeout=30)
    run, timeline = client.keys.run(result.run_id), client.keys.timeline(result.run_id)
    expected = sorted([run, timeline])
    assert await settled_keys(redis, settings, expected) == expected
    assert await expire_together(redis, run, timeline)


async def test_float_total_is_the_correctly_rounded_exact_sum(
    client: Client, worker: Worker
) -> None:
    """Floats spanning many magnitudes sum to math.fsum's value, whatever the chunking."""
    rng = random.Random(7)
    values = [rng.uniform(-1, 1) * 10.0 ** rng.randint(-20, 20) for _ in range(5000)]
    values += [1e20, 1.0, -1e20]
    for chunks in (1, 7, 64):
        result = await client.submit(values, chunks=chunks, timeout=30)
        assert result.total == math.fsum(values)


async def test_stored_float_total_round_trips(client: Client, worker: Worker) -> None:
    """The stored float text parses back to exactly the returned total."""
    result = await client.submit([0.1] * 10, chunks=3, timeout=30)
    assert result.total == math.fsum([0.1] * 10)
    assert await client.result(result.run_id) == result.total


async def test_huge_and_negative_ints_are_exact(client: Client, worker: Worker) -> None:
    """Ints beyond 64 bits and negatives sum exactly."""
    values = [2**200, -(2**64), 3, -5, 2**63 - 1, -(2**63)] * 50
    result = await client.submit(values, chunks=9, timeout=30)
    assert result.total == sum(values)
    assert isinstance(result.total, int)


async def test_mixed_ints_and_floats_give_a_float(client: Client, worker: Worker) -> None:
    """Mixing ints and floats gives a float, as Python's sum does, rounded once."""
    values: list[int | float] = [2**60 + 1, 0.5, -(2**60)]
    result = await client.submit(values, chunks=3, timeout=30)
    assert result.total == 1.5
    assert isinstance(result.total, float)


async def test_numpy_arrays(client: Client, worker: Worker) -> None:
    """int64 and float64 NumPy arrays sum exactly, even where numpy.sum overflows."""
    ints = np.full(1000, 2**62, dtype=np.int64)
    assert (await client.submit(ints, chunks=4, timeout=30)).total == 1000 * 2**62
    floats = np.linspace(-1, 1, 10_001) ** 3
    result = await client.submit(floats, chunk_size=999, timeout=30)
    assert result.total == math.fsum(floats.tolist())


async def test_special_floats_follow_ieee(client: Client, worker: Worker) -> None:
    """NaN, infinities and inf - inf give IEEE results."""
    assert (await client.submit([1.0, math.inf], timeout=30)).total == math.inf
    assert math.isnan((await client.submit([math.inf, 1, -math.inf], chunks=3, timeout=30)).total)
    assert math.isnan((await client.submit([math.nan, 2.0], timeout=30)).total)


async def test_empty_input_is_a_finished_run(client: Client, redis: ArqRedis) -> None:
    """Empty input gives total 0 and a stored, done run, with no worker needed."""
    result = await client.submit([], chunks=4, timeout=5)
    assert (result.total, result.count, result.chunks) == (0, 0, 0)
    status = await client.status(result.run_id)
    assert (status.status, status.total) == ("done", 0)


async def test_generator_is_streamed_with_backpressure(
    settings: Settings, redis: ArqRedis, worker: Worker
) -> None:
    """A generator is read only a bounded number of chunks ahead of the finished ones."""
    settings = replace(settings, max_in_flight=2)
    consumed = 0
    ahead: list[int] = []

    def numbers() -> Iterator[int]:
        nonlocal consumed
        for n in range(5000):
            consumed += 1
            yield n

    def on_progress(done: int, total: int | None) -> None:
        ahead.append(consumed - done * 100)

    async with Client(settings) as client:
        result = await client.submit(numbers(), chunk_size=100, timeout=30, on_progress=on_progress)
    assert result.total == sum(range(5000))
    assert result.chunks == 50
    assert max(ahead) <= (2 + 2) * 100  # in flight, plus the chunk read ahead to balance the end


async def test_timeout_without_workers_cleans_up(
    client: Client, redis: ArqRedis, settings: Settings
) -> None:
    """With no worker, the caller gets RunTimeoutError; the run is failed, its jobs removed."""
    with pytest.raises(RunTimeoutError, match="chunksum worker") as caught:
        await client.submit(range(100), chunks=5, timeout=0.3)
    run_id = caught.value.run_id
    status = await client.status(run_id)
    assert status.status == "failed"
    assert status.total is None
    assert await run_keys(redis, settings) == [client.keys.run(run_id)]


async def test_bad_item_late_in_a_stream_fails_the_run(
    client: Client, redis: ArqRedis, worker: Worker, settings: Settings
) -> None:
    """A non-number deep in a generator, past the first jobs sent, fails the run with its
    position; no total is written."""
    late = settings.max_in_flight * 100 + 50  # in the second batch of 100-number chunks

    def numbers() -> Iterator[object]:
        yield from range(late)
        yield "oops"

    with pytest.raises(InvalidNumberError, match=f"item {late}") as caught:
        await client.submit(numbers(), chunk_size=100, timeout=30)
    assert caught.value.position == late
    runs = await redis.keys(client.keys.run("*"))
    assert len(runs) == 1
    stored = await read_hash(redis, runs[0].decode())
    assert stored[b"status"] == b"failed"
    assert f"item {late}".encode() in stored[b"error"]
    assert b"total" not in stored
    (run,) = await client.recent_runs(1)
    expected = sorted([client.keys.run(run.run_id), client.keys.timeline(run.run_id)])
    assert await settled_keys(redis, settings, expected) == expected


async def test_bad_item_in_the_first_batch_writes_nothing(
    client: Client, redis: ArqRedis, settings: Settings
) -> None:
    """A non-number found before any job was sent leaves nothing at all in Redis."""

    def numbers() -> Iterator[object]:
        yield from range(1000)
        yield "oops"

    with pytest.raises(InvalidNumberError, match="item 1000"):
        await client.submit(numbers(), chunk_size=100, timeout=30)
    assert await run_keys(redis, settings) == []


@pytest.mark.parametrize(
    ("numbers", "options", "error"),
    [
        (["1", 2], {}, InvalidNumberError),
        ([1, None], {}, InvalidNumberError),
        ([[1, 2], 3], {}, InvalidNumberError),
        ("123", {}, TypeError),
        ({"a": 1}, {}, TypeError),
        ([1, 2], {"chunks": 0}, ChunkingError),
        ([1, 2], {"chunk_size": -1}, ChunkingError),
        ([1, 2], {"chunks": 1, "chunk_size": 1}, ChunkingError),
    ],
)
async def test_bad_input_enqueues_nothing(
    client: Client,
    redis: ArqRedis,
    settings: Settings,
    numbers: object,
    options: dict[str, int],
    error: type[Exception],
) -> None:
    """Bad numbers or chunk options raise a specific error and leave no job in Redis."""
    with pytest.raises(error):
        await client.submit(numbers, timeout=5, **options)  # type: ignore[arg-type]
    assert await redis.zcard(client.keys.queue) == 0
    assert await redis.keys("arq:job:*") == []


async def test_unreachable_redis_is_a_clear_error() -> None:
    """A Redis that isn't there raises RedisUnavailableError naming the URL, at once."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisUnavailableError, match=f"cannot reach Redis at {url}"):
        await submit([1, 2], redis_url=url, settings=Settings())


async def test_password_and_acl_user_in_the_url(settings: Settings) -> None:
    """A password-protected Redis works with the right credentials and refuses wrong ones."""
    acl = ("--user", "default", "off", "--user", "alice", "on", ">s3cret", "~*", "&*", "+@all")
    with RedisServer(port=None, extra_args=acl) as server:
        socket_path = server.socket_path
        wrong = replace(settings, redis_url=f"unix://alice:nope@{socket_path}")
        with pytest.raises(RedisUnavailableError, match="refused the credentials"):
            await submit([1], settings=wrong)
        right = replace(settings, redis_url=f"unix://alice:s3cret@{socket_path}")
        async with running_worker(right):
            result = await submit(range(10), chunks=2, settings=right, timeout=30)
    assert result.total == 45
    assert "s3cret" not in repr(right)


async def test_key_prefixes_keep_deployments_apart(settings: Settings, redis: ArqRedis) -> None:
    """A worker of one key prefix never takes another prefix's jobs."""
    other = replace(settings, key_prefix=settings.key_prefix + "-other")
    async with running_worker(settings):
        with pytest.raises(RunTimeoutError):
            await submit([1, 2, 3], settings=other, timeout=0.5)
        assert (await submit([1, 2, 3], settings=settings, timeout=30)).total == 6
    assert await redis.keys(f"{Keys(other.key_prefix).queue}*") == []


async def test_cancelling_the_caller_cancels_the_run(
    client: Client, redis: ArqRedis, settings: Settings
) -> None:
    """Cancelling the awaiting task marks the run cancelled and removes its queued jobs."""
    task = asyncio.create_task(client.submit(range(100), chunks=10))
    await eventually(
        lambda: queue_holds(redis, client.keys, 10), timeout_s=10, what="the 10 chunks queued"
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (run_key,) = await redis.keys(client.keys.run("*"))
    stored = await read_hash(redis, run_key.decode())
    assert stored[b"status"] == b"cancelled"
    assert await run_keys(redis, settings) == [run_key.decode()]


def test_submit_sync_from_synchronous_code(settings: Settings) -> None:
    """submit_sync sums on a real worker process without an event loop of the caller's."""
    with subprocess.Popen(worker_command(), env=process_env(settings), cwd=ROOT) as process:
        try:
            result = submit_sync([1, 2.5, 2**70], settings=settings, timeout=30)
        finally:
            process.terminate()
    assert result.total == float(2**70 + 3)
    assert process.returncode == 0


async def queued_run(client: Client, redis: ArqRedis, chunks: int) -> tuple[asyncio.Task[Any], str]:
    """Start a submit with no worker; return its task and run id once its jobs are queued."""
    task = asyncio.create_task(client.submit(range(chunks * 10), chunks=chunks, timeout=30))
    await eventually(
        lambda: queue_holds(redis, client.keys, chunks), timeout_s=10, what="the chunks queued"
    )
    (run_id,) = await run_ids(redis, client.keys)
    return task, run_id


async def test_cancel_wakes_the_submitter_and_removes_jobs(
    client: Client, redis: ArqRedis, settings: Settings
) -> None:
    """`cancel` from another client fails the waiting submit at once and empties the queue."""
    task, run_id = await queued_run(client, redis, chunks=5)
    async with Client(settings) as other:
        status = await other.cancel(run_id)
    assert (status.status, status.error) == ("cancelled", "cancelled with `chunksum cancel`")
    with pytest.raises(RunFailedError, match="cancelled with `chunksum cancel`"):
        await asyncio.wait_for(task, 5)
    assert await run_keys(redis, settings) == [client.keys.run(run_id)]


@pytest.mark.timeout(60)
async def test_cancel_stops_running_chunks(
    client: Client, redis: ArqRedis, settings: Settings
) -> None:
    """Chunks running when their run is cancelled are aborted within moments, not left to
    finish, and the worker goes on to serve the next run."""
    async with running_worker(settings) as worker:
        task = asyncio.create_task(submit_slow(client, range(40), chunks=4, io_s=30.0))

        async def all_running() -> bool:  # the worker's own state
            return len(worker.job_tasks) >= 4

        await eventually(all_running, timeout_s=10, what="all four chunks running")
        started = time.monotonic()
        async with Client(settings) as other:
            (run_id,) = await run_ids(redis, client.keys)
            await other.cancel(run_id)
        with pytest.raises(RunFailedError, match="cancelled"):
            await asyncio.wait_for(task, 5)

        async def none_running() -> bool:
            return not worker.job_tasks

        await eventually(none_running, what="the chunks aborted")
        assert time.monotonic() - started < 5  # far less than the chunks' 30 s
        assert worker.jobs_failed == 4  # arq counts aborted jobs as failed

        async def none_in_progress() -> bool:  # arq finishes each aborted job just after
            return not await redis.keys("arq:in-progress:*")

        await eventually(none_in_progress, what="arq to finish the aborted jobs")
        assert (await client.submit(range(10), timeout=10)).total == 45


async def test_wait_returns_when_the_run_ends(
    client: Client, redis: ArqRedis, settings: Settings
) -> None:
    """`wait` blocks until the run is done, then returns it with its total."""
    task, run_id = await queued_run(client, redis, chunks=3)
    async with Client(settings) as other:
        waiting = asyncio.create_task(other.wait(run_id, timeout=30))
        with pytest.raises(WaitTimeoutError, match="still queued"):
            await other.wait(run_id, timeout=0.1)
        assert not waiting.done()
        async with running_worker(settings):
            result = await task
            status = await asyncio.wait_for(waiting, 10)
    assert (status.status, status.total) == ("done", result.total)


@pytest.mark.timeout(60)
async def test_idle_worker_rides_out_a_redis_restart(settings: Settings) -> None:
    """An idle worker process outlives a Redis restart and sums the next run."""
    with RedisServer(port=free_port()) as server:
        own = replace(settings, redis_url=server.url)
        async with worker_process(own) as process:
            async with Client(own) as client:
                assert (await client.submit(range(10), timeout=30)).total == 45
            server.stop()
            server.start()
            async with Client(own) as client:
                assert (await client.submit(range(100), chunks=3, timeout=30)).total == 4950
            assert process.returncode is None


@pytest.mark.timeout(60)
async def test_submitter_rides_out_a_redis_restart(settings: Settings) -> None:
    """A submitter waiting on its run reconnects after a Redis restart (appendonly on)."""
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    with RedisServer(port=free_port(), extra_args=durable) as server:
        own = replace(settings, redis_url=server.url)
        async with Client(own) as client:
            task, _ = await queued_run(client, client.redis, chunks=4)
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)
            async with running_worker(own):
                result = await asyncio.wait_for(task, 40)
    assert result.total == sum(range(40))


@pytest.mark.timeout(90)
async def test_busy_worker_rides_out_a_redis_restart(settings: Settings) -> None:
    """A worker process whose chunks are running when Redis restarts (appendonly on) stays
    up, and the run still finishes with the exact total."""
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    with RedisServer(port=free_port(), extra_args=durable) as server:
        own = replace(settings, redis_url=server.url, lease_s=1.0)
        async with worker_process(own) as process, Client(own) as client:
            numbers = range(1000)
            task = asyncio.create_task(submit_slow(client, numbers, chunks=8, timeout=60, io_s=0.5))
            await eventually(
                lambda: client.redis.keys("arq:in-progress:*"),
                timeout_s=10,
                what="the worker to hold chunks mid-way",
            )
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(1.5)  # the outage: the chunks end, and can't record, in it
            await asyncio.to_thread(server.start)
            assert (await asyncio.wait_for(task, 60)).total == sum(numbers)
            assert process.returncode is None


async def test_oversized_chunk_is_refused(
    settings: Settings, redis: ArqRedis, worker: Worker
) -> None:
    """A chunk packing to more than max_chunk_bytes fails with a clear error, nothing queued."""
    small = replace(settings, max_chunk_bytes=4096)
    async with Client(small) as client:
        with pytest.raises(ChunkingError, match="over CHUNKSUM_MAX_CHUNK_BYTES=4,096"):
            await client.submit(np.arange(10_000, dtype=np.int64), chunks=1, timeout=10)
        assert await redis.zcard(client.keys.queue) == 0
        assert (await client.submit(np.arange(100), chunks=1, timeout=10)).total == 4950


MINIMUM_ACL = (
    "on >s3cret resetkeys ~chunksum-acl:* ~arq:* resetchannels &chunksum-acl:* -@all "
    "+@connection +info +dbsize +get +strlen +set +psetex +setex +exists +del +expire +pexpire "
    "+incr +incrby +hset +hsetnx +hget +hgetall +hmget +hvals +hincrby +rpush +lpop +blpop "
    "+zadd +zrem +zpopmax +zscore +zrangebyscore +zremrangebyscore +zrevrange +zincrby +zscan "
    "+zcard "
    "+watch +unwatch +multi "
    "+exec +discard +eval +evalsha +script|load +publish +subscribe +unsubscribe +wait "
    "+config|get"
)


@pytest.mark.timeout(60)
async def test_minimum_acl_is_enough(settings: Settings) -> None:
    """The README's minimum ACL lets a worker and a submitter run, status, wait and cancel,
    and an operator list runs and workers."""
    acl = ("--user", "default", "off", "--user", "chunksum", *MINIMUM_ACL.split())
    with RedisServer(extra_args=acl) as server:
        url = f"unix://chunksum:s3cret@{server.socket_path}"
        own = replace(settings, redis_url=url, key_prefix="chunksum-acl")
        async with running_worker(own), Client(own) as client:
            result = await client.submit(range(1000), chunks=5, timeout=30)
            assert result.total == sum(range(1000))
            assert (await client.wait(result.run_id, timeout=5)).total == result.total
            assert (await client.cancel(result.run_id)).status == "done"
            assert [run.run_id for run in await client.recent_runs()] == [result.run_id]
            await eventually(client.workers, what="the worker's heartbeat, as the ACL user")


async def test_chunks_lost_in_a_failover_fail_the_run(client: Client, redis: ArqRedis) -> None:
    """If Redis comes back without some of a run's jobs (a failover to a replica that had not
    received them), the submitter fails the run with a clear error, never waits forever, and
    leaves no jobs behind."""
    task, run_id = await queued_run(client, redis, chunks=3)
    lost = job_id(run_id, 1)
    await redis.delete(arq_job_key(lost))  # as if the old master had never had them
    await redis.zrem(client.keys.queue, lost)
    assert await redis.client_kill_filter(_type="normal", skipme=True) >= 1  # the submitter's
    with pytest.raises(RunFailedError, match=f"Redis came back without 1 of run {run_id}'s"):
        await asyncio.wait_for(task, 10)
    assert (await client.status(run_id)).status == "failed"
    assert await redis.zcard(client.keys.queue) == 0


async def test_wait_rides_out_a_redis_restart(settings: Settings) -> None:
    """`wait` on a run reconnects after a Redis restart (appendonly on, as a failover keeps
    the data) and returns the run once it ends."""
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    with RedisServer(port=free_port(), extra_args=durable) as server:
        own = replace(settings, redis_url=server.url)
        async with Client(own) as client, Client(own) as waiter:
            task, run_id = await queued_run(client, client.redis, chunks=4)
            waiting = asyncio.create_task(waiter.wait(run_id, timeout=40))
            channel = client.keys.ended_channel(run_id)

            async def listening() -> bool:
                return bool((await client.redis.pubsub_numsub(channel))[0][1] > 0)

            await eventually(listening, timeout_s=10, what="the waiter to listen")
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)
            async with running_worker(own):
                assert (await asyncio.wait_for(task, 40)).total == sum(range(40))
                run = await asyncio.wait_for(waiting, 40)
    assert (run.status, run.total) == ("done", sum(range(40)))
