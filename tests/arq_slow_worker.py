"""``arq tests.arq_slow_worker.WorkerSettings``: what ``arq app.worker.WorkerSettings`` runs,
with the bench's slow chunk job too, so a test can hold chunks running in a plain arq worker."""

from typing import Any

from app.bench.slow_chunks import slow_jobs
from app.settings import Settings
from app.worker.settings import arq_worker_settings

_plain = arq_worker_settings(Settings.from_env())
WorkerSettings: dict[str, Any] = {**_plain, "functions": [*_plain["functions"], *slow_jobs()]}
