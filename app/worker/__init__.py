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
=====================  =============================================================

``arq app.worker.WorkerSettings`` runs the same jobs and hooks in arq's plain ``Worker``
(claims one job per four round trips); both kinds can serve one queue together.
"""

from typing import Any

from app.settings import Settings
from app.worker.settings import worker_settings

# arq takes a dict of Worker arguments as readily as a class: `arq app.worker.WorkerSettings`.
WorkerSettings: dict[str, Any] = worker_settings(Settings.from_env())

__all__ = ["WorkerSettings", "worker_settings"]
