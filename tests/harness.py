"""Test harness: free ports, in-process arq workers, and real worker subprocesses."""

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, cast

from arq.connections import ArqRedis
from arq.worker import Worker

from app.bench.slow_chunks import worker_settings
from app.keys import Keys
from app.settings import Settings
from app.worker.chunksum_worker import ChunksumWorker

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def process_env(settings: Settings) -> dict[str, str]:
    """Return the environment for a chunksum subprocess using ``settings``."""
    return {**os.environ, **settings.to_env()}


@contextlib.asynccontextmanager
async def worker_process(settings: Settings, *args: str) -> AsyncIterator[Any]:
    """Run ``chunksum worker`` (which can also run slow chunks) in a real subprocess until
    the block exits."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.bench.worker",  # `chunksum worker`, which also runs the bench's slow chunks
        "--log-level",
        "warning",
        *args,
        env=process_env(settings),
        cwd=ROOT,
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


async def read_hash(redis: ArqRedis, key: str) -> dict[bytes, bytes]:
    """Return a hash's raw fields (redis-py types HGETALL as maybe-awaitable)."""
    return await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(key))
