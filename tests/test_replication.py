"""Replicated writes: how many replicas chunksum waits for, and what it does when they lag."""

import logging

import pytest
from arq.connections import ArqRedis

from app import replication
from app.replication import Replicas
from app.settings import Settings

SENTINEL_URL = "redis+sentinel://127.0.0.1:26379/mymaster"


@pytest.mark.parametrize(
    ("settings", "wanted"),
    [
        (Settings(), 0),
        (Settings(redis_url="redis://localhost:6379/0"), 0),
        (Settings(redis_url=SENTINEL_URL), 1),
        (Settings(redis_url=SENTINEL_URL, wait_replicas=0), 0),
        (Settings(redis_url="redis://localhost:6379/0", wait_replicas=2), 2),
    ],
)
def test_replicas_wanted(settings: Settings, wanted: int) -> None:
    """CHUNKSUM_WAIT_REPLICAS wins; unset, a Sentinel URL waits for one replica, others none."""
    assert Replicas.for_settings(settings).wanted == wanted


async def test_no_wait_without_replicas_wanted(redis: ArqRedis) -> None:
    """With none wanted, a pipeline goes out as it is: its replies, and no WAIT."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set("replication-test", 1)
        pipe.get("replication-test")
        assert await Replicas(0).execute(pipe, "a test write") == [True, b"1"]


async def test_lagging_replicas_are_warned_of_once(
    redis: ArqRedis, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WAIT runs after the pipeline's writes and its reply is not returned; a server without
    the wanted replicas makes one warning per series, and writes still go through."""
    monkeypatch.setattr(replication, "WAIT_TIMEOUT_MS", 10)
    replicas = Replicas(1)  # the test server has no replica: WAIT answers 0
    for value in (1, 2):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set("replication-test", value)
            with caplog.at_level(logging.WARNING, logger="app.replication"):
                assert await replicas.execute(pipe, f"write {value}") == [True]
    assert await redis.get("replication-test") == b"2"
    warnings = [r.getMessage() for r in caplog.records if r.name == "app.replication"]
    assert len(warnings) == 1
    assert "write 1 reached 0 of 1 replicas within 10 ms" in warnings[0]
