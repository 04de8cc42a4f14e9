"""A test cluster on a private network (tests.netns): Redis on host "redis", `chunksum worker`s
and submitters on the other hosts, and what a test reads of them (heartbeats, metrics).

The hosts talk over TCP on the test network. The test itself reads Redis through a Unix
socket of the same server: no cable pull touches it, and the root namespace needs no
route into the test network.
"""

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.heartbeat import WorkerInfo
from app.settings import Settings
from app.submit import Client
from tests.harness import ROOT, eventually, eventually_sync, process_env, worker_command
from tests.netns import Network

REDIS_SERVER = Path("/usr/bin/redis-server")
REDIS_PORT = 6379
REDIS_START_S = 5.0
METRICS_PORT = 9100  # each worker's own, on its host's loopback
POLL_S = 0.05
WORKERS_UP_S = 30.0  # three interpreters importing numpy and arq on two cores
SUBMIT_S = 40.0

FETCH_METRICS = f"""
import urllib.request
print(urllib.request.urlopen("http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5).read().decode())
"""
_CHUNK_OUTCOME = re.compile(r'^chunksum_chunks_total\{outcome="(\w+)"\} (\S+)$', re.MULTILINE)
_NUMBERS = re.compile(r"^chunksum_numbers_summed_total (\S+)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Cluster:
    """A test network with Redis running on its host "redis"."""

    network: Network
    settings: Settings  # what the hosts use: Redis over the test network
    socket_path: Path  # the same Redis through a Unix socket, for the test's own reads

    def observer(self, settings: Settings) -> Settings:
        """Return ``settings`` with Redis reached through the Unix socket."""
        return replace(settings, redis_url=f"unix://{self.socket_path}")


@contextlib.contextmanager
def running_cluster(hosts: Sequence[str]) -> Iterator[Cluster]:
    """Build a network of ``hosts`` (one of them "redis"), start Redis there; on exit kill
    everything and remove the network."""
    if not REDIS_SERVER.exists():
        pytest.skip(f"needs {REDIS_SERVER} (apt-get install redis-server)")
    # a short path: a Unix socket's path has a limit of 107 bytes
    with tempfile.TemporaryDirectory(prefix="cs-redis-") as tmp, Network(hosts) as network:
        directory = Path(tmp)
        address = network.address("redis")
        server = network.popen(
            "redis",
            [
                *(str(REDIS_SERVER), "--bind", address, "--port", str(REDIS_PORT)),
                *("--unixsocket", str(directory / "redis.sock"), "--unixsocketperm", "700"),
                *("--protected-mode", "no", "--save", "", "--appendonly", "no"),
                *("--dir", tmp, "--logfile", str(directory / "redis.log")),
            ],
        )
        wait_for_redis(server, directory)
        settings = Settings(
            redis_url=f"redis://{address}:{REDIS_PORT}/0",
            key_prefix=f"hosts-{uuid.uuid4().hex[:8]}",
            result_ttl_s=600,
            worker_poll_s=0.2,
        )
        yield Cluster(network, settings, directory / "redis.sock")


def wait_for_redis(server: subprocess.Popen[bytes], directory: Path) -> None:
    """Wait (bounded) until the Redis in ``directory`` answers on its Unix socket."""
    log = directory / "redis.log"

    def answers() -> bool:
        try:
            with Redis(unix_socket_path=str(directory / "redis.sock")) as redis:
                return bool(redis.ping())
        except (RedisConnectionError, FileNotFoundError) as exc:
            if server.poll() is not None:
                pytest.fail(f"redis-server exited ({exc}): {log_text(log)}")
            return False

    try:
        eventually_sync(
            answers, timeout_s=REDIS_START_S, every_s=POLL_S, what="redis-server to answer"
        )
    except AssertionError as exc:
        pytest.fail(f"{exc}: {log_text(log)}")


def log_text(log: Path) -> str:
    """Return a server's log, or "no log"."""
    return log.read_text() if log.exists() else "no log"


def start_worker(cluster: Cluster, settings: Settings, host: str) -> subprocess.Popen[bytes]:
    """Start `chunksum worker` on ``host``, with its metrics on the host's loopback."""
    argv = worker_command("--metrics-port", str(METRICS_PORT))
    return cluster.network.popen(host, argv, env=process_env(settings), cwd=ROOT)


def start_submit(cluster: Cluster, settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    """Start ``python ARGS`` on host "sub", with its output and errors piped."""
    return start_on_sub(cluster, settings, sys.executable, *args)


def start_on_sub(cluster: Cluster, settings: Settings, *argv: str) -> subprocess.Popen[bytes]:
    """Start ``argv`` on host "sub", with its output and errors piped."""
    pipe = subprocess.PIPE
    return cluster.network.popen(
        "sub", argv, env=process_env(settings), cwd=ROOT, stdout=pipe, stderr=pipe
    )


def start_cli_submit(
    cluster: Cluster, settings: Settings, last: int, chunks: int
) -> subprocess.Popen[bytes]:
    """Start `chunksum submit --range 1 LAST --chunks CHUNKS --json` on host "sub"."""
    args = ("--range", "1", str(last), "--chunks", str(chunks), "--json", "-q", "--timeout", "20")
    return start_submit(cluster, settings, "-m", "app.cli", "submit", *args)


def pause(process: subprocess.Popen[bytes]) -> None:
    """Stop ``process`` (SIGSTOP) and wait (bounded) until it is stopped: its event loop,
    on its main thread, runs no more."""
    process.send_signal(signal.SIGSTOP)
    stat = Path(f"/proc/{process.pid}/stat")
    eventually_sync(
        lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "T",
        timeout_s=5,
        every_s=0.001,
        what=f"pid {process.pid} to stop",
    )


async def submitted(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Wait (bounded) for a submitter to exit 0; return the JSON result it printed."""
    out, err = await asyncio.to_thread(process.communicate, timeout=SUBMIT_S)
    assert process.returncode == 0, f"the submitter exited {process.returncode}: {err.decode()}"
    result: dict[str, Any] = json.loads(out)
    return result


@dataclass(frozen=True, slots=True)
class Share:
    """What one worker host summed, by its metrics: chunks recorded (not repeats), numbers."""

    chunks: int
    numbers: int


async def metrics_of(cluster: Cluster, host: str) -> str:
    """Return a worker's metrics, read on its own host (so even while its cable is out)."""
    process = cluster.network.popen(
        host, [sys.executable, "-c", FETCH_METRICS], stdout=subprocess.PIPE
    )
    out, _ = await asyncio.to_thread(process.communicate, timeout=15)
    assert process.returncode == 0, f"could not read {host}'s metrics"
    return out.decode()


async def chunk_outcomes(cluster: Cluster, host: str) -> dict[str, float]:
    """Return a worker's chunk counts by outcome (done, duplicate, retried, failed)."""
    text = await metrics_of(cluster, host)
    return {outcome: float(n) for outcome, n in _CHUNK_OUTCOME.findall(text)}


async def shares(cluster: Cluster, hosts: Sequence[str]) -> dict[str, Share]:
    """Return what each worker host of ``hosts`` has summed so far."""
    texts = await asyncio.gather(*(metrics_of(cluster, host) for host in hosts))
    return {host: _share(text) for host, text in zip(hosts, texts, strict=True)}


def _share(text: str) -> Share:
    outcomes = dict(_CHUNK_OUTCOME.findall(text))
    numbers = _NUMBERS.search(text)
    assert numbers is not None, f"no chunksum_numbers_summed_total in {text!r}"
    return Share(int(float(outcomes["done"])), int(float(numbers[1])))


async def beat_of(watch: Client, pid: int, *, since: float = 0.0) -> WorkerInfo | None:
    """Return the live worker with ``pid`` if it beat after ``since`` (wall time), else None."""
    beats = [w for w in await watch.workers() if w.pid == pid and w.last_seen > since]
    return beats[0] if beats else None


async def wait_for_workers(watch: Client, pids: list[int]) -> list[WorkerInfo]:
    """Wait (bounded) until every one of ``pids`` is a live worker; return their beats."""

    async def all_live() -> list[WorkerInfo] | None:
        live = {w.pid: w for w in await watch.workers()}
        return [live[pid] for pid in pids] if all(pid in live for pid in pids) else None

    return await eventually(
        all_live, timeout_s=WORKERS_UP_S, every_s=POLL_S, what=f"workers {pids} to beat"
    )
