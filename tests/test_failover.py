"""Redis Sentinel: a master, a replica and three Sentinels on loopback; the master dies
mid-run and the run still ends with its exact total (or a clear error), never a wrong one.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

from app.bench.slow_chunks import submit_slow
from app.errors import RunFailedError
from app.redis_server import RedisServer, find_redis_server
from app.settings import Settings
from app.submit import Client
from app.worker_processes import stop_processes
from tests.harness import eventually, eventually_sync, free_port, run_ids, worker_process

SERVICE = "chunksum-test"
DOWN_AFTER_MS = 500  # how long Sentinels wait before they call the master down
READY_TIMEOUT_S = 20.0
CHUNKS = 40
NUMBERS = range(1, 200_001)
CHUNK_IO_S = 0.25  # each chunk waits this long, so the run is mid-way when the master dies
pytestmark = pytest.mark.timeout(90)


@dataclass
class Group:
    """A master, its replica, and the Sentinels watching them."""

    master: RedisServer
    replica: RedisServer
    sentinel_ports: list[int]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def master_port(self) -> int:
        """Return the master's port, as the first Sentinel reports it."""
        with Redis(port=self.sentinel_ports[0]) as sentinel:
            _, port = sentinel.sentinel_get_master_addr_by_name(SERVICE)
            return int(port)

    def wait_for_new_master(self, old_port: int) -> float:
        """Wait (bounded) until the Sentinels name a master other than ``old_port``; return
        the monotonic time they first did."""
        eventually_sync(
            lambda: self.master_port() != old_port,
            timeout_s=READY_TIMEOUT_S,
            what=f"a failover from the master on port {old_port}",
        )
        return time.monotonic()


def start_sentinel(
    directory: Path, port: int, master_port: int, executable: str
) -> subprocess.Popen[bytes]:
    """Start a Sentinel on 127.0.0.1:port that watches the master on master_port."""
    directory.mkdir()
    config = directory / "sentinel.conf"  # Sentinel rewrites its config: a file of its own
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\nlogfile {directory / 'sentinel.log'}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n"
        f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SERVICE} 5000\n"
    )
    return subprocess.Popen([executable, str(config), "--sentinel"], stdout=subprocess.DEVNULL)


def sees_the_group(group: Group, port: int) -> bool:
    """Return whether the Sentinel on ``port`` knows the replica and the other Sentinels."""
    with (
        contextlib.suppress(Exception),  # not up yet, or not yet told of SERVICE
        Redis(port=port, decode_responses=True) as sentinel,
    ):
        replicas = sentinel.sentinel_slaves(SERVICE)
        peers = sentinel.sentinel_sentinels(SERVICE)
        linked = bool(replicas) and replicas[0]["master-link-status"] == "ok"
        return linked and len(peers) == len(group.sentinel_ports) - 1
    return False


def wait_until_watching(group: Group) -> None:
    """Wait (bounded) until every Sentinel knows the replica and the other Sentinels."""
    eventually_sync(
        lambda: all(sees_the_group(group, port) for port in group.sentinel_ports),
        timeout_s=READY_TIMEOUT_S,
        every_s=0.05,  # Sentinels gossip every second or so
        what=f"the Sentinels on ports {group.sentinel_ports} to see the group",
    )


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    """Start a master, a replica and three Sentinels (Redis 7's, when it is installed)."""
    executable = shutil.which("redis-server", path="/usr/bin:/usr/local/bin") or find_redis_server()
    with RedisServer(port=free_port(), executable=executable) as master:
        assert master.port is not None
        replica_of = ("--replicaof", "127.0.0.1", str(master.port))
        with RedisServer(port=free_port(), executable=executable, extra_args=replica_of) as replica:
            ports = [free_port() for _ in range(3)]
            sentinels = [
                start_sentinel(tmp_path / f"sentinel-{port}", port, master.port, executable)
                for port in ports
            ]
            try:
                found = Group(master, replica, ports)
                wait_until_watching(found)
                yield found
            finally:
                stop_processes(sentinels)


def kill_redis(port: int) -> None:
    """SIGKILL the redis-server on ``port``: a crash, with nothing flushed to replicas."""
    with Redis(port=port) as redis:
        pid = int(redis.info("server")["process_id"])
    os.kill(pid, signal.SIGKILL)


async def chunks_done(client: Client, done: int) -> None:
    """Wait (bounded) until the client's one run has ``done`` chunks done."""

    async def enough() -> bool:
        runs = await run_ids(client.redis, client.keys)
        return bool(runs) and (await client.status(runs[0])).done_chunks >= done

    await eventually(enough, timeout_s=20, what=f"{done} chunks done")


async def test_a_run_survives_the_masters_death(group: Group) -> None:
    """Two real workers and a submitter follow the Sentinels to the promoted replica; the
    run ends with its exact total, stored on the new master."""
    settings = Settings(
        redis_url=group.url,
        key_prefix=f"test-{uuid.uuid4().hex[:8]}",
        lease_s=1.0,
        worker_max_jobs=4,
    )
    async with (
        worker_process(settings),
        worker_process(settings),
        Client(settings) as client,
    ):
        submit = asyncio.create_task(
            submit_slow(client, NUMBERS, chunks=CHUNKS, timeout=60, io_s=CHUNK_IO_S)
        )
        await chunks_done(client, CHUNKS // 5)  # mid-run: some chunks done, most not
        old_port = group.master_port()
        killed = time.monotonic()
        kill_redis(old_port)
        promoted = asyncio.create_task(asyncio.to_thread(group.wait_for_new_master, old_port))
        try:
            result = await submit
        except RunFailedError as exc:  # allowed: a clear error, never a wrong total
            if "Redis came back without" not in str(exc):
                raise
            pytest.xfail(f"the failover lost enqueued chunks: {exc}")
        done_s = time.monotonic() - killed
        assert result.total == sum(NUMBERS)
        promoted_s = await promoted - killed
        assert await client.result(result.run_id) == sum(NUMBERS)  # on the new master
        print(
            f"\nfailover: master killed -> replica promoted in {promoted_s:.2f} s, "
            f"run done in {done_s:.2f} s, total exact"
        )
