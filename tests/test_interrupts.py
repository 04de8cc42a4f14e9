"""Ctrl-C cancels a coroutine run by app.interrupts, wherever the signal lands."""

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from app import interrupts
from app.redis_server import RedisServer


@pytest.fixture(autouse=True)
def default_sigint() -> Iterator[None]:
    """Python's own SIGINT handler, as a program starts with (an event loop pytest-asyncio
    runs may have left its own in place), restored afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_mid_step_is_not_lost_in_redis_pys_connection_check(
    redis_server: RedisServer,
) -> None:
    """A SIGINT that lands while the task runs, just before a command on a pooled connection,
    still cancels it: with plain asyncio.run (Python 3.11, redis-py 5), redis-py's idle
    check (`asyncio.timeout(0)`) takes that cancel for its own timeout and drops it."""
    cleaned_up = []

    async def main() -> str:
        redis = Redis.from_url(redis_server.url)
        try:
            await redis.ping()  # the connection goes back to the pool, checked before reuse
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, landing mid-step
            await redis.ping()
            await asyncio.sleep(10)  # the work that Ctrl-C cuts short
            return "ran to the end"
        finally:
            await redis.aclose()
            cleaned_up.append(True)

    with pytest.raises(KeyboardInterrupt):
        interrupts.run(main())
    assert cleaned_up
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_interrupts_the_cleanup() -> None:
    """The first Ctrl-C cancels; one during the cleanup raises KeyboardInterrupt there."""
    reached = []

    async def main() -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(10)
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # the cleanup is slow: Ctrl-C again
            await asyncio.sleep(10)
            reached.append("the end of the cleanup")

    with pytest.raises(KeyboardInterrupt):
        interrupts.run(main())
    assert reached == []


def test_a_program_with_its_own_sigint_handler_keeps_it() -> None:
    """Where the program handles SIGINT itself, run() leaves Ctrl-C to it, as asyncio.run."""
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    handler = signal.getsignal(signal.SIGINT)

    async def main() -> object:
        return signal.getsignal(signal.SIGINT)

    assert interrupts.run(main()) is handler
    assert signal.getsignal(signal.SIGINT) is handler
