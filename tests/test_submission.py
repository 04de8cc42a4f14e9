"""The submit engine (app.submission) across a Redis crash while it still enqueues."""

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from app.errors import RedisUnavailableError, RunLostError
from app.redis_server import RedisServer
from app.settings import Settings
from app.submit import Client
from tests.harness import free_port, worker_process

NUMBERS = 100_000
CHUNK_SIZE = 100  # 1,000 chunks, a stream: enqueued max_in_flight at a time
KILL_AT = 30_000  # the number at which Redis is SIGKILLed, a third of the way in
DURABLE = ("--appendonly", "yes", "--appendfsync", "always")


class Crash:
    """SIGKILL a redis-server from inside the input stream, then restart it on its port."""

    def __init__(self, server: RedisServer, pid: int) -> None:
        self.server, self.pid = server, pid
        self.killed = asyncio.Event()
        self.killed_at = 0.0

    def numbers(self) -> Iterator[int]:
        """Yield the run's numbers, killing Redis as the KILL_AT-th is read."""
        for number in range(NUMBERS):
            if number == KILL_AT:
                os.kill(self.pid, signal.SIGKILL)  # mid-enqueue: the submitter's next flush fails
                self.killed_at = time.monotonic()
                self.killed.set()
            yield number

    async def restart(self) -> None:
        """Restart the server once it has been killed (it reloads its AOF, if it has one)."""
        await self.killed.wait()
        await asyncio.to_thread(self.server.stop)  # reaps the killed process
        await asyncio.to_thread(self.server.start)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("durable", [True, False], ids=["aof", "no-persistence"])
async def test_redis_killed_mid_enqueue(settings: Settings, durable: bool) -> None:
    """Redis SIGKILLed while a 1,000-chunk stream is still being enqueued, and restarted on
    its port: with AOF the submitter reconnects, re-sends what was in flight and ends with
    the exact total; without persistence it fails with RunLostError, saying Redis lost the
    run's state. Either way no redis-py error leaves submit."""
    with RedisServer(port=free_port(), extra_args=DURABLE if durable else ()) as server:
        own = replace(settings, redis_url=server.url, lease_s=1.0)
        async with worker_process(own) as worker, Client(own) as client:
            pid = int((await client.redis.info("server"))["process_id"])
            crash = Crash(server, pid)
            restarting = asyncio.create_task(crash.restart())
            submitting = client.submit(crash.numbers(), chunk_size=CHUNK_SIZE, timeout=40)
            if durable:
                result = await asyncio.wait_for(submitting, 45)
                assert result.total == sum(range(NUMBERS))
                assert result.chunks == NUMBERS // CHUNK_SIZE
            else:
                with pytest.raises(RunLostError, match="state is gone from Redis") as raised:
                    await asyncio.wait_for(submitting, 45)
                assert "restarted without persistence" in str(raised.value)
            took_s = time.monotonic() - crash.killed_at
            print(f"killed mid-enqueue ({'AOF' if durable else 'no persistence'}): {took_s:.2f} s")
            await restarting
            assert worker.returncode is None


async def test_outage_past_the_bound_is_a_clear_error(settings: Settings) -> None:
    """Redis gone for longer than CHUNKSUM_OUTAGE_S while enqueueing: RedisUnavailableError
    naming the Redis, never its password, soon after the bound."""
    secret = ("--requirepass", "s3cret")
    with RedisServer(port=free_port(), extra_args=secret) as server:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/0"
        own = replace(settings, redis_url=url, outage_s=0.5, max_in_flight=NUMBERS)
        async with Client(own) as client:
            pid = int((await client.redis.info("server"))["process_id"])
            crash = Crash(server, pid)  # never restarted
            with pytest.raises(
                RedisUnavailableError, match=r"past CHUNKSUM_OUTAGE_S=0\.5"
            ) as raised:
                await asyncio.wait_for(client.submit(crash.numbers(), chunk_size=CHUNK_SIZE), 10)
            took_s = time.monotonic() - crash.killed_at
    message = str(raised.value)
    assert f"Redis at redis://:***@127.0.0.1:{server.port}/0" in message
    assert "s3cret" not in message
    assert took_s < 5
    print(f"outage past the 0.5 s bound: failed after {took_s:.2f} s")
