"""Ctrl-C for a coroutine run to completion: cancel it from the event loop, so it cleans up.

``asyncio.run`` cancels its task from inside the SIGINT handler, at whatever bytecode the
signal lands on. A cancel that lands while the task runs is held and handed to the next
future the task awaits. When that future is awaited inside redis-py's ``async with
asyncio.timeout(0)`` (its check that a pooled connection holds no stray reply, before every
command), Python 3.11's timeout counts the held cancel as one already handled when it was
entered, turns it into a TimeoutError, and redis-py reads that as "nothing to read": the
cancel is lost, and a submitter would wait for its run as if Ctrl-C had never been pressed
(redis-py 5, which arq pins; redis-py#4063 drops that check). A handler added with
``loop.add_signal_handler`` runs between steps, where a cancel always reaches the task.
"""

import asyncio
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, where Ctrl-C cancels ``main`` (its cleanup runs) and raises
    KeyboardInterrupt once it has ended; a second Ctrl-C interrupts the cleanup too.

    Ctrl-C is left alone where ``asyncio.run`` leaves it alone: off the main thread, or
    when the program has a SIGINT handler of its own.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        return asyncio.run(main)
    return asyncio.run(_cancelled_by_ctrl_c(main))


async def _cancelled_by_ctrl_c(main: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None  # a coroutine run by asyncio.run is its task
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        loop.remove_signal_handler(signal.SIGINT)  # back to KeyboardInterrupt, for a second
        task.cancel()

    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        return await main
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGINT)  # restores default_int_handler
