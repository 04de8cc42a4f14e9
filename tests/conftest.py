"""Fixtures: a real Redis server per session, settings per test, in-process and real workers."""

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from arq.connections import ArqRedis
from arq.worker import Worker

from app.connection import connect
from app.redis_server import RedisServer
from app.settings import Settings
from app.submit import Client
from tests.harness import free_port, running_worker


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """Start a private redis-server on a free port for the whole session."""
    with RedisServer(port=free_port()) as server:
        yield server


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    """Settings for one test: the session's Redis, a key prefix of its own."""
    return Settings(
        redis_url=redis_server.url,
        key_prefix=f"test-{uuid.uuid4().hex[:8]}",
        result_ttl_s=600,
        worker_poll_s=0.2,
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    """Open a pool on the test Redis, flushed first."""
    pool = await connect(settings)
    await pool.flushdb()
    yield pool
    await pool.aclose()


@pytest.fixture
async def client(settings: Settings, redis: ArqRedis) -> AsyncIterator[Client]:
    """Open a chunksum client on the test Redis."""
    async with Client(settings) as opened:
        yield opened


@pytest.fixture
async def worker(settings: Settings, redis: ArqRedis) -> AsyncIterator[Worker]:
    """Run one in-process worker for the test."""
    async with running_worker(settings) as running:
        yield running
