"""Operating chunksum: `runs`, `workers`, `health`, `status --watch`, and worker heartbeats."""

import asyncio
import json
import os
import sys
import time
import urllib.request
from dataclasses import dataclass

import pytest
from arq.connections import ArqRedis
from fakeredis import FakeAsyncRedis

from app.bench.scaling import ScalingPoint, render
from app.bench.slow_chunks import submit_slow
from app.cli import main
from app.exact import ExactSum
from app.heartbeat import EXPIRES_S, Heartbeat, live_workers
from app.keys import Keys
from app.settings import Settings
from app.submit import Client
from tests.harness import (
    ROOT,
    create_run,
    eventually,
    free_port,
    process_env,
    running_worker,
    worker_command,
)


@dataclass(frozen=True)
class Ran:
    """A finished `chunksum` subprocess."""

    code: int
    out: str
    err: str


async def cli(settings: Settings, *args: str) -> Ran:
    """Run `chunksum ARGS` in a subprocess with the deployment's environment (``settings``)."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "app.cli", *args),
        env=process_env(settings),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return Ran(await process.wait(), out.decode(), err.decode())


async def test_runs_lists_recent_runs_newest_first(settings: Settings, client: Client) -> None:
    """`runs --json` lists every run, newest first, with status, progress and total."""
    async with running_worker(settings):
        first = await client.submit(range(10), chunks=2, timeout=30)
        second = await client.submit([0.5, 0.25], chunks=1, timeout=30)
    ran = await cli(settings, "runs", "--json")
    assert ran.code == 0
    listed = [json.loads(line) for line in ran.out.splitlines()]
    assert [run["run_id"] for run in listed] == [second.run_id, first.run_id]
    assert [(run["status"], run["total"], run["done_chunks"]) for run in listed] == [
        ("done", 0.75, 1),
        ("done", 45, 2),
    ]
    ran = await cli(settings, "runs", "--limit", "1")
    assert ran.code == 0
    table = ran.out
    assert second.run_id in table
    assert first.run_id not in table


async def test_workers_and_health_follow_live_workers(settings: Settings, client: Client) -> None:
    """`health` fails with no worker; a running worker shows in `workers` with its job
    counts and makes `health` pass; a worker that stops leaves the list at once."""
    ran = await cli(settings, "health")
    assert (ran.code, "no live worker" in ran.err) == (1, True)
    async with running_worker(settings):
        await client.submit(range(100), chunks=4, timeout=30)

        async def counted() -> bool:
            return [w.done for w in await client.workers()] == [4]

        await eventually(
            counted, timeout_s=10, every_s=0.05, what="a heartbeat counting the four jobs"
        )
        ran = await cli(settings, "workers", "--json")
        assert ran.code == 0
        (worker,) = [json.loads(line) for line in ran.out.splitlines()]
        assert (worker["done"], worker["failed"], worker["running"]) == (4, 0, 0)
        assert time.time() - worker["last_seen"] < EXPIRES_S
        table = await cli(settings, "workers")
        assert (table.code, str(worker["pid"]) in table.out) == (0, True)
        ran = await cli(settings, "health")
        assert (ran.code, "ok: 1 live worker(s)" in ran.out) == (0, True)
    assert await client.workers() == []


async def test_status_watch_returns_when_the_run_ends(settings: Settings, client: Client) -> None:
    """`status RUN_ID --watch` follows a run to its end, then prints its final state."""
    async with running_worker(settings):
        submit = asyncio.create_task(submit_slow(client, range(10), chunks=2, io_s=1.0))
        runs = await eventually(lambda: client.recent_runs(1), timeout_s=10, what="the run")
        ran = await cli(settings, "status", runs[0].run_id, "--watch", "--json")
        assert ran.code == 0
        assert json.loads(ran.out)["status"] == "done"
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
    await eventually(lambda: live_workers(redis, keys), what="the first beat")
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
        *worker_command("--metrics-port", str(port), "--log-format", "json", log_level="debug"),
        env=process_env(settings),
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        result = await client.submit(range(100), chunks=4, timeout=30)
        done = 'chunksum_chunks_total{outcome="done"} 4.0'

        async def counted() -> str | None:  # the counters move after the partial is in
            text = await scrape(port)
            return text if done in text else None

        text = await eventually(counted, timeout_s=10, every_s=0.05, what=f"metrics: {done}")
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


def test_tables_print_runs_and_workers(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runs`, `workers` and `health` in this process: the tables show a stored run (total,
    count, took) and a worker's heartbeat, and `--counts` junk is refused."""
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)

    async def seed() -> tuple[str, Heartbeat]:
        async with Client(settings) as client:
            await create_run(client.runs, "seeded", chunks=1, count=3)
            await client.runs.finish("seeded", ExactSum.of(6, 0, 0), count=3, chunks=1)
            heartbeat = Heartbeat(client.redis, client.keys, lambda: {"done": 7})
            await heartbeat.beat()
            return "seeded", heartbeat

    run_id, _ = asyncio.run(seed())
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert run_id in out
    assert "done" in out
    assert main(["workers"]) == 0
    assert str(os.getpid()) in capsys.readouterr().out
    assert main(["health"]) == 0
    assert main(["bench", "--scaling", "--counts", "one,two"]) == 1
    assert "--counts takes worker counts" in capsys.readouterr().err


def test_scaling_table_compares_with_one_worker() -> None:
    """The scaling table gives each worker count's speed-up over the first."""
    points = [
        ScalingPoint("cpu", 1, (1.0,), 100, 1000),
        ScalingPoint("cpu", 2, (0.5,), 100, 1000),
        ScalingPoint("io", 1, (2.0,), 10, 10),
    ]
    table = render(points, as_json=False)
    assert "x2.00" in table
    assert "I/O-bound" in table
