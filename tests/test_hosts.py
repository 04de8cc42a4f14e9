"""Several hosts on a private network: Redis, three `chunksum worker`s and a submitter,
each in a network namespace (tests.netns, tests.cluster). A run is shared by the worker
hosts; a file they all see is read by reference, and one only the submitter sees travels
as raw bytes; a worker's cable is pulled mid-run, and plugged back in.
"""

import asyncio
import functools
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import pytest

from app.heartbeat import BEAT_S, EXPIRES_S, WorkerInfo
from app.keys import arq_in_progress_key, job_pattern
from app.run_status import RunStatus
from app.settings import Settings
from app.submit import Client
from tests.cluster import (
    POLL_S,
    SUBMIT_S,
    Cluster,
    Share,
    beat_of,
    chunk_outcomes,
    pause,
    running_cluster,
    shares,
    start_cli_submit,
    start_on_sub,
    start_submit,
    start_worker,
    submitted,
    wait_for_workers,
)
from tests.harness import eventually
from tests.netns import ip, require_netns, stop

WORKER_HOSTS = ("w1", "w2", "w3")
HOSTS = ("redis", *WORKER_HOSTS, "sub")
STOP_GRACE_S = 15.0
RESUBSCRIBE_S = 15.0  # time for TCP keepalive probes (after 10 s idle) to find a dead connection
SUBMIT = ("-m", "app.cli", "submit")  # `chunksum submit`, by this interpreter
CLI_SUBMIT = ("--json", "-q", "--timeout", "20")
INT64, BIG, BIG_EVERY = 10**18, 10**30, 1000  # the test files' numbers (write_numbers)
# Runs "$@" with a file only it sees: in a mount namespace of its own (unshare), it mounts
# a tmpfs on $1 (an empty directory for every other process) and copies $2 into it.
PRIVATE_FILE = 'mount -t tmpfs chunksum "$1" && cp "$2" "$1/" && shift 2 && exec "$@"'

# The slow runs' submitter uses the bench's slow chunks (app.bench.slow_chunks), which
# `chunksum submit` has no option for, and prints the result as `chunksum submit --json` does.
SUBMIT_SLOW_CHUNKS = """
import asyncio, json, sys
from app.bench.slow_chunks import submit_slow
from app.settings import Settings
from app.submit import Client

async def main(last: int, chunks: int, io_s: float) -> None:
    async with Client(Settings.from_env()) as client:
        result = await submit_slow(client, range(1, last + 1), chunks=chunks, timeout=30, io_s=io_s
        )
    fields = ("run_id", "total", "count", "chunks", "elapsed_s")
    print(json.dumps({name: getattr(result, name) for name in fields}))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
"""
# A source that yields a chunk's numbers every EVERY_S: the run stays open (not sealed) and
# its chunks arrive one by one. The wait blocks the submitter's loop a moment, as a slow
# synchronous source would; it stands in for one.
SUBMIT_STREAM = """
import asyncio, json, sys, time
from app.bench.slow_chunks import submit_slow
from app.settings import Settings
from app.submit import Client

def slowly(last: int, per_chunk: int, every_s: float):
    for number in range(1, last + 1):
        if number % per_chunk == 1:
            time.sleep(every_s)
        yield number

async def main(last: int, per_chunk: int, every_s: float, io_s: float) -> None:
    numbers = slowly(last, per_chunk, every_s)
    async with Client(Settings.from_env()) as client:
        result = await submit_slow(client, numbers, chunk_size=per_chunk, timeout=40, io_s=io_s
        )
    fields = ("run_id", "total", "count", "chunks", "elapsed_s")
    print(json.dumps({name: getattr(result, name) for name in fields}))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])))
"""


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """Build the network, start Redis on "redis"; on exit kill everything and remove it."""
    require_netns()
    with running_cluster(HOSTS) as built:
        yield built


def start_slow_submit(
    cluster: Cluster, settings: Settings, last: int, chunks: int, io_s: float
) -> subprocess.Popen[bytes]:
    """Start a submitter on host "sub" whose chunks each first wait ``io_s``."""
    return start_submit(
        cluster, settings, "-c", SUBMIT_SLOW_CHUNKS, *map(str, (last, chunks, io_s))
    )


