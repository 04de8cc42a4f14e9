"""The baselines `chunksum bench` compares chunksum with, measured in the same run.

(a) the obvious arq code a user writes in ten minutes: arq defaults, one pickled list per
chunk, ``gather(job.result())``; (a') the same code hand-tuned: msgpack, each chunk packed
as int64 or float64 bytes, 1 ms polls on both sides; (b) a single-process ``sum`` /
``numpy.sum``; (c) the raw Redis floor: one client pipelining ``SET`` then ``GET`` of the
same bytes, in the same chunks.
"""

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
from arq.connections import ArqRedis, create_pool
from arq.constants import result_key_prefix
from arq.jobs import Job
from redis import Redis

from app.bench.keys import NAIVE_QUEUE, NAIVE_SUM_JOB, TUNED_QUEUE, TUNED_SUM_JOB, floor_key
from app.bench.tuned_worker import TUNED_POLL_S
from app.bench.workloads import RUN_TIMEOUT_S, Timing, Values, Workload, bounds, measure, same
from app.connection import DEFAULT_REDIS_URL, redis_settings
from app.errors import ChunksumError
from app.settings import Settings
from app.worker_processes import WorkerProcesses

LOG_TAIL_BYTES = 2000
NAIVE_COMMAND = [sys.executable, "-m", "arq", "app.bench.naive_worker.WorkerSettings"]
TUNED_COMMAND = [sys.executable, "-m", "arq", "app.bench.tuned_worker.WorkerSettings"]
ARQ_POLL_S = 0.5  # arq's default result poll
IDLE_PINGS = 12  # W1i's: each after a random idle time
ROUND_TRIP_PINGS = 200


