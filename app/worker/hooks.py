"""The worker's arq hooks: what it opens at start-up and closes at shutdown, and each job's
lease (app.lease) from its start to its end.

They serve both ``chunksum worker`` (a :class:`ChunksumWorker`, which gets the run-end
notices and reports its job counts in its heartbeat) and a plain ``arq`` worker.
"""

import time
from typing import Any

from app.connection import close_sentinels, redis_name
from app.eviction import check_eviction
from app.heartbeat import Heartbeat
from app.keys import Keys, arq_in_progress_key
from app.lease import Lease
from app.queue import ChunkQueue
from app.redis_sockets import tune_sockets
from app.runs import RunStore
from app.settings import Settings
from app.worker.chunksum_worker import WORKER, ChunksumWorker
from app.worker.wakeup import QueueWaker
from jobs.chunks import JOB_STARTED_S, QUEUE, RUNS, WORKER_NAME


async def startup(ctx: dict[str, Any]) -> None:
    """Check Redis's eviction policy (app.eviction), then open what the jobs share: the run
    store and the queue, the waker, the heartbeat."""
    settings: Settings = ctx["settings"]
    redis = ctx["redis"]
    await check_eviction(redis, name=redis_name(settings), allow=settings.allow_eviction)
    await tune_sockets(redis)  # arq opened the pool without it
    keys = Keys(settings.key_prefix)
    ctx[RUNS] = RunStore.for_settings(redis, settings)
    ctx[QUEUE] = ChunkQueue.for_settings(redis, settings)
    worker: ChunksumWorker | None = ctx.get(WORKER)  # None under `arq app.worker...`
    on_run_ended = None if worker is None else worker.run_ends.ended
    heartbeat = Heartbeat(redis, keys, None if worker is None else worker.stats)
    ctx["waker"] = waker = QueueWaker(
        redis,
        keys,
        idle_s=settings.worker_poll_s,
        on_run_ended=on_run_ended,
        queue=ctx[QUEUE],
        worker_id=heartbeat.worker_id,
    )
    await waker.start()
    ctx["heartbeat"] = heartbeat
    heartbeat.start()
    ctx[WORKER_NAME] = heartbeat.worker_id  # its runs' timelines name it so (app.timeline)


async def job_start(ctx: dict[str, Any]) -> None:
    """Take a lease on the job, so that if this worker dies another takes it soon (app.lease),
    and note when it started (for its run's timeline)."""
    ctx[JOB_STARTED_S] = time.time()
    settings: Settings = ctx["settings"]
    ctx["lease"] = lease = Lease(
        ctx["redis"], arq_in_progress_key(ctx["job_id"]), lease_s=settings.lease_s
    )
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