async def busy(watch: Client, pid: int, slots: int) -> WorkerInfo | None:
    """Return the worker's beat if it is running chunks now: its last beat says so, and the
    queue holds more jobs than every worker has slots, so it has had none free since."""
    beat = await beat_of(watch, pid, since=time.time() - BEAT_S)
    if beat is None or not beat.running or await watch.queue_depth() <= slots:
        return None
    return beat


async def clients_from(watch: Client, address: str) -> list[dict[str, str]]:
    """Return the Redis server's view of the connections from ``address`` (CLIENT LIST)."""
    clients = cast(list[dict[str, str]], await watch.redis.client_list())
    return [client for client in clients if client["addr"].rsplit(":", 1)[0] == address]


@pytest.mark.netns
@pytest.mark.timeout(45)
async def test_a_run_across_hosts_is_exact_and_shared(cluster: Cluster) -> None:
    """`chunksum submit` on one host, three `chunksum worker` hosts: the total is exact and
    more than one worker host summed chunks."""
    last, chunks = 2_000_000, 100
    settings = replace(cluster.settings, worker_max_jobs=4)
    workers = [start_worker(cluster, settings, host) for host in WORKER_HOSTS]
    async with Client(cluster.observer(settings)) as watch:
        await wait_for_workers(watch, [worker.pid for worker in workers])
        result = await submitted(start_cli_submit(cluster, settings, last, chunks))
        assert (result["total"], result["chunks"]) == (last * (last + 1) // 2, chunks)
        run = await watch.status(result["run_id"])
        assert (run.status, run.done_chunks) == ("done", chunks)

        async def counted() -> dict[int, int] | None:  # once heartbeats count every chunk
            done = {w.pid: w.done or 0 for w in await watch.workers()}
            return done if sum(done.values()) >= chunks else None

        done = await eventually(
            counted, timeout_s=3 * BEAT_S, every_s=POLL_S, what="heartbeats to count the chunks"
        )
    shares = [done.get(worker.pid, 0) for worker in workers]
    print(f"\nnetns: {chunks} chunks in {result['elapsed_s']:.2f} s, by host {shares}")
    assert sum(1 for share in shares if share) >= 2, f"one host did every chunk: {shares}"


@pytest.mark.netns
@pytest.mark.timeout(60)
async def test_a_shared_file_is_read_by_reference_on_every_worker_host(
    cluster: Cluster, tmp_path: Path
) -> None:
    """`chunksum submit --file --shared` on one host, of a file every host sees: the three
    worker hosts read its byte ranges themselves, each sums some, and the total is exact."""
    path = tmp_path / "numbers.txt"  # the hosts share the filesystem, as NFS clients would
    lines, ranges = 240_000, 60
    total = write_numbers(path, lines, seed=12)
    # a range at a time, and a lease that outlasts the turns (take_turns)
    settings = replace(cluster.settings, worker_max_jobs=1, lease_s=60.0)
    workers = {host: start_worker(cluster, settings, host) for host in WORKER_HOSTS}
    async with Client(cluster.observer(settings)) as watch:
        await wait_for_workers(watch, [worker.pid for worker in workers.values()])
        for worker in workers.values():
            await asyncio.to_thread(pause, worker)
        shared = ("--file", str(path), "--shared", "--chunks", str(ranges), *CLI_SUBMIT)
        submit = start_submit(cluster, settings, *SUBMIT, *shared)
        await take_turns(watch, workers)
        result = await submitted(submit)
        run = await watch.status(result["run_id"])
    assert (run.status, run.total, run.done_chunks) == ("done", total, ranges)
    # ints past 2**53 travel in JSON as strings: compared digit for digit
    assert (result["total"], result["count"], result["chunks"]) == (str(total), lines, ranges)
    # a worker counts a range in its metrics just after recording it: wait for the last ones
    by_host = await eventually(
        lambda: summed_by_hosts(cluster, ranges),
        timeout_s=30,
        every_s=POLL_S,
        what="every range counted",
    )
    print(f"\nnetns: {ranges} ranges in {result['elapsed_s']:.2f} s, by host {by_host}")
    assert sum(share.numbers for share in by_host.values()) == lines
    assert all(share.chunks for share in by_host.values()), f"a host summed no range: {by_host}"


@pytest.mark.netns
@pytest.mark.timeout(60)
async def test_a_file_only_the_submitter_sees_travels_as_raw_bytes(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A file in the submitter's own mount namespace: submitted by reference, the run fails,
    the workers saying they cannot read it, and no total is written; without --shared its
    lines travel to them as raw blocks, and the total is exact."""
    source, private = tmp_path / "numbers.txt", tmp_path / "private"
    private.mkdir()  # empty here and on every worker host; the submitter mounts its own
    path = private / source.name
    lines, block_bytes = 120_000, 256 << 10
    total = write_numbers(source, lines, seed=34)
    workers = [start_worker(cluster, cluster.settings, host) for host in WORKER_HOSTS]
    async with Client(cluster.observer(cluster.settings)) as watch:
        await wait_for_workers(watch, [worker.pid for worker in workers])
        refused = start_private_submit(cluster, source, private, "--shared", *CLI_SUBMIT)
        _, err = await asyncio.to_thread(refused.communicate, timeout=SUBMIT_S)
        failed = await latest_run(watch)
        raw = ("--chunk-bytes", str(block_bytes), *CLI_SUBMIT)
        result = await submitted(start_private_submit(cluster, source, private, *raw))
        run = await watch.status(result["run_id"])
    assert refused.returncode == 1, err.decode()
    assert f"a worker cannot read {str(path)!r} (No such file or directory)" in err.decode()
    assert failed is not None
    assert (failed.status, failed.total) == ("failed", None)
    assert failed.error is not None
    assert f"cannot read {str(path)!r}" in failed.error
    assert (run.status, run.total, run.count) == ("done", total, lines)
    assert (result["total"], result["count"]) == (str(total), lines)
    assert result["chunks"] >= source.stat().st_size // block_bytes  # in blocks of lines
    assert not path.exists()  # nor here: the file was only ever the submitter's
    print(f"\nnetns: raw, {result['chunks']} blocks in {result['elapsed_s']:.2f} s")


def write_numbers(path: Path, lines: int, *, seed: int) -> int:
    """Write ``lines`` random ints to ``path``, one a line; return their exact sum.

    Most are int64s; every BIG_EVERY-th is past int64, so that every range or block holds
    one, which the workers parse line by line into Python ints; the first, 10**40, makes
    the total a JSON string, compared digit for digit.
    """
    rng = random.Random(seed)
    numbers = [10**40]
    for line in range(1, lines):
        bound = BIG if line % BIG_EVERY == 0 else INT64
        numbers.append(rng.randint(-bound, bound))
    path.write_text("".join(f"{number}\n" for number in numbers))
    return sum(numbers)


def start_private_submit(
    cluster: Cluster, source: Path, private: Path, *args: str
) -> subprocess.Popen[bytes]:
    """Start `chunksum submit --file PRIVATE/NAME ARGS` on "sub", a copy of ``source`` in a
    tmpfs on ``private`` that only it sees (a mount namespace of its own)."""
    submit = (*SUBMIT, "--file", str(private / source.name), *args)
    return start_on_sub(
        cluster,
        cluster.settings,
        *("unshare", "--mount", "--propagation", "private"),
        *("sh", "-c", PRIVATE_FILE, "sh", str(private), str(source), sys.executable, *submit),
    )


async def take_turns(watch: Client, paused: dict[str, subprocess.Popen[bytes]]) -> None:
    """Let each paused worker at the newest run alone, in turn, until it has claimed one of
    its chunks; then let them all run on.

    Which idle worker claims first, and how often, is a race that a host slow to be
    scheduled (two cores, other tests) can lose for a whole short run. Paused (SIGSTOP), a
    worker claims nothing and keeps what it holds (for the lease), so whatever changes in
    the run while one runs alone is its doing, and a chunk it claimed is one it records.
    """
    run = await eventually(lambda: latest_run(watch), timeout_s=15, every_s=POLL_S, what="the run")
    for host, worker in paused.items():
        before = await progress(watch, run.run_id)
        worker.send_signal(signal.SIGCONT)
        await eventually(
            functools.partial(moved, watch, run.run_id, before),
            timeout_s=15,
            every_s=0.01,  # before it has claimed every chunk
            what=f"{host} to claim a chunk",
        )
        await asyncio.to_thread(pause, worker)
    for worker in paused.values():
        worker.send_signal(signal.SIGCONT)


async def progress(watch: Client, run_id: str) -> tuple[set[str], int]:
    """Return a run's chunk jobs in progress, and how many chunks it has recorded."""
    held = await held_chunks(watch, run_id)
    return set(held or ()), (await watch.status(run_id)).done_chunks


async def moved(watch: Client, run_id: str, before: tuple[set[str], int]) -> bool | None:
    """Return True once a chunk of the run is in progress or recorded that was not ``before``."""
    held, done = await progress(watch, run_id)
    return True if held - before[0] or done > before[1] else None


async def summed_by_hosts(cluster: Cluster, chunks: int) -> dict[str, Share] | None:
    """Return what each worker host summed, once their metrics count ``chunks`` in all."""
    by_host = await shares(cluster, WORKER_HOSTS)
    return by_host if sum(share.chunks for share in by_host.values()) >= chunks else None


@dataclass
class CutRun:
    """The cut test's workers, settings and what it measured (seconds)."""

    cluster: Cluster
    settings: Settings
    watch: Client
    workers: dict[str, subprocess.Popen[bytes]]
    w1_worker_id: str  # its heartbeat's id, new in each worker process
    cut_to_done_s: float = 0.0
    restore_to_beat_s: float = 0.0
    second_run_s: float = 0.0

    @property
    def w1(self) -> subprocess.Popen[bytes]:
        """Return the worker whose cable is pulled."""
        return self.workers["w1"]


@pytest.mark.netns
@pytest.mark.timeout(60)
async def test_cut_worker_is_taken_over_and_recovers_in_place(cluster: Cluster) -> None:
    """A worker host cut off mid-run: the others take its chunks over and the run ends
    exact, each chunk counted once; plugged back in, the same process beats again, and
    alone sums a second run."""
    settings = replace(cluster.settings, lease_s=1.0, worker_max_jobs=2)
    workers = {host: start_worker(cluster, settings, host) for host in WORKER_HOSTS}
    async with Client(cluster.observer(settings)) as watch:
        w1_beat, *_ = await wait_for_workers(watch, [worker.pid for worker in workers.values()])
        test = CutRun(cluster, settings, watch, workers, w1_beat.worker_id)
        result = await cut_mid_run(test)
        await restore_after_beat_lapses(test)
        # the chunks w1 held when cut off end late, as repeats: nothing is counted twice
        settled = await eventually(
            lambda: idle(watch, test.w1.pid), timeout_s=15, every_s=POLL_S, what="w1 idle"
        )
        outcomes = await chunk_outcomes(cluster, "w1")
        again = await watch.status(result["run_id"])
        assert (again.status, again.done_chunks, again.total) == (
            "done",
            result["chunks"],
            result["total"],
        )
        second = await second_run_alone(test, done_before=settled.done or 0)
    print(
        f"\nnetns: cut->done {test.cut_to_done_s:.2f} s, restore->beat "
        f"{test.restore_to_beat_s:.2f} s, second run {test.second_run_s:.2f} s "
        f"({second['elapsed_s']:.2f} s in the submitter); w1's chunk metrics {outcomes}; "
        f"its heartbeat once idle: done {settled.done}, failed {settled.failed}, "
        f"retried {settled.retried}"
    )


async def cut_mid_run(test: CutRun) -> dict[str, Any]:
    """Start a slow run, cut w1 off while it runs chunks; return the run's result."""
    last, chunks, io_s = 480_000, 48, 0.5
    submit = start_slow_submit(test.cluster, test.settings, last, chunks, io_s)
    slots = len(test.workers) * test.settings.worker_max_jobs
    await eventually(
        lambda: busy(test.watch, test.w1.pid, slots), timeout_s=15, every_s=POLL_S, what="w1 busy"
    )
    cut_at = time.monotonic()
    await asyncio.to_thread(test.cluster.network.cut, "w1")
    result = await submitted(submit)
    test.cut_to_done_s = time.monotonic() - cut_at
    assert result["total"] == last * (last + 1) // 2
    run = await test.watch.status(result["run_id"])
    assert (run.status, run.done_chunks, result["chunks"]) == ("done", chunks, chunks)
    return result


async def restore_after_beat_lapses(test: CutRun) -> WorkerInfo:
    """Wait for w1's heartbeat to lapse, plug it back in; return its first fresh beat."""
    pid = test.w1.pid
    await eventually(
        lambda: gone(test.watch, pid),
        timeout_s=EXPIRES_S + 5,
        every_s=POLL_S,
        what="w1's beat to lapse",
    )
    restored_at, restored_wall = time.monotonic(), time.time()
    await asyncio.to_thread(test.cluster.network.restore, "w1")
    beat = await eventually(
        lambda: beat_of(test.watch, pid, since=restored_wall),
        timeout_s=30,
        every_s=POLL_S,
        what="w1 to beat again after its cable is back",
    )
    test.restore_to_beat_s = time.monotonic() - restored_at
    # the same process, never restarted
    assert (test.w1.poll(), beat.worker_id) == (None, test.w1_worker_id)
    return beat


async def second_run_alone(test: CutRun, done_before: int) -> dict[str, Any]:
    """Stop w2 and w3; w1 alone sums a second run. Return its result."""
    for host in ("w2", "w3"):
        assert await asyncio.to_thread(stop, test.workers[host], grace_s=STOP_GRACE_S) == 0
    assert [w.pid for w in await test.watch.workers()] == [test.w1.pid]
    last, chunks = 200_000, 20
    started = time.monotonic()
    result = await submitted(start_cli_submit(test.cluster, test.settings, last, chunks))
    test.second_run_s = time.monotonic() - started
    assert result["total"] == last * (last + 1) // 2
    await eventually(
        lambda: did(test.watch, test.w1.pid, done_before + chunks),
        timeout_s=3 * BEAT_S,
        every_s=POLL_S,
        what="w1's heartbeat to count the second run's chunks",
    )
    return result


async def gone(watch: Client, pid: int) -> bool | None:
    """Return True once ``pid`` is no live worker."""
    return True if await beat_of(watch, pid) is None else None


async def idle(watch: Client, pid: int) -> WorkerInfo | None:
    """Return the worker's beat once a fresh one says it runs nothing."""
    beat = await beat_of(watch, pid, since=time.time() - BEAT_S)
    return beat if beat is not None and beat.running == 0 else None


async def did(watch: Client, pid: int, done: int) -> WorkerInfo | None:
    """Return the worker's beat once it counts at least ``done`` jobs done."""
    beat = await beat_of(watch, pid)
    return beat if beat is not None and (beat.done or 0) >= done else None


async def retried(cluster: Cluster, host: str, at_least: int) -> float | None:
    """Return how many chunk jobs on ``host`` lost Redis and were retried, once enough were."""
    count = (await chunk_outcomes(cluster, host)).get("retried", 0.0)
    return count if count >= at_least else None


async def latest_run(watch: Client) -> RunStatus | None:
    """Return the newest run, once there is one."""
    runs = await watch.recent_runs(1)
    return runs[0] if runs else None


async def held_chunks(watch: Client, run_id: str) -> list[str] | None:
    """Return the run's chunk jobs running now (arq in-progress keys), once there are any."""
    keys = await watch.redis.keys(arq_in_progress_key(job_pattern(run_id)))
    return [key.decode().removeprefix(arq_in_progress_key("")) for key in keys] or None


async def finished(watch: Client, job_ids: list[str]) -> bool | None:
    """Return True once none of ``job_ids`` is in the queue: each has been run to its end."""
    scores = [await watch.redis.zscore(watch.keys.queue, job) for job in job_ids]
    return True if all(score is None for score in scores) else None


@pytest.mark.netns
@pytest.mark.timeout(60)
async def test_a_short_cut_mid_run_leaves_the_run_exact(cluster: Cluster) -> None:
    """A worker host cut off mid-run, its chunks taken over, plugged back in while the run
    goes on: the run still ends done and exact, each chunk counted once."""
    last, per_chunk, every_s, io_s = 80_000, 1000, 0.25, 1.0
    settings = replace(cluster.settings, lease_s=1.0, worker_max_jobs=2)
    others = replace(settings, worker_max_jobs=32)  # slots for every chunk: prompt takeover
    w1 = start_worker(cluster, settings, "w1")
    async with Client(cluster.observer(settings)) as watch:
        await wait_for_workers(watch, [w1.pid])
        args = (SUBMIT_STREAM, *map(str, (last, per_chunk, every_s, io_s)))
        submit = start_submit(cluster, settings, "-c", *args)
        run = await eventually(
            lambda: latest_run(watch), timeout_s=15, every_s=POLL_S, what="the run"
        )
        # w1 is the only worker yet: every chunk running is its own
        held = await eventually(
            lambda: held_chunks(watch, run.run_id), timeout_s=15, every_s=POLL_S, what="w1 busy"
        )
        await asyncio.to_thread(cluster.network.cut, "w1")
        workers = [start_worker(cluster, others, host) for host in ("w2", "w3")]
        await wait_for_workers(watch, [worker.pid for worker in workers])
        await eventually(
            lambda: finished(watch, held),
            timeout_s=20,
            every_s=POLL_S,
            what="w1's chunks taken over",
        )
        # w1's own runs of them end when they can't record: they lose Redis and retry
        await eventually(
            lambda: retried(cluster, "w1", len(held)), timeout_s=15, every_s=POLL_S, what="w1 retry"
        )
        await asyncio.to_thread(cluster.network.restore, "w1")
        ended = await watch.wait(run.run_id, timeout=SUBMIT_S)
        assert (ended.status, ended.error) == ("done", None)
        result = await submitted(submit)
    assert result["total"] == ended.total == last * (last + 1) // 2
    assert ended.done_chunks == last // per_chunk
    print(f"\nnetns: cut mid-run, {len(held)} chunks taken over; exact, counted once")


@pytest.mark.netns
@pytest.mark.timeout(60)
async def test_a_worker_whose_connections_redis_dropped_while_cut_hears_wake_ups_again(
    cluster: Cluster,
) -> None:
    """A worker cut off while Redis forgets its connections (as after a Redis restart or
    failover, or Redis's own tcp-keepalive giving up on a long partition) subscribes to
    wake-ups again once plugged back in, and takes a new run's chunks at once, not at its
    next fallback queue read (a minute away)."""
    settings = replace(cluster.settings, worker_poll_s=60.0)
    w1 = start_worker(cluster, settings, "w1")
    address = cluster.network.address("w1")
    async with Client(cluster.observer(settings)) as watch:
        await wait_for_workers(watch, [w1.pid])
        await eventually(
            lambda: subscribed(watch, address), timeout_s=10, every_s=POLL_S, what="w1 to subscribe"
        )
        await asyncio.to_thread(cluster.network.cut, "w1")
        await asyncio.to_thread(forget_connections, cluster, address)
        await eventually(
            lambda: dropped(watch, address), timeout_s=10, every_s=POLL_S, what="Redis to drop w1"
        )
        # a cut long enough for w1 to drop out of the live workers, as in the cut test
        await eventually(
            lambda: gone(watch, w1.pid),
            timeout_s=EXPIRES_S + 5,
            every_s=POLL_S,
            what="w1's beat lapse",
        )
        restored_at, restored_wall = time.monotonic(), time.time()
        await asyncio.to_thread(cluster.network.restore, "w1")
        await eventually(
            lambda: beat_of(watch, w1.pid, since=restored_wall),
            timeout_s=30,
            every_s=POLL_S,
            what="beat",
        )
        await eventually(
            lambda: subscribed(watch, address),
            timeout_s=RESUBSCRIBE_S,
            every_s=POLL_S,
            what="w1 to subscribe again once its cable is back",
        )
        resubscribed_s = time.monotonic() - restored_at
        result = await submitted(start_cli_submit(cluster, settings, 100_000, 10))
    assert result["total"] == 100_000 * 100_001 // 2
    print(f"\nnetns: resubscribed {resubscribed_s:.2f} s after the cable was back")


def forget_connections(cluster: Cluster, address: str) -> None:
    """Make Redis's host drop its TCP connections from ``address``, telling nobody: the
    kernel aborts them (``ss -K``), and the reset it sends is lost while the cable is out."""
    ip("netns", "exec", cluster.network.hosts["redis"].namespace, "ss", "-K", "-tn", "dst", address)


async def subscribed(watch: Client, address: str) -> bool | None:
    """Return True once a connection from ``address`` is subscribed to channels."""
    clients = await clients_from(watch, address)
    return True if any(int(client["sub"]) > 0 for client in clients) else None


async def dropped(watch: Client, address: str) -> bool | None:
    """Return True once Redis holds no connection from ``address``."""
    return True if not await clients_from(watch, address) else None
