"""Leases: a killed worker's chunk is taken over in seconds, not arq's 310."""

import asyncio
import signal
from dataclasses import replace

import pytest
from arq.connections import ArqRedis

from app.bench.slow_chunks import submit_slow
from app.keys import arq_in_progress_key, job_id
from app.lease import Lease
from app.settings import Settings
from app.submit import Client, RunResult
from tests.harness import eventually, run_ids, worker_process


async def wait_for_key(redis: ArqRedis, key: str, *, present: bool, timeout_s: float) -> None:
    """Wait (bounded) until ``key`` exists, or is gone."""

    async def settled() -> bool:
        return bool(await redis.exists(key)) == present

    state = "exist" if present else "be gone"
    await eventually(settled, timeout_s=timeout_s, what=f"{key} to {state}")


async def wait_for_lease(redis: ArqRedis, key: str, *, lease_ms: int) -> None:
    """Wait (bounded) until the job's in-progress key runs on a lease, not arq's 310 s."""

    async def leased() -> bool:
        return bool(0 < await redis.pttl(key) <= lease_ms)

    await eventually(leased, timeout_s=20, what=f"{key} to run on a {lease_ms} ms lease")


async def test_lease_shortens_and_renews_the_in_progress_key(redis: ArqRedis) -> None:
    """A lease cuts arq's in-progress TTL to the lease, renews it, then lets it lapse."""
    key = arq_in_progress_key("run:0")
    await redis.psetex(key, 310_000, b"1")
    lease = Lease(redis, key, lease_s=0.3)
    lease.start(leased=False)
    try:
        await wait_for_lease(redis, key, lease_ms=300)
        await asyncio.sleep(0.6)  # observing expiry over time: two lease lengths
        assert await redis.exists(key)
    finally:
        await lease.stop()
    await wait_for_key(redis, key, present=False, timeout_s=2)


async def started_chunk(client: Client, redis: ArqRedis, io_s: float) -> asyncio.Task[RunResult]:
    """Submit range(1000) as one chunk that waits ``io_s``; return once it runs on a lease."""
    submit = asyncio.create_task(submit_slow(client, range(1000), chunks=1, timeout=30, io_s=io_s))
    (run_id,) = await eventually(lambda: run_ids(redis, client.keys), timeout_s=10, what="the run")
    lease_ms = int(client.settings.lease_s * 1000)
    await wait_for_lease(redis, arq_in_progress_key(job_id(run_id, 0)), lease_ms=lease_ms)
    return submit


@pytest.mark.timeout(60)
async def test_killed_workers_chunk_is_taken_over(settings: Settings, redis: ArqRedis) -> None:
    """A worker SIGKILLed mid-chunk loses its lease; another worker finishes the run exactly."""
    settings = replace(settings, lease_s=1.0)
    async with Client(settings) as client:
        async with worker_process(settings) as doomed:
            submit = await started_chunk(client, redis, io_s=2.0)
            doomed.send_signal(signal.SIGKILL)
        async with worker_process(settings):
            result = await submit
    assert result.total == sum(range(1000))


@pytest.mark.timeout(60)
async def test_sigterm_lets_the_running_chunk_finish(settings: Settings, redis: ArqRedis) -> None:
    """A worker sent SIGTERM mid-chunk stops taking jobs but finishes that chunk, then exits 0."""
    async with Client(settings) as client, worker_process(settings) as worker:
        submit = await started_chunk(client, redis, io_s=1.0)
        worker.send_signal(signal.SIGTERM)
        result = await submit
        assert await asyncio.wait_for(worker.wait(), 15) == 0
    assert result.total == sum(range(1000))
