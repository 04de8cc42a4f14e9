"""Worker heartbeats: who is serving the queue, from where, and how busy.

Each worker keeps a hash (``<prefix>:worker:<id>``) that expires unless renewed every
``BEAT_S``, and its id in a sorted set by last beat (``<prefix>:workers``), so a list of
live workers needs no scan of the keyspace, and a worker that dies vanishes on its own
within ``EXPIRES_S``. A worker that stops cleanly removes itself at once.
"""

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from app.connection import REDIS_FAULTS, Backoff, waitable
from app.keys import Keys

BEAT_S = 2.0
EXPIRES_S = 3 * BEAT_S  # a worker silent this long is taken for dead
Stats = Callable[[], dict[str, int]]  # a worker's job counts: done, failed, retried, running


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live worker, as its last heartbeat described it."""

    worker_id: str
    host: str
    pid: int
    started_at: float
    last_seen: float
    done: int | None
    failed: int | None
    retried: int | None
    running: int | None

    @classmethod
    def from_hash(cls, worker_id: str, fields: dict[str, str]) -> "WorkerInfo":
        """Parse a heartbeat hash (all strings; counts are absent for plain arq workers)."""

        def count(name: str) -> int | None:
            return int(fields[name]) if name in fields else None

        return cls(
            worker_id=worker_id,
            host=fields["host"],
            pid=int(fields["pid"]),
            started_at=float(fields["started_at"]),
            last_seen=float(fields["last_seen"]),
            done=count("done"),
            failed=count("failed"),
            retried=count("retried"),
            running=count("running"),
        )


class Heartbeat:
    """Keep this process's heartbeat in Redis until :meth:`stop`."""

    def __init__(self, redis: Redis, keys: Keys, stats: Stats | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.stats = stats
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._started_at = time.time()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Beat now and every BEAT_S, in the background."""
        self._task = asyncio.create_task(self._run(), name="chunksum-heartbeat")

    async def stop(self) -> None:
        """Stop beating and remove the heartbeat (a worker leaving cleanly)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(*REDIS_FAULTS):  # if Redis is away or full, the beat expires
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self.keys.workers, self.worker_id)
                pipe.delete(self.keys.worker(self.worker_id))
                await pipe.execute()

    async def beat(self) -> None:
        """Write the heartbeat once."""
        now = time.time()
        fields: dict[str, str | int | float] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self._started_at,
            "last_seen": now,
            **(self.stats() if self.stats is not None else {}),
        }
        key = self.keys.worker(self.worker_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, int(EXPIRES_S))
            pipe.zadd(self.keys.workers, {self.worker_id: now})
            pipe.zremrangebyscore(self.keys.workers, "-inf", now - EXPIRES_S)
            await pipe.execute()

    async def _run(self) -> None:
        backoff = Backoff("heartbeat")
        while True:
            try:
                await self.beat()
                backoff.reset()
            except REDIS_FAULTS as exc:  # an outage, or out of memory: never fatal
                if not waitable(exc):
                    raise
                await backoff.wait(exc)
                continue
            await asyncio.sleep(BEAT_S)


async def live_workers(redis: Redis, keys: Keys) -> list[WorkerInfo]:
    """Return the workers that beat within EXPIRES_S, oldest first."""
    ids = await redis.zrangebyscore(keys.workers, time.time() - EXPIRES_S, "+inf")
    worker_ids = [worker_id.decode() for worker_id in ids]
    async with redis.pipeline(transaction=False) as pipe:
        for worker_id in worker_ids:
            pipe.hgetall(keys.worker(worker_id))
        hashes = cast(list[dict[bytes, bytes]], await pipe.execute())
    workers = [
        WorkerInfo.from_hash(worker_id, {k.decode(): v.decode() for k, v in raw.items()})
        for worker_id, raw in zip(worker_ids, hashes, strict=True)
        if raw  # expired between the two reads
    ]
    return sorted(workers, key=lambda worker: worker.started_at)
