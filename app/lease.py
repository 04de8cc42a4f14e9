"""Leases on running chunk jobs, so a killed worker's chunk is taken over in seconds.

arq marks a running job with an "in progress" key that expires ``job_timeout + 10`` s
after the job starts (310 s by default) and has no heartbeat: a worker killed mid-job
holds its job that long. A chunk job shortens that key's life to ``lease_s`` and renews
it while it runs; if its worker dies, the key expires within ``lease_s`` and another
worker's next queue read claims the job. A worker that is only slow may let its lease
lapse too: then two workers run the chunk, and the run counts it once.

``chunksum worker`` (app.worker.claims) claims jobs with a lease's expiry in the first place, so
there is no gap. A plain ``arq app.worker.WorkerSettings`` worker claims with arq's
expiry, and the lease takes over a few milliseconds later, when the job starts: a worker
killed in between leaves arq's full expiry to run (``CHUNKSUM_JOB_TIMEOUT_S`` + 10 s).
"""

import asyncio
import contextlib
import logging

from redis.asyncio import Redis

from app.connection import LOST_REDIS
from app.faults import describe

logger = logging.getLogger(__name__)
RENEWALS_PER_LEASE = 3


class Lease:
    """Hold ``key`` for ``lease_s`` at a time, renewing it: a running job's arq in-progress
    key, or a submitter's sender key (app.submission)."""

    def __init__(self, redis: Redis, key: str, *, lease_s: float) -> None:
        self.redis = redis
        self.key = key
        self.lease_ms = int(lease_s * 1000)
        self.every_s = lease_s / RENEWALS_PER_LEASE
        self._renewing: asyncio.Task[None] | None = None

    def start(self, *, leased: bool) -> None:
        """Start renewing the key every lease/3, in the background.

        Args:
            leased: whether the key already runs on a lease (ChunksumWorker claims on one);
                if not, the first renewal, at once, shortens its expiry to one lease.
        """
        self._renewing = asyncio.create_task(self._renew(first_s=self.every_s if leased else 0))

    async def stop(self) -> None:
        """Stop renewing (the key's owner deletes it, or lets it lapse)."""
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing

    async def _renew(self, first_s: float) -> None:
        await asyncio.sleep(first_s)
        while True:
            try:
                await self.redis.pexpire(self.key, self.lease_ms)  # never creates a gone key
            except LOST_REDIS as exc:
                # the job goes on; if Redis is back before the lease lapses, nothing is lost,
                # and if not, another worker may run the chunk too, which the run counts once
                logger.warning(
                    "could not renew the lease on %s (%s); retrying", self.key, describe(exc)
                )
            await asyncio.sleep(self.every_s)
