"""A redis-py ``Retry`` that rides out a Redis outage for a bounded time: what lets a plain
``arq app.worker.WorkerSettings`` worker outlive a Redis restart.

arq's own worker loop ends the process on the first connection error outside the queue
read (a job's claim or finish, its health check). It can't be subclassed from arq's CLI, but
it passes ``RedisSettings.retry`` and ``retry_on_error`` to redis-py, which then re-sends a
command whose connection broke, and reconnects before it sends. redis-py's own ``Retry``
counts attempts; this one counts time: it retries (backing off 0.1 s, doubling to 1 s) until
Redis has been unreachable for ``outage_s`` (``CHUNKSUM_OUTAGE_S``), then raises the last
error, as arq would have at once. ``chunksum worker`` doesn't need it: ChunksumWorker waits
out faults itself, and tells a lost claim or finish from one that went through.

What no retry can mend: a claim whose connection breaks after its ``WATCH`` and before
``EXEC`` raises ``WatchError`` (the watch died with the connection), which arq's claim does
not catch there; that window is the few microseconds between two replies.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 1.0
# what redis-py raises for an unreachable Redis: its own errors, and a refused connect
# (OSError) while it reconnects; a Redis still loading its AOF is a ConnectionError too
RETRIED_ERRORS: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


class OutageRetry(Retry):
    """Retry a Redis call while Redis is unreachable, for up to ``outage_s`` seconds."""

    __slots__ = ("outage_s",)

    def __init__(self, outage_s: float) -> None:
        super().__init__(NoBackoff(), -1)  # delays: see call_with_retry
        self.outage_s = outage_s

    async def call_with_retry(
        self, do: Callable[[], Awaitable[T]], fail: Callable[[RedisError], Any]
    ) -> T:
        """Return ``await do()``; on a connection error call ``fail(error)`` (redis-py
        disconnects there), back off and try again, until the outage lasts ``outage_s``."""
        failures, since = 0, 0.0
        while True:
            try:
                return await do()
            except RETRIED_ERRORS as error:
                failures += 1
                since = since or time.monotonic()  # a read may wait long before it fails
                await fail(error)  # type: ignore[arg-type]  # redis-py passes OSErrors too
                if time.monotonic() - since >= self.outage_s:
                    raise
                await asyncio.sleep(min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (failures - 1)))
