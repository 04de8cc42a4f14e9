"""Batched claims: ChunksumWorker claims what arq would, a batch per round trip."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError

from app.bench.slow_chunks import submit_slow
from app.keys import Keys, arq_in_progress_key, arq_job_key, arq_retry_key, job_id
from app.queue import CLAIM_BATCH
from app.settings import Settings
from app.submit import Client
from app.worker import worker_settings
from app.worker.chunksum_worker import ChunksumWorker
from app.worker.claims import CLAIM_READ_BYTES
from app.worker.loaded_jobs import Loaded
from tests.harness import eventually, run_ids, running_worker


def now_ms() -> int:
    """Return the time in milliseconds, arq's queue score."""
    return int(time.time() * 1000)


@pytest.fixture
async def claimer(settings: Settings, redis: ArqRedis) -> AsyncIterator[ChunksumWorker]:
    """A 3-slot ChunksumWorker whose loop doesn't run (tests call start_jobs) and whose
    claimed jobs hold their slots until the test ends."""
    worker = ChunksumWorker(
        **{**worker_settings(replace(settings, worker_max_jobs=3)), "redis_pool": redis},
        handle_signals=False,
    )
    release = asyncio.Event()

    async def hold(job_id: str, score: int) -> None:
        await release.wait()

    worker.run_job = hold  # type: ignore[method-assign]
    yield worker
    release.set()
    if worker.tasks:
        await asyncio.wait(worker.tasks.values(), timeout=5)


async def test_claims_due_jobs_that_no_one_holds(
    claimer: ChunksumWorker, redis: ArqRedis, settings: Settings
) -> None:
    """Of a running, a deferred, a vanished and a free job, only the free one is claimed,
    with the lease's expiry rather than arq's job timeout."""
    queue = Keys(settings.key_prefix).queue
    await redis.zadd(queue, {"free": now_ms(), "running": now_ms(), "later": now_ms() + 60_000})
    await redis.psetex(arq_in_progress_key("running"), 60_000, b"1")
    await claimer.start_jobs([b"running", b"later", b"gone", b"free"])
    assert set(claimer.tasks) == {"free"}
    assert claimer.job_counter == 1  # the slots of the three not claimed were given back
    assert 0 < await redis.pttl(arq_in_progress_key("free")) <= settings.lease_s * 1000
    assert 60_000 - 1000 < await redis.pttl(arq_in_progress_key("running")) <= 60_000
    assert not await redis.exists(arq_in_progress_key("later"))
    assert not await redis.exists(arq_in_progress_key("gone"))


async def test_a_claim_reads_small_jobs_and_leaves_big_ones_to_their_job(
    claimer: ChunksumWorker, redis: ArqRedis, settings: Settings
) -> None:
    """The claim reads a small job's record and raises its try count, as arq's own read
    would; a record over CLAIM_READ_BYTES is left for its job to read (its try count as it
    was, nothing handed over), and so is a record gone (read as missing, try counted)."""
    queue = Keys(settings.key_prefix).queue
    await redis.zadd(queue, {"small": now_ms(), "big": now_ms(), "gone": now_ms()})
    await redis.set(arq_job_key("small"), b"record")
    await redis.set(arq_job_key("big"), b"x" * (CLAIM_READ_BYTES + 1))
    await redis.set(arq_retry_key("small"), b"2")
    await claimer.start_jobs([b"small", b"big", b"gone"])
    assert set(claimer.tasks) == {"small", "big", "gone"}
    assert claimer._loaded == {
        "small": Loaded(b"record", 3, aborted=False),
        "gone": Loaded(None, 1, aborted=False),
    }
    assert await redis.get(arq_retry_key("small")) == b"3"
    assert await redis.exists(arq_retry_key("big")) == 0


async def test_claims_no_more_than_free_slots(
    claimer: ChunksumWorker, redis: ArqRedis, settings: Settings
) -> None:
    """Five due jobs and three slots: three are claimed, two are left for other workers."""
    queue = Keys(settings.key_prefix).queue
    ids = [f"job-{n}" for n in range(5)]
    await redis.zadd(queue, dict.fromkeys(ids, now_ms()))
    await claimer.start_jobs([job.encode() for job in ids])
    claimed = [job for job in ids if await redis.exists(arq_in_progress_key(job))]
    assert sorted(claimer.tasks) == claimed
    assert len(claimed) == claimer.job_counter == 3


