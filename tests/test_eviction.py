"""The eviction check (app.eviction), and runs whose state Redis evicted mid-run."""

import asyncio
import importlib
import logging
from dataclasses import replace

import pytest

from app import eviction, submission
from app.bench.slow_chunks import submit_slow
from app.errors import EvictionPolicyError, RunLostError, RunNotFoundError
from app.redis_server import RedisServer
from app.settings import Settings
from app.submit import Client
from app.worker_processes import WORKER_COMMAND
from tests.harness import ROOT, create_run, eventually, process_env, running_worker

submit_module = importlib.import_module("app.submit")  # `app.submit` is also the function
WORKER_START_S = 30.0  # a worker process's start-up, on a loaded machine


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget what the check said once already, so each test hears it."""
    monkeypatch.setattr(eviction, "_said", set())


def policy(name: str) -> tuple[str, ...]:
    """Return redis-server options for a maxmemory-policy (with a maxmemory to apply it)."""
    return ("--maxmemory", "64mb", "--maxmemory-policy", name)


async def test_allkeys_policy_is_refused_unless_allowed(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A submitter refuses a Redis that may evict any key, naming the policy and the ways
    out; CHUNKSUM_ALLOW_EVICTION=1 lets it run, with a warning."""
    with RedisServer(extra_args=policy("allkeys-lru")) as server:
        own = replace(settings, redis_url=server.url)
        with pytest.raises(EvictionPolicyError, match="maxmemory-policy allkeys-lru") as raised:
            async with Client(own):
                pass
        assert "CHUNKSUM_ALLOW_EVICTION=1" in str(raised.value)
        allowed = replace(own, allow_eviction=True)
        async with running_worker(allowed), Client(allowed) as client:
            assert (await client.submit(range(100), chunks=2, timeout=20)).total == 4950
        assert "running anyway (CHUNKSUM_ALLOW_EVICTION=1)" in caplog.text


@pytest.mark.timeout(60)
async def test_worker_refuses_to_start_under_allkeys(settings: Settings) -> None:
    """`chunksum worker` exits at start-up with the eviction error, not a traceback."""
    with RedisServer(extra_args=policy("allkeys-random")) as server:
        own = replace(settings, redis_url=server.url)
        process = await asyncio.create_subprocess_exec(
            *WORKER_COMMAND,
            env=process_env(own),
            cwd=ROOT,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), WORKER_START_S)
    assert process.returncode == 1
    assert "chunksum: error: Redis at " in stderr.decode()
    assert "maxmemory-policy allkeys-random" in stderr.decode()
    assert "Traceback" not in stderr.decode()


async def said_by_two_clients(
    settings: Settings, caplog: pytest.LogCaptureFixture, server_args: tuple[str, ...], text: str
) -> list[logging.LogRecord]:
    """Open a client twice on a Redis started with ``server_args``; return the log records
    that mention ``text``."""
    with RedisServer(extra_args=server_args) as server:
        own = replace(settings, redis_url=server.url)
        for _ in range(2):
            async with Client(own):
                pass
    return [r for r in caplog.records if text in r.getMessage()]


async def test_volatile_policy_is_warned_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Under a volatile-* policy a submitter warns (chunksum's keys carry TTLs), once."""
    warnings = await said_by_two_clients(settings, caplog, policy("volatile-lru"), "volatile-lru")
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "chunksum's keys carry TTLs" in warnings[0].getMessage()


async def test_unreadable_policy_is_said_once_and_skipped(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A user the ACL denies CONFIG GET is told once that the check is skipped, and runs."""
    acl = ("--user", "default", "on", "nopass", "~*", "&*", "+@all", "-config")
    said = await said_by_two_clients(settings, caplog, acl, "eviction check is skipped")
    assert len(said) == 1
    assert "+config|get" in said[0].getMessage()


async def test_run_whose_state_is_evicted_fails_saying_so(
    client: Client, worker: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose keys vanish mid-run (as eviction does) fails with RunLostError naming
    eviction and data loss, not "no run, check the id"."""
    monkeypatch.setattr(submission, "WAIT_SLICE_S", 0.2)  # notice the loss sooner
    task = asyncio.create_task(submit_slow(client, range(1000), chunks=20, timeout=30, io_s=0.1))
    run_id = await eventually(lambda: first_run(client), timeout_s=10, what="the run to start")
    await client.redis.delete(
        client.keys.run(run_id), client.keys.partials(run_id), client.keys.inbox(run_id)
    )
    with pytest.raises(RunLostError, match="state is gone from Redis: evicted") as raised:
        await asyncio.wait_for(task, 20)
    assert "restarted without persistence" in str(raised.value)
    assert raised.value.run_id == run_id


class TestVanishedRun:
    """Client.status and Client.wait on a run whose state Redis lost."""

    async def test_wait_on_a_run_seen_active_says_it_was_lost(
        self, client: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """wait() on a run it saw active, whose keys all vanish, raises RunLostError."""
        monkeypatch.setattr(submit_module, "WAIT_SLICE_S", 0.1)  # notice the loss sooner
        await create_run(client.runs, "r1", chunks=2)  # queued; no worker takes it
        waiting = asyncio.create_task(client.wait("r1", timeout=10))
        await eventually(lambda: subscribed(client, "r1"), what="wait() to watch the run")
        await client.redis.delete(*client.keys.run_keys("r1"))
        with pytest.raises(RunLostError, match="state is gone from Redis: evicted") as raised:
            await asyncio.wait_for(waiting, 10)
        assert raised.value.run_id == "r1"

    async def test_status_of_a_run_with_keys_left_says_it_was_lost(
        self, settings: Settings, client: Client
    ) -> None:
        """A client that never saw the run, asked for its status, raises RunLostError when
        the hash is gone but its partials are left."""
        await create_run(client.runs, "r2", chunks=2)
        await client.redis.hset(client.keys.partials("r2"), "0", "x")  # type: ignore[misc]  # redis-py types hset as maybe-awaitable
        await client.redis.delete(client.keys.run("r2"))
        async with Client(settings) as fresh:
            with pytest.raises(RunLostError, match="restarted without persistence"):
                await fresh.status("r2")

    async def test_unknown_run_is_still_not_found(self, client: Client) -> None:
        """An id with no trace in Redis is RunNotFoundError: check the id."""
        with pytest.raises(RunNotFoundError, match="check the id"):
            await client.status("no-such-run")
        with pytest.raises(RunNotFoundError, match="check the id"):
            await client.wait("no-such-run", timeout=1)


async def subscribed(client: Client, run_id: str) -> bool:
    """Whether someone listens for the run's end (wait() subscribes after its first read)."""
    channel = client.keys.ended_channel(run_id)
    counts = await client.redis.pubsub_numsub(channel)
    return bool(counts and counts[0][1] > 0)


async def first_run(client: Client) -> str | None:
    """Return the id of the deployment's first run, once it is enqueued."""
    runs = await client.recent_runs()
    return runs[0].run_id if runs else None
