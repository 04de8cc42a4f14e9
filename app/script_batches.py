"""Calls of one Lua script made together, sent together: one pipeline a batch.

A worker's jobs claimed in one batch run side by side and end close together, each with a
call of the same script (recording its chunk's partial: app.runs). :class:`ScriptBatch`
sends the calls made while the event loop runs its ready callbacks in one pipeline, as
EVALSHA (EVAL for a Redis that doesn't have the script yet), where each would otherwise
take a round trip and a connection of its own. Each call still gets its own reply, or its
own error.
"""

import asyncio
import hashlib
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError


class ScriptBatch:
    """Calls of the Lua script ``source`` on ``redis``, sent a batch per loop pass."""

    def __init__(self, redis: Redis, source: str) -> None:
        self.redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        self._calls: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()  # held: the loop keeps weak ones

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        """Call the script with ``keys`` and ``args`` in the next batch; return its reply."""
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        self._calls.append(([len(keys), *keys, *args], reply))
        if len(self._calls) == 1:  # the first of a batch sends it
            task = loop.create_task(self._send_soon())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        return await reply

    async def _send_soon(self) -> None:
        await asyncio.sleep(0)  # the calls that the loop's ready callbacks make join in
        calls, self._calls = self._calls, []
        try:
            replies = await self._send(self.sha, calls, "EVALSHA")
            unloaded = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if unloaded:  # a Redis without the script (restarted, flushed): EVAL loads it
                loaded = await self._send(self.source, [calls[i] for i in unloaded], "EVAL")
                for i, reply in zip(unloaded, loaded, strict=True):
                    replies[i] = reply
        except BaseException as exc:
            for _, future in calls:
                _settle(future, exc)
            raise
        for (_, future), reply in zip(calls, replies, strict=True):
            _settle(future, reply)

    async def _send(
        self, script: str, calls: list[tuple[list[Any], asyncio.Future[Any]]], command: str
    ) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for arguments, _ in calls:
                pipe.execute_command(command, script, *arguments)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            return replies


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    """Give ``future`` its reply, or its error (a caller that gave up has none to get)."""
    if future.done():
        return
    if isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