async def test_claim_runs_on_a_lease_from_the_start(
    settings: Settings, redis: ArqRedis, client: Client
) -> None:
    """A claimed chunk's in-progress key lives one lease, never arq's job timeout + 10 s."""
    settings = replace(settings, lease_s=2.0)
    async with running_worker(settings):
        submit = asyncio.create_task(submit_slow(client, range(10), chunks=1, io_s=0.5))
        runs = await eventually(
            lambda: run_ids(redis, client.keys), timeout_s=10, every_s=0.005, what="the run"
        )
        key = arq_in_progress_key(job_id(runs[0], 0))

        async def expiring() -> int | None:  # the TTL once the key is there and has one
            ttl: int = await redis.pttl(key)
            return ttl if ttl >= 0 else None

        ttl = await eventually(expiring, timeout_s=10, every_s=0.001, what=f"a TTL on {key}")
        assert 0 < ttl <= 2000
        assert (await submit).total == 45


@pytest.mark.timeout(60)
async def test_shares_a_queue_with_plain_arq_workers(
    settings: Settings, redis: ArqRedis, client: Client
) -> None:
    """A ChunksumWorker and a plain arq worker on one queue run each chunk exactly once."""
    async with (
        running_worker(settings) as batched,
        running_worker(settings, worker_class=Worker) as plain,
    ):
        result = await client.submit(range(100_000), chunks=20 * CLAIM_BATCH, timeout=30)

        async def all_counted() -> bool:  # arq counts a job after its partial is in
            return batched.jobs_complete + plain.jobs_complete >= result.chunks

        await eventually(all_counted, timeout_s=10, what="arq to count every chunk")
    assert result.total == sum(range(100_000))
    assert batched.jobs_complete + plain.jobs_complete == result.chunks
    assert batched.jobs_retried == plain.jobs_retried == 0


async def test_a_full_worker_waits_for_a_slot_instead_of_spinning(
    settings: Settings, client: Client
) -> None:
    """With every slot busy, the worker's loop pauses until a job ends (no 0 s poll spin)."""
    settings = replace(settings, worker_max_jobs=1)
    async with running_worker(settings) as worker:
        passes = 0
        heart_beat = worker.heart_beat

        async def counted() -> None:
            nonlocal passes
            passes += 1
            await heart_beat()

        worker.heart_beat = counted  # type: ignore[method-assign]  # arq beats once a pass
        result = await submit_slow(client, range(10), chunks=2, io_s=0.5, timeout=30)
    assert result.total == 45
    assert passes < 20  # spinning for the 1 s that the worker is full would be thousands


async def test_a_job_that_loses_redis_is_logged_not_raised(
    settings: Settings,
    redis: ArqRedis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If Redis goes while arq reads or finishes a job, the job's task ends with a warning
    (the lease lapses and the chunk runs again), not an exception nobody retrieves."""
    worker = ChunksumWorker(**worker_settings(settings), redis_pool=redis, handle_signals=False)

    async def lose_redis(self: Worker, job_id: str, score: int) -> None:
        raise RedisConnectionError("Connection closed by server.")

    monkeypatch.setattr(Worker, "run_job", lose_redis)
    await worker.run_job("run:0", now_ms())
    assert "job run:0: Redis unreachable before arq could finish it" in caplog.text


async def test_a_cancel_that_redis_py_swallowed_stops_the_loop(claimer: ChunksumWorker) -> None:
    """arq stops a worker by cancelling its loop; a cancel that redis-py 5's connection check
    turned into an ignored timeout (app.interrupts) still ends the loop at its next pass,
    where it would otherwise run on for ever, with no pause between passes."""

    async def loop_after_a_swallowed_cancel() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        # swallowed, as redis-py's check does: the task is still being cancelled
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)
        await claimer._poll_iteration()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(loop_after_a_swallowed_cancel())


async def test_a_worker_never_claims_a_job_it_runs(
    claimer: ChunksumWorker, redis: ArqRedis, settings: Settings
) -> None:
    """A job this worker runs (a run's last chunk stays queued while its worker finalises
    the run) is not claimed again by it, even when its in-progress mark is gone."""
    queue = Keys(settings.key_prefix).queue
    await redis.zadd(queue, {"mine": now_ms()})
    await claimer.start_jobs([b"mine"])
    assert set(claimer.tasks) == {"mine"}
    await redis.delete(arq_in_progress_key("mine"))
    await claimer.start_jobs([b"mine"])
    assert not await redis.exists(arq_in_progress_key("mine"))
    assert claimer.job_counter == 1
