"""Worker settings for the obvious arq baseline: ``arq app.bench.naive_worker.WorkerSettings``.

Plain arq defaults (pickle, 0.5 s ``poll_delay``, results kept for an hour), except for
the queue, which is the bench's own, and the Redis, which comes from ``REDIS_URL``.
"""

from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.worker import func

from app.bench.keys import NAIVE_QUEUE, NAIVE_SUM_JOB
from app.connection import redis_settings
from app.settings import Settings
from jobs.bench import naive_sum


class WorkerSettings:
    """The arq worker a user would configure for :func:`jobs.naive.naive_sum`."""

    functions: ClassVar[list[Any]] = [func(naive_sum, name=NAIVE_SUM_JOB)]
    queue_name: ClassVar[str] = NAIVE_QUEUE
    redis_settings: ClassVar[RedisSettings] = redis_settings(Settings.from_env())
