"""A run's task stream: which worker ran each chunk, from when to when, on which try.

The scripts that record a chunk's partial, count its retry or fail its run (app.runs)
append its *span* to the run's timeline list (``<prefix>:timeline:{<run id>}``) in the
same call, so a chunk costs no extra round trip: one RPUSH of a short msgpack entry.
The list lives as long as the run hash (same expiry) and is bounded:

- it holds at most ``SPANS_KEPT`` spans; past that, spans are not stored (the page says
  how many of the run's chunk runs it shows);
- a run of more than ``SAMPLED_CHUNKS`` chunks keeps the done span of every
  ``stride``-th chunk only (:func:`stride`, stored in the run hash as the run is
  created), so that its stream still covers the whole run; retries and failures are kept
  while there is room.
"""

import enum
import math
from dataclasses import dataclass
from typing import Any

from app import codec

SPANS_KEPT = 10_000  # the most spans a run's timeline holds
SAMPLED_CHUNKS = SPANS_KEPT // 2  # past this many chunks, every stride-th chunk's done span


class Outcome(enum.StrEnum):
    """How a chunk's run on a worker ended."""

    DONE = "done"  # its partial was recorded
    RETRIED = "retried"  # it raised, and will be tried again
    FAILED = "failed"  # it failed its run


@dataclass(frozen=True, slots=True)
class Attempt:
    """Who ran a chunk job, since when, on which of its tries."""

    worker: str  # the worker's heartbeat id: host:pid:suffix (app.heartbeat)
    started_s: float  # seconds since the epoch
    job_try: int  # arq's job_try: 1 for the first


@dataclass(frozen=True, slots=True)
class Span:
    """One chunk's run on a worker, as the timeline keeps it."""

    chunk: int
    attempt: Attempt
    finished_s: float  # seconds since the epoch
    outcome: Outcome
    numbers: int | None  # how many numbers the chunk held (None unless done)

    def pack(self) -> bytes:
        """Return the span as the timeline stores it (msgpack, a few dozen bytes)."""
        ran = self.attempt  # a tuple, floats unrounded: the cheapest to pack, per chunk
        fields = (self.chunk, ran.worker, ran.started_s, self.finished_s, ran.job_try)
        return codec.dumps((*fields, self.outcome.value, self.numbers))

    @classmethod
    def unpack(cls, entry: bytes) -> "Span":
        """Parse an entry that :meth:`pack` made."""
        chunk, worker, started_s, finished_s, job_try, outcome, numbers = codec.loads(entry)
        attempt = Attempt(worker=worker, started_s=started_s, job_try=job_try)
        return cls(chunk, attempt, finished_s, Outcome(outcome), numbers)

    def to_json(self) -> dict[str, Any]:
        """Return the span as ``GET /api/runs/RUN_ID/timeline`` serves it."""
        return {
            "chunk": self.chunk,
            "worker": self.attempt.worker,
            "started": self.attempt.started_s,
            "finished": self.finished_s,
            "try": self.attempt.job_try,
            "outcome": self.outcome.value,
            "numbers": self.numbers,
        }


def stride(chunks: int | None) -> int:
    """Return k: a run of ``chunks`` chunks keeps the done span of every k-th chunk
    (1, every chunk, up to SAMPLED_CHUNKS chunks or if the count isn't known)."""
    return 1 if chunks is None else max(1, math.ceil(chunks / SAMPLED_CHUNKS))
