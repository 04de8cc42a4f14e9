"""A plain arq worker across a Redis outage (app.worker.outage_retry)."""

import asyncio
import copy
import os
import signal
import sys
import time
from dataclasses import replace

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from app.bench.slow_chunks import submit_slow
from app.redis_server import RedisServer
from app.settings import Settings
from app.submit import Client
from app.worker import WorkerSettings
from app.worker.outage_retry import OutageRetry
from app.worker.settings import arq_worker_settings
from tests.harness import ROOT, eventually, free_port, process_env

DURABLE = ("--appendonly", "yes", "--appendfsync", "always")
IO_S = 0.5  # how long each chunk of the run waits, running
DOWN_S = 1.5  # how long Redis stays down: the running chunks end, and arq finishes them, in it


class Flaky:
    """A Redis call that fails ``failures`` times with a connection error, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.failed: list[RedisError] = []

    async def do(self) -> str:
        """Fail, or answer "ok" once the failures are spent."""
        self.calls += 1
        if self.calls <= self.failures:
            raise RedisConnectionError("Connection closed by server.")
        return "ok"

    async def fail(self, error: RedisError) -> None:
        """Note the failure, as redis-py disconnects there."""
        self.failed.append(error)


class TestOutageRetry:
    """OutageRetry: retry while Redis is unreachable, for a bounded time."""

    async def test_retries_until_redis_answers(self) -> None:
        """A call that fails twice is sent a third time and returns its answer."""
        flaky = Flaky(failures=2)
        assert await OutageRetry(5.0).call_with_retry(flaky.do, flaky.fail) == "ok"
        assert (flaky.calls, len(flaky.failed)) == (3, 2)

    async def test_gives_up_after_the_outage_bound(self) -> None:
        """A call that never succeeds raises its error once the outage lasts outage_s."""
        flaky = Flaky(failures=1_000)
        started = time.monotonic()
        with pytest.raises(RedisConnectionError):
            await OutageRetry(0.3).call_with_retry(flaky.do, flaky.fail)
        assert 0.3 <= time.monotonic() - started < 2

    def test_survives_redis_py_copies(self) -> None:
        """redis-py deep-copies the retry into each connection: the bound goes with it."""
        assert copy.deepcopy(OutageRetry(7.0)).outage_s == 7.0

    def test_plain_arq_worker_retries_for_chunksum_outage_s(self, settings: Settings) -> None:
        """`arq app.worker.WorkerSettings` hands redis-py a retry bounded by CHUNKSUM_OUTAGE_S."""
        retry = arq_worker_settings(replace(settings, outage_s=12.0))["redis_settings"].retry
        assert isinstance(retry, OutageRetry)
        assert retry.outage_s == 12.0
        assert isinstance(WorkerSettings["redis_settings"].retry, OutageRetry)


@pytest.mark.timeout(60)
async def test_plain_arq_worker_rides_out_a_redis_restart(settings: Settings) -> None:
    """A real `arq` worker process whose chunks are running when Redis is SIGKILLed (AOF on)
    and restarted on its port stays up: the run ends with the exact total, and so does the
    next one."""
    with RedisServer(port=free_port(), extra_args=DURABLE) as server:
        own = replace(settings, redis_url=server.url)  # leases outlast the outage
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "arq", "tests.arq_slow_worker.WorkerSettings"),
            env=process_env(own),
            cwd=ROOT,
        )
        try:
            async with Client(own) as client:
                pid = int((await client.redis.info("server"))["process_id"])
                running = asyncio.create_task(
                    submit_slow(client, range(1000), chunks=4, timeout=45, io_s=IO_S)
                )
                await eventually(
                    lambda: in_progress(client, 4), timeout_s=15, what="4 chunks running"
                )
                os.kill(pid, signal.SIGKILL)
                await asyncio.to_thread(server.stop)
                await asyncio.sleep(DOWN_S)  # the outage itself, not a wait for a condition
                await asyncio.to_thread(server.start)
                restarted = time.monotonic()
                assert (await asyncio.wait_for(running, 45)).total == sum(range(1000))
                took_s = time.monotonic() - restarted
                assert (await client.submit(range(100), chunks=3, timeout=20)).total == 4950
            print(f"plain arq worker across a restart: run done {took_s:.2f} s after it")
            assert process.returncode is None
        finally:
            if process.returncode is None:
                process.terminate()
            await asyncio.wait_for(process.wait(), 15)


async def in_progress(client: Client, chunks: int) -> bool:
    """Whether at least ``chunks`` chunk jobs are running (arq's in-progress keys)."""
    return len(await client.redis.keys("arq:in-progress:*")) >= chunks
