"""The eviction check: what Redis may evict under memory pressure, read as a client starts.

Under ``maxmemory`` Redis evicts keys by its ``maxmemory-policy``. ``allkeys-*`` policies
may evict any key: a run's jobs, its partials, its hash, silently; a run would then fail
("its state is gone from Redis") or, for a job evicted from arq's queue, wait until its
timeout. Workers and submitters read the policy as they start, refuse an ``allkeys-*``
one unless ``CHUNKSUM_ALLOW_EVICTION=1``, and warn under ``volatile-*`` (chunksum's keys
carry TTLs, so they may be evicted too). ``noeviction`` is what chunksum wants: a full
Redis refuses writes, and a run fails with :class:`app.errors.RedisOutOfMemoryError`.

Reading the policy takes ``CONFIG GET`` (``+config|get`` in an ACL). Where Redis refuses it
(an ACL without it, a managed Redis that hides CONFIG), the check says so once per Redis
and the process goes on.
"""

import logging

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.errors import EvictionPolicyError
from app.faults import describe

logger = logging.getLogger(__name__)
POLICY = "maxmemory-policy"
_said: set[tuple[str, str]] = set()  # (Redis, what) said once already in this process


async def check_eviction(redis: Redis, *, name: str, allow: bool) -> str | None:
    """Refuse a Redis that may evict any key, warn of one that may evict keys with a TTL;
    return its policy (None if Redis won't say).

    Args:
        name: the Redis, as messages name it (its URL, password redacted).
        allow: CHUNKSUM_ALLOW_EVICTION: warn instead of refusing.

    Raises:
        EvictionPolicyError: the policy is ``allkeys-*`` and ``allow`` is false.
    """
    try:
        reply = await redis.config_get(POLICY)
    except ResponseError as exc:  # NOPERM, or CONFIG renamed or disabled
        _say_once(
            name,
            "unreadable",
            f"cannot read {POLICY} from Redis at {name} ({describe(exc)}); the eviction "
            "check is skipped: allow CONFIG GET (+config|get) to have it",
        )
        return None
    raw = reply.get(POLICY, reply.get(POLICY.encode(), b""))
    policy = raw.decode() if isinstance(raw, bytes) else str(raw)
    if policy.startswith("allkeys-"):
        message = (
            f"Redis at {name} has {POLICY} {policy}: under memory pressure it evicts any "
            "key, a run's jobs and partials included, and runs fail or wait for evicted "
            f"chunks. Set {POLICY} noeviction (CONFIG SET {POLICY} noeviction, or in "
            "redis.conf)"
        )
        if not allow:
            raise EvictionPolicyError(f"{message}, or set CHUNKSUM_ALLOW_EVICTION=1 to run anyway")
        _say_once(name, policy, f"{message}; running anyway (CHUNKSUM_ALLOW_EVICTION=1)")
    elif policy.startswith("volatile-"):
        _say_once(
            name,
            policy,
            f"Redis at {name} has {POLICY} {policy}: chunksum's keys carry TTLs, so under "
            f"memory pressure Redis may evict them and fail runs; {POLICY} noeviction is "
            "safer",
        )
    return policy


def _say_once(name: str, what: str, message: str) -> None:
    """Log a warning about Redis ``name`` once per process."""
    if (name, what) not in _said:
        _said.add((name, what))
        logger.warning("%s", message)
