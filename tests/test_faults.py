"""Error hygiene (app.faults): no message, log line or stored error holds a pipeline's payload."""

import logging
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import numpy as np
import pytest
from redis.exceptions import OutOfMemoryError

from app.bench.slow_chunks import submit_slow
from app.connection import close, connect
from app.errors import RedisOutOfMemoryError, RedisUnavailableError
from app.faults import MAX_CHARS, bounded, describe
from app.logs import JsonFormatter, TextFormatter
from app.redis_server import RedisServer
from app.settings import Settings
from app.submit import Client
from tests.harness import create_run, eventually, free_port, read_hash, worker_process

PAYLOAD = bytes(range(256)) * 8192  # 2 MiB of binary, as a packed chunk is
LIMITED = ("--maxmemory", "1mb", "--maxmemory-policy", "noeviction")


@pytest.fixture
async def oom_error(settings: Settings) -> AsyncIterator[OutOfMemoryError]:
    """Return the OutOfMemoryError of a real pipeline whose 2 MiB PSETEX is over maxmemory."""
    with RedisServer(extra_args=LIMITED) as server:
        redis = await connect(replace(settings, redis_url=server.url))
        try:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.get("arq:job:run:1")  # a read: allowed
                pipe.psetex("arq:job:run:2", 60_000, PAYLOAD)
                with pytest.raises(OutOfMemoryError) as raised:
                    await pipe.execute()
            yield raised.value
        finally:
            await close(redis)


def printable(text: str) -> bool:
    """Whether ``text`` is one line of printable characters, no undecodable bytes in it."""
    return text.isprintable() and "\ufffd" not in text


class TestDescribe:
    """describe() and bounded()."""

    def test_pipeline_error_names_command_and_key(self, oom_error: OutOfMemoryError) -> None:
        """A pipeline's error is its failed command and key and Redis's reply: no payload."""
        assert len(str(oom_error)) > len(PAYLOAD)  # redis-py's own text: the whole pipeline
        assert describe(oom_error) == (
            "PSETEX arq:job:run:2 (command 2 of a pipeline): "
            "command not allowed when used memory > 'maxmemory'."
        )

    def test_other_errors_keep_their_message(self) -> None:
        """A plain error is its message; one without a message is its type's name."""
        assert describe(ValueError("bad value 3")) == "bad value 3"
        assert describe(KeyError()) == "KeyError"

    def test_text_is_bounded_and_printable(self) -> None:
        """Control characters and undecodable bytes become '?', whitespace one space, and
        a long text is cut to MAX_CHARS, saying how long it was."""
        assert bounded("a\x00\x01b\ufffd\ufffdc\n\td") == "a?b?c d"
        cut = bounded(PAYLOAD.decode("latin-1") * 2)
        assert len(cut) <= MAX_CHARS
        assert printable(cut)
        assert cut.endswith(f"… ({2 * len(PAYLOAD):,} chars in all)")


class TestLogs:
    """The worker's log formats bound messages and exceptions."""

    @pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
    def test_logged_pipeline_error_is_bounded(
        self, oom_error: OutOfMemoryError, formatter: logging.Formatter
    ) -> None:
        """A failed job logged with a pipeline's error, as arq logs it (the exception in the
        message and as exc_info), makes a line of a few hundred characters."""
        try:
            raise oom_error
        except OutOfMemoryError:
            exc_info = sys.exc_info()
        record = logging.LogRecord(
            "arq.worker", logging.ERROR, __file__, 1, "job failed, %s", (oom_error,), exc_info
        )
        line = formatter.format(record)
        assert len(line) < 4000  # the traceback's frames, plus two bounded texts
        assert "PSETEX arq:job:run:2 (command 2 of a pipeline)" in line
        assert "\ufffd" not in line


async def test_refused_command_fails_the_run_in_a_few_words(settings: Settings) -> None:
    """A pipeline command Redis refuses (here the ACL) fails the run with a chunksum error
    naming the command and key; the run's stored error says the same, the run's jobs are
    removed, and no redis-py error or traceback leaves the submitter."""
    acl = ("--user", "default", "on", "nopass", "~*", "&*", "+@all", "-psetex")
    with RedisServer(extra_args=acl) as server:
        own = replace(settings, redis_url=server.url)
        async with Client(own) as client:
            with pytest.raises(RedisUnavailableError) as raised:
                await client.submit(range(100_000), chunks=4, timeout=10)
            message = str(raised.value)
            assert "failed and its jobs were removed" in message
            assert "PSETEX arq:job:" in message
            assert "NOPERM" in message or "no permissions" in message
            assert len(message) < 2 * MAX_CHARS
            assert printable(message)
            (run,) = await client.recent_runs()
            assert run.status == "failed"
            assert run.error is not None
            assert "PSETEX arq:job:" in run.error
            assert await client.queue_depth() == 0


async def test_stored_errors_are_bounded(client: Client) -> None:
    """A chunk's failure message, however long or binary, is stored bounded."""
    await create_run(client.runs, "r1", chunks=1)
    await client.runs.fail_chunk("r1", 0, PAYLOAD.decode("latin-1"))
    error = (await read_hash(client.redis, client.keys.run("r1")))[b"error"].decode()
    assert len(error) <= MAX_CHARS
    assert printable(error)


@pytest.mark.timeout(60)
async def test_out_of_memory_fails_the_run_and_workers_serve_the_next(settings: Settings) -> None:
    """A run too big for Redis's maxmemory (noeviction) fails with RedisOutOfMemoryError
    naming maxmemory and the ways out, leaving no job or queue keys; both worker processes
    ride out the OOM and, once memory is free, sum the next run."""
    limited = ("--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
    with RedisServer(port=free_port(), extra_args=limited) as server:
        own = replace(settings, redis_url=server.url, lease_s=1.0)
        async with (
            worker_process(own) as first,
            worker_process(own) as second,
            Client(own) as client,
        ):
            await eventually(
                lambda: len_at_least(client, 2), timeout_s=15, what="both workers' heartbeats"
            )
            started = time.monotonic()
            numbers = np.arange(2_000_000, dtype=np.int64)  # 16 MB, in 32 chunks
            with pytest.raises(RedisOutOfMemoryError, match=r"maxmemory 4\.00M") as raised:
                await submit_slow(client, numbers, chunks=32, timeout=30, io_s=0.2)
            failed_s = time.monotonic() - started
            assert "CHUNKSUM_MAX_IN_FLIGHT" in str(raised.value)
            (run,) = await client.recent_runs()
            assert run.status == "failed"
            await eventually(
                lambda: no_job_keys(client), timeout_s=10, what="the run's jobs to be removed"
            )
            await client.redis.config_set("maxmemory", 0)
            freed = time.monotonic()
            result = await client.submit(range(1000), chunks=4, timeout=20)
            assert result.total == sum(range(1000))
            print(f"OOM: failed in {failed_s:.2f} s; next run {time.monotonic() - freed:.2f} s")
            assert first.returncode is None
            assert second.returncode is None


async def len_at_least(client: Client, workers: int) -> bool:
    """Whether at least ``workers`` workers beat."""
    return len(await client.workers()) >= workers


async def no_job_keys(client: Client) -> bool:
    """Whether no chunk job is queued, and no arq job key (record, lease, tries) is left."""
    return await client.queue_depth() == 0 and not await client.redis.keys("arq:*")
