"""Worker settings for the hand-tuned arq baseline: ``arq app.bench.tuned_worker.WorkerSettings``.

What an arq user tunes after reading its docs: msgpack instead of pickle, a 1 ms
``poll_delay`` instead of 0.5 s; its own queue, and the Redis from ``REDIS_URL``.
"""

from typing import Any, ClassVar

import msgpack
from arq.connections import RedisSettings
from arq.worker import func

from app.bench.keys import TUNED_QUEUE, TUNED_SUM_JOB
from app.connection import redis_settings
from app.settings import Settings
from jobs.bench import tuned_sum

TUNED_POLL_S = 0.001  # both sides: the worker's queue reads, the client's result polls


class WorkerSettings:
    """The tuned arq worker for :func:`jobs.bench.tuned_sum`."""

    functions: ClassVar[list[Any]] = [func(tuned_sum, name=TUNED_SUM_JOB)]
    queue_name: ClassVar[str] = TUNED_QUEUE
    poll_delay: ClassVar[float] = TUNED_POLL_S
    job_serializer: ClassVar[Any] = msgpack.packb
    job_deserializer: ClassVar[Any] = msgpack.unpackb
    redis_settings: ClassVar[RedisSettings] = redis_settings(Settings.from_env())
