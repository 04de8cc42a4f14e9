"""chunksum's worker: an arq worker that sums chunks (``chunksum worker``, the Procfile).

=====================  =============================================================
module                 holds
=====================  =============================================================
``settings``           the arq Worker arguments: jobs, queue, Redis, codec, hooks
``hooks``              start-up and shutdown, and each job's lease
``chunksum_worker``    ``ChunksumWorker``: arq's Worker, hardened against Redis faults
``claims``             claiming queued jobs a batch per round trip
``run_ends``           runs' ends as the worker hears them: waiting jobs, tallies, aborts
``wakeup``             idle queue reads that wait for a submitter's wake-up
``outage_retry``       redis-py retries that carry a plain arq worker through an outage
=====================  =============================================================

``arq app.worker.WorkerSettings`` runs the same jobs and hooks in arq's plain ``Worker``
(claims one job per four round trips), its Redis calls retried through an outage of up to
``CHUNKSUM_OUTAGE_S``; both kinds can serve one queue together.
"""

from typing import Any

from app.settings import Settings
from app.worker.settings import arq_worker_settings, worker_settings

# arq takes a dict of Worker arguments as readily as a class: `arq app.worker.WorkerSettings`.
WorkerSettings: dict[str, Any] = arq_worker_settings(Settings.from_env())

__all__ = ["WorkerSettings", "worker_settings"]