class ArqWorkers(WorkerProcesses):
    """Run ``count`` plain arq worker processes for an arq baseline until exit.

    They log as arq does by default (a line per job) into a temporary file, whose end is
    shown if a worker exits before it is stopped.
    """

    def __init__(self, count: int, settings: Settings, command: list[str]) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  # closed in stop()
        super().__init__(count, settings, command=command, output=self._log)

    def stop(self) -> None:
        """Stop the workers, first showing the log's end if one of them exited early."""
        if any(process.poll() is not None for process in self.processes):
            self._log.seek(max(0, self._log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            tail = self._log.read().decode(errors="replace")
            print(f"a plain arq worker exited early; its log ends:\n{tail}", file=sys.stderr)
        super().stop()
        self._log.close()


async def open_naive_pool(settings: Settings) -> ArqRedis:
    """Open the arq pool the obvious code uses: default pickle, the naive queue."""
    return await create_pool(redis_settings(settings), default_queue_name=NAIVE_QUEUE)


async def open_tuned_pool(settings: Settings) -> ArqRedis:
    """Open the arq pool the tuned code uses: msgpack, the tuned queue."""
    return await create_pool(
        redis_settings(settings),
        default_queue_name=TUNED_QUEUE,
        job_serializer=msgpack.packb,
        job_deserializer=msgpack.unpackb,
    )


def as_list(numbers: Values) -> list[Any]:
    """Return a chunk as the Python list the obvious code would pickle."""
    return numbers.tolist() if isinstance(numbers, np.ndarray) else list(numbers)


def packed(numbers: Values) -> tuple[bytes, str]:
    """Return a chunk as the tuned code sends it: int64 or float64 bytes, and their dtype."""
    array = np.asarray(numbers if isinstance(numbers, np.ndarray) else list(numbers))
    return array.tobytes(), array.dtype.str


async def naive_sum(
    pool: ArqRedis, numbers: Values, chunks: int, job_ids: list[str] | None = None
) -> int | float:
    """Sum ``numbers`` as the obvious arq code does: a job per chunk, then ``sum(gather(...))``.

    Args:
        job_ids: if given, the jobs' ids are appended, so their results can be deleted later.
    """
    args = ((as_list(numbers[start:stop]),) for start, stop in bounds(len(numbers), chunks))
    return await _arq_sum(pool, NAIVE_SUM_JOB, args, ARQ_POLL_S, job_ids)


async def tuned_sum(
    pool: ArqRedis, numbers: Values, chunks: int, job_ids: list[str] | None = None
) -> int | float:
    """Sum ``numbers`` as hand-tuned arq code does: packed chunks, results polled every 1 ms."""
    args = (packed(numbers[start:stop]) for start, stop in bounds(len(numbers), chunks))
    return await _arq_sum(pool, TUNED_SUM_JOB, args, TUNED_POLL_S, job_ids)


async def _arq_sum(
    pool: ArqRedis,
    name: str,
    chunks_args: Any,
    poll_s: float,
    job_ids: list[str] | None,
) -> int | float:
    """Enqueue a ``name`` job per chunk's arguments, then return ``sum(gather(results))``."""
    jobs = [_enqueued(await pool.enqueue_job(name, *args)) for args in chunks_args]
    results = (job.result(timeout=RUN_TIMEOUT_S, poll_delay=poll_s) for job in jobs)
    partials = await asyncio.gather(*results)
    if job_ids is not None:
        job_ids.extend(job.job_id for job in jobs)
    total: int | float = sum(partials)
    return total


ArqSum = Callable[[ArqRedis, Values, int, list[str] | None], Awaitable[int | float]]


@dataclass(frozen=True, slots=True)
class ArqBaseline:
    """An arq baseline: its key in the results, its label, its workers, pool and client code."""

    key: str
    label: str
    command: list[str]
    open_pool: Callable[[Settings], Awaitable[ArqRedis]]
    sums: ArqSum


ARQ_BASELINES = (
    ArqBaseline("naive", "obvious arq code", NAIVE_COMMAND, open_naive_pool, naive_sum),
    ArqBaseline("tuned", "hand-tuned arq", TUNED_COMMAND, open_tuned_pool, tuned_sum),
)


def _enqueued(job: Job | None) -> Job:
    if job is None:  # arq's answer to a duplicate job id; its random ids don't collide
        raise ChunksumError("arq refused a naive_sum job as a duplicate; run the bench again")
    return job


async def measure_arq(pool: ArqRedis, sums: ArqSum, workload: Workload, repeat: int) -> Timing:
    """Time an arq baseline's code on ``workload``, deleting its stored results between runs."""
    job_ids: list[str] = []

    async def forget() -> None:
        # arq keeps each result, arguments included, for an hour: W3 would pile up 100 MB a run
        if job_ids:
            await pool.delete(*(result_key_prefix + job_id for job_id in job_ids))
            job_ids.clear()

    return await measure(
        lambda: sums(pool, workload.numbers, workload.chunks, job_ids),
        lambda total: same(total, workload.expected),
        repeat=repeat,
        idle_max_s=workload.idle_max_s,
        after=forget,
    )


def local_sum(numbers: Values) -> int | float:
    """Sum in this process: ``numpy.sum`` of an array, ``sum`` of anything else."""
    if isinstance(numbers, np.ndarray):
        total: int | float = numbers.sum().item()
        return total
    return sum(numbers)


async def measure_local(workload: Workload, repeat: int) -> Timing:
    """Time :func:`local_sum` on ``workload``."""

    async def run() -> int | float:
        return local_sum(workload.numbers)

    return await measure(run, lambda total: same(total, workload.expected), repeat=repeat)


async def measure_floor(settings: Settings, workload: Workload, repeat: int) -> Timing:
    """Time one client's pipelined SET of every chunk's bytes, then GET of them all.

    The client is redis-py's synchronous one (in a thread): redis.asyncio copies big
    payloads through asyncio's write buffer, which takes longer than Redis itself. The
    bytes are made, and the keys deleted, outside the timing.
    """
    assert isinstance(workload.numbers, np.ndarray)
    array = workload.numbers
    payloads = [array[start:stop].tobytes() for start, stop in bounds(array.size, workload.chunks)]
    keys = [floor_key(index) for index in range(len(payloads))]
    with contextlib.closing(_sync_client(settings)) as client:

        def set_then_get() -> list[bytes]:
            pipe = client.pipeline(transaction=False)
            for key, payload in zip(keys, payloads, strict=True):
                pipe.set(key, payload)
            pipe.execute()
            for key in keys:
                pipe.get(key)
            got: list[bytes] = pipe.execute()
            return got

        async def delete() -> None:
            await asyncio.to_thread(client.delete, *keys)

        return await measure(
            lambda: asyncio.to_thread(set_then_get),
            lambda got: got == payloads,
            repeat=repeat,
            after=delete,
        )


async def measure_round_trip(redis: Any, workload: Workload) -> Timing:
    """Time PINGs on ``redis`` (chunksum's own kind of client) as ``workload``'s runs come:
    one after another (W1), or each after the same idle times as W1i's runs (a round trip
    from an idle process, which waits for the machine to wake it, is the longer one)."""

    async def ping() -> bool:
        return bool(await redis.ping())

    pings = IDLE_PINGS if workload.idle_max_s else ROUND_TRIP_PINGS
    return await measure(ping, bool, repeat=pings, idle_max_s=workload.idle_max_s)


def _sync_client(settings: Settings) -> Redis:
    url = settings.redis_url or DEFAULT_REDIS_URL
    options: dict[str, Any] = {"socket_timeout": RUN_TIMEOUT_S}
    if settings.redis_ca_file is not None and url.startswith("rediss:"):
        options["ssl_ca_certs"] = settings.redis_ca_file
    return Redis.from_url(url, **options)
