"""What the dashboard shows, read from Redis in the background: a snapshot and a history.

The snapshot (every ``REFRESH_S``) holds the newest ``RUNS_SHOWN`` runs, the workers, the
queue depth and the throughput of the last minutes; every open page gets it as a server-sent
event, so any number of pages cost Redis one read per refresh. The run history holds the
duration and numbers of up to ``HISTORY_RUNS`` retained runs, and the errors of the failed
and cancelled ones; it is read every ``HISTORY_REFRESH_S``, or ``HISTORY_SOON_S`` after one
of the snapshot's runs ends, and pages fetch it as they need it.
"""

import asyncio
import contextlib
import itertools
import math
import time
from collections import deque
from dataclasses import asdict
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from app.connection import LOST_REDIS
from app.errors import ChunksumError
from app.run_status import RunStatus, Status
from app.submit import Client
from app.timeline import SPANS_KEPT

REFRESH_S = 1.0
RUNS_SHOWN = 50  # the snapshot's runs: the runs list's first page
THROUGHPUT_POINTS = 300  # snapshots of throughput kept: five minutes at REFRESH_S
HISTORY_REFRESH_S = 10.0
HISTORY_SOON_S = 2.0  # as a run ends: the history is read again this soon, not sooner
HISTORY_RUNS = 10_000  # runs in the run-history chart, newest first
ERRORS_SHOWN = 100  # failed and cancelled runs listed, newest first


class DashboardState:
    """The latest snapshot and run history of a deployment, refreshed in the background."""

    def __init__(self, client: Client, *, can_cancel: bool) -> None:
        self.client = client
        self.can_cancel = can_cancel
        self.snapshot: dict[str, Any] = {"ready": False}
        self.history: dict[str, Any] = {"ready": False}
        # (time, chunks done, numbers done) over the snapshot's runs
        self.done: deque[tuple[float, int, int]] = deque(maxlen=THROUGHPUT_POINTS)
        self.changed = asyncio.Condition()
        self.ended: frozenset[str] = frozenset()  # the snapshot's ended runs
        self.registry = CollectorRegistry()
        self._runs = Gauge(
            "chunksum_runs", "Runs retained, by status", ["status"], registry=self.registry
        )
        self._depth = Gauge(
            "chunksum_queue_depth", "Chunk jobs queued or running", registry=self.registry
        )
        self._workers = Gauge(
            "chunksum_live_workers", "Workers with a fresh heartbeat", registry=self.registry
        )

    async def refresh(self) -> None:
        """Read the cluster's state once and tell the open pages."""
        runs = await self.client.recent_runs(RUNS_SHOWN)
        workers = await self.client.workers()
        depth = await self.client.queue_depth()
        runs_total = await self.client.runs.count()
        now = time.time()
        # chunks recorded, from the runs themselves (heartbeats lag by up to a beat)
        chunks = sum(run.done_chunks for run in runs)
        self.done.append((now, chunks, sum(run.done_numbers for run in runs)))
        self.ended = frozenset(run.run_id for run in runs if not run.status.active)
        self.snapshot = {
            "ready": True,
            "time": now,
            "queue_depth": depth,
            "runs": [run.to_json() for run in runs],
            "runs_total": runs_total,
            "workers": [asdict(worker) for worker in workers],
            "throughput": rates(self.done),
            "can_cancel": self.can_cancel,
            "runs_page": RUNS_SHOWN,
            "spans_kept": SPANS_KEPT,
        }
        for status in Status:
            self._runs.labels(status).set(sum(run.status == status for run in runs))
        self._depth.set(depth)
        self._workers.set(len(workers))
        async with self.changed:
            self.changed.notify_all()

    async def refresh_history(self) -> None:
        """Read the retained runs' durations, numbers and errors once."""
        runs = await self.client.recent_runs(HISTORY_RUNS)
        self.history = {"ready": True, **history(runs)}

    async def run(self, stopping: asyncio.Event) -> None:
        """Refresh every REFRESH_S (the history every HISTORY_REFRESH_S) until ``stopping``
        is set; ride out Redis outages."""
        history_read, history_of = -math.inf, None
        while not stopping.is_set():
            with contextlib.suppress(*LOST_REDIS, ChunksumError):  # shown as stale meanwhile
                await self.refresh()
                since_s = time.monotonic() - history_read
                if since_s >= HISTORY_REFRESH_S or (
                    self.ended != history_of and since_s >= HISTORY_SOON_S
                ):
                    history_read, history_of = time.monotonic(), self.ended
                    await self.refresh_history()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), REFRESH_S)


def rates(done: deque[tuple[float, int, int]]) -> list[list[float]]:
    """Return [time, chunks/s, numbers/s] between consecutive snapshots (0, not < 0, as old
    runs leave the snapshot)."""
    return [
        [t1, max(chunks1 - chunks0, 0) / (t1 - t0), max(numbers1 - numbers0, 0) / (t1 - t0)]
        for (t0, chunks0, numbers0), (t1, chunks1, numbers1) in itertools.pairwise(done)
        if t1 > t0
    ]


def history(runs: list[RunStatus]) -> dict[str, Any]:
    """Return the ended runs' columns for the run-history chart, oldest first (created,
    seconds, numbers, status), and the failed and cancelled runs, newest first."""
    ended = [run for run in reversed(runs) if run.finished_at is not None]
    errors = [run for run in runs if run.status in (Status.FAILED, Status.CANCELLED)]
    return {
        "created": [run.created_at for run in ended],
        "seconds": [(run.finished_at or run.created_at) - run.created_at for run in ended],
        "numbers": [run.count if run.count is not None else run.done_numbers for run in ended],
        "status": [run.status.value for run in ended],
        "errors": [_error(run) for run in errors[:ERRORS_SHOWN]],
        "errors_total": len(errors),
        "runs_read": len(runs),
    }


def _error(run: RunStatus) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "finished_at": run.finished_at,
        "error": run.error,
        "failed_chunk": run.failed_chunk,
        "failed_worker": run.failed_worker,
        "retried_chunks": run.retried_chunks,
    }
