"""Error hygiene (app.faults): no message, log line or stored error holds a pipeline's payload."""

import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from redis.exceptions import OutOfMemoryError

from app.connection import close, connect
from app.errors import RedisUnavailableError
from app.faults import MAX_CHARS, bounded, describe
from app.logs import JsonFormatter, TextFormatter
from app.redis_server import RedisServer
from app.settings import Settings
from app.submit import Client
from tests.harness import create_run, read_hash

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
            assert "failed run" in message
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
