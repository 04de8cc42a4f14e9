"""Operating chunksum: `runs`, `workers`, `health`, `status --watch`, and worker heartbeats."""

import asyncio
import json
import sys
import time
import urllib.request

import pytest
from arq.connections import ArqRedis
from fakeredis import FakeAsyncRedis

from app.cli import main
from app.heartbeat import EXPIRES_S, Heartbeat, live_workers
from app.keys import Keys
from app.settings import Settings
from app.submit import Client
from tests.harness import ROOT, free_port, process_env, running_worker


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Point main() at the test's Redis and key prefix, as a deployment's environment would."""
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    return settings


async def cli(*args: str) -> int:
    """Run main() off the event loop (it runs its own), as the console script would."""
    return await asyncio.to_thread(main, list(args))


async def test_runs_lists_recent_runs_newest_first(
    cli_env: Settings, client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runs --json` lists every run, newest first, with status, progress and total."""
    async with running_worker(cli_env):
        first = await client.submit(range(10), chunks=2, timeout=30)
        second = await client.submit([0.5, 0.25], chunks=1, timeout=30)
    assert await cli("runs", "--json") == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [run["run_id"] for run in listed] == [second.run_id, first.run_id]
    assert [(run["status"], run["total"], run["done_chunks"]) for run in listed] == [
        ("done", 0.75, 1),
        ("done", 45, 2),
    ]
    assert await cli("runs", "--limit", "1") == 0
    table = capsys.readouterr().out
    assert second.run_id in table
    assert first.run_id not in table


async def test_workers_and_health_follow_live_workers(
    cli_env: Settings, client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    """`health` fails with no worker; a running worker shows in `workers` with its job
    counts and makes `health` pass; a worker that stops leaves the list at once."""
    assert await cli("health") == 1
    assert "no live worker" in capsys.readouterr().err
    async with running_worker(cli_env):
        await client.submit(range(100), chunks=4, timeout=30)
        async with asyncio.timeout(10):  # until a heartbeat has counted the four jobs
            while [w.done for w in await client.workers()] != [4]:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert await cli("workers", "--json") == 0
        (worker,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert (worker["done"], worker["failed"], worker["running"]) == (4, 0, 0)
        assert time.time() - worker["last_seen"] < EXPIRES_S
        assert await cli("health") == 0
        assert "ok: 1 live worker(s)" in capsys.readouterr().out
    assert await client.workers() == []


async def test_status_watch_returns_when_the_run_ends(
    cli_env: Settings, client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status RUN_ID --watch` follows a run to its end, then prints its final state."""
    async with running_worker(cli_env):
        submit = asyncio.create_task(client.submit(range(10), chunks=2, simulate_io_s=1.0))
        async with asyncio.timeout(10):
            while not (runs := await client.recent_runs(1)):  # noqa: ASYNC110  # Redis state
                await asyncio.sleep(0.01)
        assert await cli("status", runs[0].run_id, "--watch", "--json") == 0
        assert json.loads(capsys.readouterr().out)["status"] == "done"
        assert (await submit).total == 45


async def test_a_dead_workers_heartbeat_expires() -> None:
    """A worker that stops beating drops out of the live list, and its hash expires."""
    redis = FakeAsyncRedis()
    keys = Keys("test")
    heartbeat = Heartbeat(redis, keys, lambda: {"done": 3})
    await heartbeat.beat()
    (worker,) = await live_workers(redis, keys)
    assert (worker.worker_id, worker.done, worker.running) == (heartbeat.worker_id, 3, None)
    assert 0 < await redis.ttl(keys.worker(heartbeat.worker_id)) <= EXPIRES_S
    # its last beat, seen from EXPIRES_S later: a dead worker
    await redis.zadd(keys.workers, {heartbeat.worker_id: time.time() - EXPIRES_S - 1})
    assert await live_workers(redis, keys) == []


async def test_stopping_removes_the_heartbeat(redis: ArqRedis, settings: Settings) -> None:
    """A heartbeat started and stopped cleanly leaves nothing behind."""
    keys = Keys(settings.key_prefix)
    heartbeat = Heartbeat(redis, keys)
    heartbeat.start()
    async with asyncio.timeout(5):
        while not await live_workers(redis, keys):  # noqa: ASYNC110  # Redis state
            await asyncio.sleep(0.01)
    await heartbeat.stop()
    assert await redis.exists(keys.workers, keys.worker(heartbeat.worker_id)) == 0


@pytest.mark.timeout(60)
async def test_worker_serves_metrics_and_logs_chunks_as_json(
    settings: Settings, client: Client
) -> None:
    """`chunksum worker --metrics-port P --log-format json --log-level debug`: Prometheus
    counts the chunks and numbers it summed, each chunk is one JSON log line, and the run's
    end one summary line at info."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "app.cli", "worker", "--metrics-port", str(port)),
        *("--log-format", "json", "--log-level", "debug"),
        env=process_env(settings),
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        result = await client.submit(range(100), chunks=4, timeout=30)
        done = 'chunksum_chunks_total{outcome="done"} 4.0'
        async with asyncio.timeout(10):  # the counters move after the partial is in
            while done not in (text := await scrape(port)):  # noqa: ASYNC110  # over HTTP
                await asyncio.sleep(0.05)
        assert "chunksum_numbers_summed_total 100.0" in text
        assert "chunksum_chunk_duration_seconds_count 4.0" in text
    finally:
        process.terminate()
        _, err = await asyncio.wait_for(process.communicate(), 15)
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    chunks = [line for line in lines if line["message"] == "chunk summed"]
    assert sorted(line["chunk"] for line in chunks) == [0, 1, 2, 3]
    assert {line["run"] for line in chunks} == {result.run_id}
    assert sum(line["count"] for line in chunks) == 100
    (summary,) = [line for line in lines if line["message"].startswith(f"run {result.run_id}")]
    assert (summary["level"], summary["status"], summary["chunks"]) == ("info", "done", 4)


async def scrape(port: int) -> str:
    """Return the text of http://127.0.0.1:port/metrics ('' while nothing listens)."""

    def get() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                return str(reply.read().decode())
        except OSError:
            return ""

    return await asyncio.to_thread(get)
