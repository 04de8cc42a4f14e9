"""What a worker knows of runs' ends: the jobs waiting for one, and its tally per run.

Every run's end is announced on ``<prefix>:ends`` (app.runs); the worker's wake-up
subscription (app.worker.wakeup) hears it and calls :meth:`RunEnds.ended`. A chunk job
that recorded a run's last partial waits here for the submitter to write the total
(jobs.chunks); the tally of what this worker summed for a run is logged as it ends; and
the running chunks of a run that was cancelled or failed are stopped.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

from app.run_status import Status

logger = logging.getLogger(__name__)
MAX_TALLIED_RUNS = 1000  # runs a worker keeps a tally of until it hears they ended
RECENT_ENDS = 1000  # runs whose end a worker remembers, for a job that asks after it
STOPPED_WITH = (Status.CANCELLED, Status.FAILED)  # a run ending so stops its running chunks


class RunEnds:
    """The runs a worker is waiting on or has worked for, until it hears they ended.

    Args:
        stop_chunks: called with a run id to abort this worker's running chunks of it.
    """

    def __init__(self, stop_chunks: Callable[[str], None]) -> None:
        self.stop_chunks = stop_chunks
        self._waiting: dict[str, asyncio.Event] = {}  # runs whose end a job waits for
        self._tallies: dict[str, list[float]] = {}  # run id -> [chunks, numbers, seconds]
        self._recent: dict[str, None] = {}  # the last RECENT_ENDS runs heard to end, in order

    def tally(self, run_id: str, count: int, seconds: float) -> None:
        """Count a chunk this worker recorded, for the summary it logs as the run ends."""
        if run_id not in self._tallies and len(self._tallies) >= MAX_TALLIED_RUNS:
            self._tallies.pop(next(iter(self._tallies)))  # an end we never heard of
        done = self._tallies.setdefault(run_id, [0, 0, 0.0])
        done[0], done[1], done[2] = done[0] + 1, done[1] + count, done[2] + seconds

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a run to end; return whether it has."""
        # the run can't end before its last partial, which the job calling this has just
        # recorded, reaches the submitter; but the end may be heard before the job asks
        # (the worker's loop takes the record's reply and the end in either order)
        if run_id in self._recent:
            return True
        ended = self._waiting.setdefault(run_id, asyncio.Event())
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), timeout_s)
            return ended.is_set()
        finally:
            self._waiting.pop(run_id, None)

    def ended(self, run_id: str, status: str) -> None:
        """Hear that a run ended: wake its jobs waiting for that, log what this worker did
        for it, and stop its running chunks if it was cancelled or failed (their partials
        would be refused, and their slots can serve other runs)."""
        self._recent[run_id] = None
        if len(self._recent) > RECENT_ENDS:
            del self._recent[next(iter(self._recent))]
        if (waiting := self._waiting.get(run_id)) is not None:
            waiting.set()
        if (done := self._tallies.pop(run_id, None)) is not None:
            chunks, numbers, seconds = int(done[0]), int(done[1]), done[2]
            logger.info(
                "run %s %s: this worker summed %d chunks, %d numbers, in %.3f s of chunk time",
                *(run_id, status, chunks, numbers, seconds),
                extra={"chunk": {"run": run_id, "status": status, "chunks": chunks}},
            )
        if status in STOPPED_WITH:
            self.stop_chunks(run_id)
