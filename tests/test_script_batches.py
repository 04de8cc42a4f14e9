"""app.script_batches: calls of a script made together go in one pipeline, each with its own
reply or error, against the test Redis server."""

import asyncio
from typing import Any

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from app.script_batches import ScriptBatch
from tests.harness import free_port

ECHO = """
if ARGV[1] == 'bad' then return redis.error_reply('bad argument') end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""


def counting(batch: ScriptBatch) -> list[int]:
    """Count the pipelines ``batch`` sends, and how many calls each holds."""
    sent: list[int] = []
    send = batch._send

    async def spy(script: str, calls: list[Any], command: str) -> list[Any]:
        sent.append(len(calls))
        return await send(script, calls, command)

    batch._send = spy  # type: ignore[method-assign]
    return sent


async def test_calls_made_together_go_in_one_pipeline(redis: ArqRedis) -> None:
    """Five calls made in one pass of the loop are one pipeline; each gets its own reply."""
    batch = ScriptBatch(redis, ECHO)
    sent = counting(batch)
    replies = await asyncio.gather(
        *(batch(keys=[f"script-batch:{i}"], args=[str(i)]) for i in range(5))
    )
    assert replies == [str(i).encode() for i in range(5)]
    assert await redis.mget([f"script-batch:{i}" for i in range(5)]) == replies
    assert sent in ([5], [5, 5])  # and EVAL for all five if Redis lacked the script
    assert await batch(keys=["script-batch:later"], args=["6"]) == b"6"  # a batch of its own


async def test_a_redis_without_the_script_gets_it_by_eval(redis: ArqRedis) -> None:
    """After SCRIPT FLUSH (a restarted Redis), the calls are re-sent with EVAL, which loads
    the script: the next batch goes by EVALSHA again."""
    batch = ScriptBatch(redis, ECHO)
    await redis.script_flush()
    sent = counting(batch)
    assert await asyncio.gather(*(batch(keys=["script-batch:x"], args=[v]) for v in "ab")) == [
        b"a",
        b"b",
    ]
    assert sent == [2, 2]  # EVALSHA refused, then EVAL
    assert await redis.script_exists(batch.sha) == [True]


async def test_a_calls_error_is_its_own(redis: ArqRedis) -> None:
    """A script error answers its own call; the others in the batch get their replies."""
    batch = ScriptBatch(redis, ECHO)
    results: list[object] = await asyncio.gather(
        batch(keys=["script-batch:good"], args=["ok"]),
        batch(keys=["script-batch:bad"], args=["bad"]),
        return_exceptions=True,
    )
    good, bad = results
    assert good == b"ok"
    assert isinstance(bad, ResponseError)
    assert "bad argument" in str(bad)


async def test_a_lost_redis_fails_every_call_of_the_batch() -> None:
    """Redis unreachable: each call of the batch raises the connection error."""
    redis = Redis(port=free_port(), socket_connect_timeout=1)
    batch = ScriptBatch(redis, ECHO)
    try:
        results = await asyncio.gather(
            *(batch(keys=["k"], args=[str(i)]) for i in range(3)), return_exceptions=True
        )
    finally:
        await redis.aclose()
    assert all(isinstance(result, RedisConnectionError) for result in results)


async def test_a_caller_that_gives_up_leaves_the_others_their_replies(redis: ArqRedis) -> None:
    """A call cancelled while its batch is out doesn't disturb the batch."""
    batch = ScriptBatch(redis, ECHO)
    first = asyncio.ensure_future(batch(keys=["script-batch:c1"], args=["1"]))
    second = asyncio.ensure_future(batch(keys=["script-batch:c2"], args=["2"]))
    await asyncio.sleep(0)  # both have joined the batch
    first.cancel()
    assert await second == b"2"
    with pytest.raises(asyncio.CancelledError):
        await first
