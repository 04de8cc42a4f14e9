"""Chunks that first await a simulated I/O: for W6, `chunksum bench --scaling`, and tests.

A chunk job that waits on I/O is what lets a worker overlap many chunks. The slow chunk
job (``jobs.bench.sum_chunk_after_io``) is registered only by the bench's worker
(:data:`WORKER_COMMAND`, or :func:`worker_settings` in-process), never by `chunksum worker`.
"""

import sys
from typing import Any, Unpack

from arq.worker import Function

from app.bench.keys import SLOW_CHUNK_JOB
from app.bench.workloads import RUN_TIMEOUT_S
from app.chunking import Numbers
from app.queue import ChunkJob
from app.settings import Settings
from app.submission import RunResult, Submission, SubmitOptions
from app.submit import Client
from app.worker import worker_settings as chunksum_worker_settings
from app.worker.settings import chunk_function
from jobs.bench import sum_chunk_after_io

WORKER_COMMAND = (sys.executable, "-m", "app.bench.worker", "--log-level", "warning")


def slow_jobs() -> list[Function]:
    """Return the arq functions a worker needs to run slow chunks."""
    return [chunk_function(sum_chunk_after_io, SLOW_CHUNK_JOB)]


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Return arq Worker arguments for a chunksum worker that also runs slow chunks."""
    return chunksum_worker_settings(settings, jobs=slow_jobs())


async def submit_slow(
    client: Client, numbers: Numbers, *, io_s: float, **options: Unpack[SubmitOptions]
) -> RunResult:
    """Submit as ``client.submit`` does, each chunk's job first awaiting ``io_s`` seconds."""
    job = ChunkJob(SLOW_CHUNK_JOB, {"io_s": io_s})
    queue, runs, settings = client.queue, client.runs, client.settings
    return await Submission(queue, runs, settings, numbers, job=job, **options).run()


async def submit_with_io(
    client: Client, numbers: Numbers, *, io_s: float, chunks: int
) -> RunResult:
    """Submit with chunksum's own chunk job, or slow chunks if ``io_s`` is above 0; a run
    may take up to the bench's RUN_TIMEOUT_S."""
    if io_s:
        return await submit_slow(client, numbers, io_s=io_s, chunks=chunks, timeout=RUN_TIMEOUT_S)
    return await client.submit(numbers, chunks=chunks, timeout=RUN_TIMEOUT_S)
