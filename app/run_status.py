"""A run as chunksum reports it: its status, what recording a partial or ending it did,
and :class:`RunStatus`, the run hash as read back (``chunksum status``, the dashboard).

Status moves ``queued -> running -> done``, or to ``failed``/``cancelled`` from either
active state; app.runs (:class:`app.runs.RunStore`) writes and reads the run hash.
"""

import enum
from dataclasses import asdict, dataclass
from typing import Any

from app.exact import Total, json_total, parse_total


class Status(enum.StrEnum):
    """Where a run is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        """Return whether the run may still take partials (queued or running)."""
        return self in (Status.QUEUED, Status.RUNNING)


class Recorded(enum.IntEnum):
    """What recording a chunk's partial did (``record.lua``'s reply)."""

    NOTHING = 0  # a duplicate, or the run has ended: nothing changed
    RECORDED = 1
    LAST = 2  # the last partial of a sealed run: it can be finalised
    ABANDONED = 3  # recorded, but the submitter's lease lapsed while it was enqueueing


class EndResult(enum.StrEnum):
    """What asking to end a run found (``end.lua``'s reply)."""

    ENDED = "ended"  # this call ended it
    LIVE = "live"  # (abandon) its submitter still holds it: nothing changed
    WAS_DONE = "done"  # it had ended before, so
    WAS_FAILED = "failed"
    WAS_CANCELLED = "cancelled"
    MISSING = "missing"  # no such run: never made, expired, or lost by Redis


@dataclass(frozen=True, slots=True)
class RunStatus:
    """A run as stored in Redis."""

    run_id: str
    status: Status
    total: Total | None
    count: int | None
    chunks: int | None
    done_chunks: int
    created_at: float
    started_at: float | None  # when the first partial came in
    finished_at: float | None
    error: str | None
    chunk_seconds: float | None = None  # summed over the chunks recorded
    chunk_seconds_max: float | None = None  # the longest chunk
    retried_chunks: int = 0  # chunk runs that failed and were tried again
    done_numbers: int = 0  # numbers in the chunks recorded
    failed_chunk: int | None = None  # the chunk that failed the run
    failed_worker: str | None = None  # the worker it failed on, if known
    span_stride: int = 1  # its timeline keeps every span_stride-th chunk (app.timeline)

    @classmethod
    def from_hash(cls, run_id: str, fields: dict[str, str]) -> "RunStatus":
        """Parse the run hash's fields (all strings)."""
        total = fields.get("total")

        def number(name: str) -> int | None:
            return int(fields[name]) if fields.get(name) else None

        def moment(name: str) -> float | None:
            return float(fields[name]) if fields.get(name) else None

        return cls(
            run_id=run_id,
            status=Status(fields["status"]),
            total=parse_total(total, fields["total_type"]) if total is not None else None,
            count=number("count"),
            chunks=number("chunks"),
            done_chunks=int(fields.get("done_chunks", 0)),
            created_at=float(fields["created_at"]),
            started_at=moment("started_at"),
            finished_at=moment("finished_at"),
            error=fields.get("error"),
            chunk_seconds=moment("chunk_seconds"),
            chunk_seconds_max=moment("chunk_seconds_max"),
            retried_chunks=int(fields.get("retried_chunks", 0)),
            done_numbers=int(fields.get("done_numbers", 0)),
            failed_chunk=number("failed_chunk"),
            failed_worker=fields.get("failed_worker") or None,
            span_stride=int(fields.get("span_stride", 1)),
        )

    def to_json(self) -> dict[str, Any]:
        """Return the fields for JSON (`chunksum status --json`, the dashboard), the total
        as every JSON reader reads it exactly (see :func:`app.exact.json_total`)."""
        return {**asdict(self), "total": json_total(self.total)}
