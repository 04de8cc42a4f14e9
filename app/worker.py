"""Worker settings, for ``chunksum worker`` (the Procfile) and ``arq app.worker.WorkerSettings``.

``chunksum worker`` runs them in :class:`app.claims.ChunksumWorker`, which claims jobs a
batch per round trip; arq's own CLI can only run its plain ``Worker`` with them, which
claims one job per four round trips. Both kinds can serve one queue together.
"""

from typing import Any

from arq.worker import func

from app import codec
from app.claims import WORKER, ChunksumWorker
from app.connection import close_sentinels, keep_alive, redis_settings
from app.heartbeat import Heartbeat
from app.keys import SUM_CHUNK_JOB, Keys, arq_in_progress_key
from app.lease import Lease
from app.replication import Replicas
from app.runs import RunStore
from app.settings import Settings
from app.wakeup import QueueWaker
from jobs.chunks import sum_chunk

# How often a plain arq worker's loop runs when it isn't waiting in the queue read (see
# app.wakeup); ChunksumWorker doesn't pause.
LOOP_DELAY_S = 0.005
ARQ_MAX_TRIES = 20
# On SIGTERM/SIGINT a worker stops taking jobs and lets running chunks finish this long.
SHUTDOWN_GRACE_S = 10


async def startup(ctx: dict[str, Any]) -> None:
    """Open what the jobs share: the run store, the queue waker, the heartbeat."""
    settings: Settings = ctx["settings"]
    await keep_alive(ctx["redis"])  # first: arq opened the pool without it
    keys = Keys(settings.key_prefix)
    ctx["runs"] = RunStore(
        ctx["redis"], keys, ttl_s=settings.result_ttl_s, replicas=Replicas.for_settings(settings)
    )
    worker: ChunksumWorker | None = ctx.get(WORKER)  # None under `arq app.worker....`
    on_run_ended = None if worker is None else worker.run_ended
    waker = QueueWaker(ctx["redis"], keys, idle_s=settings.worker_poll_s, on_run_ended=on_run_ended)
    ctx["waker"] = waker
    await waker.start()
    stats = None if worker is None else worker.stats
    ctx["heartbeat"] = heartbeat = Heartbeat(ctx["redis"], keys, stats)
    heartbeat.start()


async def job_start(ctx: dict[str, Any]) -> None:
    """Take a lease on the job, so that if this worker dies another takes it soon (app.lease)."""
    settings: Settings = ctx["settings"]
    key = arq_in_progress_key(ctx["job_id"])
    ctx["lease"] = lease = Lease(ctx["redis"], key, lease_s=settings.lease_s)
    lease.start(leased=WORKER in ctx)  # a ChunksumWorker claims on a lease


async def job_end(ctx: dict[str, Any]) -> None:
    """Stop renewing the job's lease."""
    await ctx["lease"].stop()


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close what :func:`startup` opened."""
    if "heartbeat" in ctx:
        await ctx["heartbeat"].stop()
    if "waker" in ctx:
        await ctx["waker"].close()
    await close_sentinels(ctx["redis"])  # arq closes the pool itself, after this


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Return arq ``Worker`` keyword arguments for a chunksum worker with ``settings``."""
    return {
        # arq's own limit must stay above the job's (CHUNK_TRIES): past it arq drops the job
        # without a word to the run; kills (which the job can't count) use tries too
        "functions": [func(sum_chunk, name=SUM_CHUNK_JOB, max_tries=ARQ_MAX_TRIES)],
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


# arq takes a dict of Worker arguments as readily as a class: `arq app.worker.WorkerSettings`.
WorkerSettings: dict[str, Any] = worker_settings(Settings.from_env())
