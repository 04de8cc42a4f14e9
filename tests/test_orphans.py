"""Runs whose submitter dies: finished by the workers once sealed, abandoned before that."""

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from arq.connections import ArqRedis

from app.settings import Settings
from app.submit import Client
from tests.harness import (
    ROOT,
    eventually,
    expire_together,
    process_env,
    read_hash,
    run_ids,
    running_worker,
)

# A submitter in a child process: python -c SUBMITTER <numbers>, where <numbers> is "sized"
# (range(1000) in 4 slow chunks: sealed at once) or "stream" (a generator that yields a
# chunk's worth every 0.2 s for a minute: the test kills the process long before it ends).
SUBMITTER = """
import asyncio, sys, time
from app.bench.slow_chunks import submit_slow
from app.settings import Settings
from app.submit import Client

def stalling():
    for _ in range(300):
        yield from range(100)
        time.sleep(0.2)

async def main(kind: str) -> None:
    async with Client(Settings.from_env()) as client:
        if kind == "sized":
            await submit_slow(client, range(1000), chunks=4, io_s=1.0, timeout=60)
        else:
            await client.submit(stalling(), chunk_size=100, timeout=60)

asyncio.run(main(sys.argv[1]))
"""


async def submitter(settings: Settings, numbers: str) -> asyncio.subprocess.Process:
    """Start a submitter subprocess (see SUBMITTER)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", SUBMITTER, numbers, env=process_env(settings), cwd=ROOT
    )


async def run_once(redis: ArqRedis, client: Client, field: bytes) -> str:
    """Wait (bounded) until the only run's hash has ``field``; return the run id."""

    async def with_field() -> str | None:
        for run_id in await run_ids(redis, client.keys):
            if field in await read_hash(redis, client.keys.run(run_id)):
                return run_id
        return None

    return await eventually(with_field, timeout_s=20, what=f"a run with {field.decode()!r}")


@pytest.fixture
async def orphaning(settings: Settings) -> AsyncIterator[Settings]:
    """Settings with a short submitter lease, and a worker running on them."""
    settings = replace(settings, submitter_lease_s=1.0)
    async with running_worker(settings):
        yield settings


@pytest.mark.timeout(60)
async def test_sealed_run_finishes_without_its_submitter(
    orphaning: Settings, redis: ArqRedis
) -> None:
    """A submitter SIGKILLed once every job is enqueued: the workers finish the run, and
    `chunksum wait RUN_ID` prints the exact total."""
    async with Client(orphaning) as client:
        process = await submitter(orphaning, "sized")
        run_id = await run_once(redis, client, b"enqueued")
        process.send_signal(signal.SIGKILL)
        await process.wait()
        waiting = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "app.cli", "wait", run_id, "--timeout", "20"),
            env=process_env(orphaning),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(waiting.communicate(), 30)
        assert waiting.returncode == 0
        assert out.decode().strip() == str(sum(range(1000)))
        run = await client.status(run_id)
        assert (run.status, run.total, run.count, run.chunks) == ("done", 499_500, 1000, 4)


@pytest.mark.timeout(60)
async def test_stream_abandoned_mid_way_fails_and_leaves_no_jobs(
    orphaning: Settings, redis: ArqRedis
) -> None:
    """A submitter SIGKILLed while still streaming: once its lease lapses the run fails as
    abandoned, its queued jobs are removed, and nothing of it stays but the run hash and its
    timeline (the two chunks summed), which expire together."""
    async with Client(orphaning) as client:
        process = await submitter(orphaning, "stream")
        run_id = await run_once(redis, client, b"status")

        async def stalled() -> bool:  # the two chunks before the stall are summed
            return (await client.status(run_id)).done_chunks >= 2

        await eventually(stalled, timeout_s=20, what="the two chunks before the stall")
        process.send_signal(signal.SIGKILL)
        await process.wait()
        run = await client.wait(run_id, timeout=20)
        assert run.status == "failed"
        assert run.total is None
        assert run.error is not None
        assert "abandoned" in run.error
        leftovers = await redis.keys(f"{orphaning.key_prefix}:*{run_id}*")
        run_key, timeline = client.keys.run(run_id), client.keys.timeline(run_id)
        assert sorted(key.decode() for key in leftovers) == sorted([run_key, timeline])
        assert await expire_together(redis, run_key, timeline)
        assert await redis.zcard(client.keys.queue) == 0
