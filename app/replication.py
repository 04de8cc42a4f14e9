"""Replicated writes: Redis WAIT after the writes that a failover must not lose.

Redis replicates asynchronously, so a write the master acknowledged can be missing from
the replica a Sentinel promotes. chunksum sends WAIT, on the same connection and in the
same round trip, after two kinds of writes:

* a submitter's enqueued jobs (with, in the first batch, the run hash and its lease): a
  job lost with the old master would leave its chunk unsummed;
* a run's end (its total, or its failure or cancellation).

A chunk's partial needs no WAIT: a worker records it before arq deletes the chunk's job,
and a replica holds a prefix of the master's writes, so a partial lost in a failover comes
with its job still queued or leased, and the chunk runs again (and counts once). What
WAIT can't cover (no replica acknowledged in time, or the promoted replica was not one
that did) the submitter detects when Redis comes back: see ``app.outages.lost_chunks``.
"""

import logging
from typing import Any

from app.connection import is_sentinel
from app.settings import Settings

WAIT_TIMEOUT_MS = 1000  # longest a write waits for its replicas before going on, warned
logger = logging.getLogger(__name__)


class Replicas:
    """Sends pipelines with WAIT; warns, once per series, when replicas fall behind."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self._short = False  # the last WAIT got fewer acknowledgements than wanted

    @classmethod
    def for_settings(cls, settings: Settings) -> "Replicas":
        """Wait for CHUNKSUM_WAIT_REPLICAS replicas; unset: 1 with Sentinel, else none."""
        if settings.wait_replicas is not None:
            return cls(settings.wait_replicas)
        return cls(1 if is_sentinel(settings) else 0)

    async def execute(self, pipe: Any, what: str) -> list[Any]:
        """Send ``pipe`` with WAIT after its writes; return its own replies.

        Args:
            what: the writes, for the warning if replicas fall behind.
        """
        if self.wanted:
            pipe.execute_command("WAIT", self.wanted, WAIT_TIMEOUT_MS)
        replies: list[Any] = await pipe.execute()
        if self.wanted:
            self._check(replies.pop(), what)
        return replies

    def _check(self, acknowledged: int, what: str) -> None:
        """Warn if fewer replicas than wanted acknowledged ``what``, once per series."""
        if acknowledged >= self.wanted:
            if self._short:
                logger.warning("replicas acknowledge writes again")
            self._short = False
        elif not self._short:
            self._short = True
            logger.warning(
                "%s reached %d of %d replicas within %d ms (CHUNKSUM_WAIT_REPLICAS); until "
                "they catch up, a failover could lose it (a submitter then fails the run)",
                what,
                acknowledged,
                self.wanted,
                WAIT_TIMEOUT_MS,
            )
