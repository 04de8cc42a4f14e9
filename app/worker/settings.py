"""arq Worker arguments for a chunksum worker: its jobs, queue, Redis, codec and hooks."""

from collections.abc import Sequence
from typing import Any

from arq.worker import Function, func

from app import codec
from app.connection import redis_settings
from app.keys import (
    SUM_CHUNK_JOB,
    SUM_CSV_JOB,
    SUM_CSV_TEXT_JOB,
    SUM_NPY_JOB,
    SUM_PARQUET_JOB,
    SUM_RANGE_JOB,
    SUM_TEXT_JOB,
    SUM_URL_JOB,
    Keys,
)
from app.settings import Settings
from app.worker.hooks import job_end, job_start, shutdown, startup
from app.worker.outage_retry import OutageRetry
from jobs.chunks import sum_chunk
from jobs.files import (
    sum_csv_range,
    sum_csv_text,
    sum_file_range,
    sum_npy_slice,
    sum_parquet_row_group,
    sum_text,
    sum_url_range,
)

# How often a plain arq worker's loop runs when it isn't waiting in the queue read (see
# app.worker.wakeup); ChunksumWorker doesn't pause.
LOOP_DELAY_S = 0.005
# arq's own limit must stay above the job's (jobs.chunks.CHUNK_TRIES): past it arq drops
# the job without a word to the run; kills (which the job can't count) use tries too
ARQ_MAX_TRIES = 20
# On SIGTERM/SIGINT a worker stops taking jobs and lets running chunks finish this long.
SHUTDOWN_GRACE_S = 10


def chunk_function(coroutine: Any, name: str) -> Function:
    """Register a chunk-summing job with arq, as ``sum_chunk`` is."""
    return func(coroutine, name=name, max_tries=ARQ_MAX_TRIES)


def worker_settings(settings: Settings, *, jobs: Sequence[Function] = ()) -> dict[str, Any]:
    """Return arq ``Worker`` keyword arguments for a chunksum worker with ``settings``.

    Args:
        jobs: further jobs to register beside ``sum_chunk`` (the bench's slow chunk).
    """
    return {
        "functions": [
            chunk_function(sum_chunk, SUM_CHUNK_JOB),
            chunk_function(sum_file_range, SUM_RANGE_JOB),
            chunk_function(sum_text, SUM_TEXT_JOB),
            chunk_function(sum_npy_slice, SUM_NPY_JOB),
            chunk_function(sum_parquet_row_group, SUM_PARQUET_JOB),
            chunk_function(sum_csv_range, SUM_CSV_JOB),
            chunk_function(sum_csv_text, SUM_CSV_TEXT_JOB),
            chunk_function(sum_url_range, SUM_URL_JOB),
            *jobs,
        ],
        "queue_name": Keys(settings.key_prefix).queue,
        "redis_settings": redis_settings(settings),
        "job_serializer": codec.dumps,
        "job_deserializer": codec.loads,
        "keep_result": 0,  # partials go to the run's inbox; arq's result keys would be waste
        "max_jobs": settings.worker_max_jobs,
        "job_timeout": settings.job_timeout_s,
        "poll_delay": LOOP_DELAY_S,
        "job_completion_wait": SHUTDOWN_GRACE_S,
        "ctx": {"settings": settings},
        "on_startup": startup,
        "on_shutdown": shutdown,
        "on_job_start": job_start,
        "on_job_end": job_end,
    }


def arq_worker_settings(settings: Settings) -> dict[str, Any]:
    """Return the arq ``Worker`` keyword arguments that ``arq app.worker.WorkerSettings``
    runs: :func:`worker_settings`, with redis-py retrying commands through a Redis outage of
    up to ``CHUNKSUM_OUTAGE_S`` (app.worker.outage_retry), which arq's own loop can't ride out.
    """
    retry = OutageRetry(settings.outage_s)
    return {**worker_settings(settings), "redis_settings": redis_settings(settings, retry=retry)}
