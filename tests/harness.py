"""Test harness: free ports, waits for a condition, in-process arq workers, and real worker
subprocesses."""

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from arq.connections import ArqRedis
from arq.worker import Worker

from app.bench.slow_chunks import worker_settings
from app.keys import Keys
from app.runs import RunStore
from app.settings import Settings
from app.submit import Client
from app.worker.chunksum_worker import ChunksumWorker

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    what: str,
    timeout_s: float = 5.0,
    every_s: float = 0.01,
) -> T:
    """Await ``probe()`` until it returns a truthy value, and return that value.

    The one place the tests poll: Redis's state, a server's or a subprocess's offers no
    in-process event to wait on. The probe returns what the caller wants (run ids, a
    worker's beat), or True once a comparison holds.

    Args:
        what: what is awaited, for the failure message.
        timeout_s: after this the test fails (AssertionError naming ``what`` and the
            probe's last value); a probe still running then is cancelled.
        every_s: the pause between probes.
    """
    last: object = "no answer yet"
    timer = asyncio.timeout(timeout_s)
    try:
        async with timer:
            while not (value := await probe()):
                last = value
                await asyncio.sleep(every_s)
    except TimeoutError:
        if not timer.expired():
            raise  # the probe's own
        raise AssertionError(f"waited {timeout_s:g} s for {what}; last saw {last!r}") from None
    return value


async def no_jobs_left(client: Client) -> bool:
    """Whether no chunk job is queued or running (a failed run's running ones finish)."""
    return await client.queue_depth() == 0


def eventually_sync(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout_s: float = 5.0,
    every_s: float = 0.01,
) -> T:
    """Call ``probe()`` until it returns a truthy value, and return that value: the twin of
    :func:`eventually` for code that runs in a thread or outside an event loop.

    Args:
        what: what is awaited, for the failure message.
        timeout_s: after this the test fails (AssertionError naming ``what`` and the
            probe's last value).
        every_s: the pause between probes.
    """
    deadline = time.monotonic() + timeout_s
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:g} s for {what}; last saw {value!r}")
        time.sleep(every_s)
    return value


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, worker_class: type[Worker] = ChunksumWorker, **options: Any
) -> AsyncIterator[Worker]:
    """Run an in-process worker with chunksum's settings until the block exits.

    Args:
        worker_class: ``arq.worker.Worker`` for what ``arq app.worker.WorkerSettings`` runs.
    """
    worker = worker_class(**{**worker_settings(settings), "handle_signals": False, **options})
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        await stop_worker(worker, task, Keys(settings.key_prefix))


async def stop_worker(worker: Worker, task: asyncio.Task[None], keys: Keys) -> None:
    """Stop an in-process worker without cancelling it inside a Redis call.

    arq's close() cancels the worker loop wherever it is; cancelled inside start_jobs'
    WATCH pipeline, redis-py leaves the pipeline holding a connection. So: stop taking
    jobs, let the loop finish its current pass, let running jobs end, then stop and close.
    """
    worker.allow_pick_jobs = False
    if worker.main_task is not None and not worker.main_task.done():  # not a finished burst
        passed = asyncio.Event()
        heart_beat = worker.heart_beat

        async def beat() -> None:
            await heart_beat()
            passed.set()

        worker.heart_beat = beat  # type: ignore[method-assign]
        await worker.pool.publish(keys.wake_channel, "stop")  # end an idle queue wait now
        await asyncio.wait_for(passed.wait(), 10)
    if worker.tasks:
        await asyncio.wait(worker.tasks.values(), timeout=10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await worker.close()


def worker_command(*args: str, log_level: str = "warning") -> list[str]:
    """Return the command line of ``chunksum worker ARGS``, run by this interpreter, with
    the bench's slow chunk job registered too (``python -m app.bench.worker``)."""
    return [sys.executable, "-m", "app.bench.worker", "--log-level", log_level, *args]


def process_env(settings: Settings) -> dict[str, str]:
    """Return the environment for a chunksum subprocess using ``settings``."""
    return {**os.environ, **settings.to_env()}


@contextlib.asynccontextmanager
async def worker_process(settings: Settings, *args: str) -> AsyncIterator[Any]:
    """Run ``chunksum worker`` (which can also run slow chunks) in a real subprocess until
    the block exits."""
    process = await asyncio.create_subprocess_exec(
        *worker_command(*args), env=process_env(settings), cwd=ROOT
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), 15)


async def run_ids(redis: ArqRedis, keys: Keys) -> list[str]:
    """Return the ids in a deployment's index of runs, oldest first."""
    return [run_id.decode() for run_id in await redis.zrange(keys.runs, 0, -1)]


async def queue_holds(redis: ArqRedis, keys: Keys, jobs: int) -> bool:
    """Return whether a deployment's queue holds at least ``jobs`` jobs."""
    return bool(await redis.zcard(keys.queue) >= jobs)


async def read_hash(redis: ArqRedis, key: str) -> dict[bytes, bytes]:
    """Return a hash's raw fields (redis-py types HGETALL as maybe-awaitable)."""
    return await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(key))


async def create_run(runs: RunStore, run_id: str, *, chunks: int, count: int | None = None) -> None:
    """Store a new queued run, sealed: its ``chunks`` jobs are (to be) enqueued by hand, with
    ``count`` numbers in them if that is known."""
    async with runs.redis.pipeline(transaction=True) as pipe:
        runs.add_create(pipe, run_id, chunks=chunks, sender_lease_s=None)
        runs.add_seal(pipe, run_id, chunks=chunks, count=count)
        await pipe.execute()


async def expire_together(redis: ArqRedis, *keys: str) -> bool:
    """Return whether every key has an expiry, all within 100 ms of each other (as set by
    one script: PTTL, as TTL's rounding may split them across a second)."""
    left_ms = [int(await redis.pttl(key)) for key in keys]
    return min(left_ms) > 0 and max(left_ms) - min(left_ms) < 100
