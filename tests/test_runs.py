"""Tests for app.runs: the run store's atomic Lua writes, against the test Redis server."""

import inspect
import math
import time
from collections.abc import Awaitable
from typing import TypeVar

import numpy as np
import pytest
from arq.connections import ArqRedis

from app import codec
from app.errors import RunNotFoundError
from app.exact import ExactSum
from app.keys import Keys, job_id
from app.queue import ChunkQueue, JobFinish
from app.run_status import EndResult, Recorded, Status
from app.runs import ChunkRecord, RunStore
from app.timeline import Attempt
from tests.harness import create_run

RUN = "run1"
TTL_S = 100.5  # RunStore rounds it up to 101 s
KEYS = Keys("test")
ATTEMPT = Attempt(worker="host:1:abc", started_s=1_000.0, job_try=1)
T = TypeVar("T")


@pytest.fixture
def store(redis: ArqRedis) -> RunStore:
    """Return a run store with a retention time."""
    return RunStore(redis, KEYS, ttl_s=TTL_S)


@pytest.fixture
def store_without_ttl(redis: ArqRedis) -> RunStore:
    """Return a run store whose keys never expire."""
    return RunStore(redis, KEYS, ttl_s=None)


async def settle(reply: Awaitable[T] | T) -> T:
    """Await a redis-py reply: its stubs type hash and list commands as sync-or-async."""
    if inspect.isawaitable(reply):
        return await reply
    return reply


async def inbox(redis: ArqRedis, run_id: str = RUN) -> list[object]:
    """Return the decoded entries of a run's inbox (a batch's, one by one)."""
    raw = await settle(redis.lrange(KEYS.inbox(run_id), 0, -1))
    return [item for entry in raw for item in codec.loads_all(entry)]


async def test_create_stores_a_queued_run(store: RunStore) -> None:
    """A new run is queued, with its chunk count, no chunks done and no total."""
    await create_run(store, RUN, chunks=4)
    run = await store.read(RUN)
    assert (run.run_id, run.status, run.chunks, run.done_chunks) == (RUN, "queued", 4, 0)
    assert (run.total, run.count, run.finished_at, run.error) == (None, None, None, None)
    assert run.created_at == pytest.approx(time.time(), abs=5)  # stamped now


async def start_sending(store: RunStore, redis: ArqRedis, *, lease_s: float = 30) -> None:
    """Create RUN as a streaming submitter does: chunk count unknown, a sender lease held."""
    async with redis.pipeline(transaction=True) as pipe:
        store.add_create(pipe, RUN, chunks=None, sender_lease_s=lease_s)
        await pipe.execute()


async def test_create_with_unknown_chunk_count(store: RunStore, redis: ArqRedis) -> None:
    """A streamed run, whose chunk count is unknown, reads back with chunks None, and holds
    its submitter's lease."""
    await start_sending(store, redis)
    assert (await store.read(RUN)).chunks is None
    assert 0 < await redis.pttl(KEYS.sender(RUN)) <= 30_000


async def test_last_partial_of_a_sealed_run_finalises_it(store: RunStore, redis: ArqRedis) -> None:
    """The last partial of a sealed run says so; finalise then writes the exact total and
    count from the stored partials, once: the submitter's own finish finds the run done."""
    await start_sending(store, redis)
    assert (
        await store.record(RUN, 0, ExactSum.of_floats(np.array([0.1])), count=1)
        is Recorded.RECORDED
    )
    async with redis.pipeline(transaction=True) as pipe:
        store.add_seal(pipe, RUN, chunks=2, count=3)
        await pipe.execute()
    assert not await redis.exists(KEYS.sender(RUN))
    partial = ExactSum.of_floats(np.array([0.2, 0.3]))
    assert await store.record(RUN, 1, partial, count=1) is Recorded.LAST
    assert await store.finalise(RUN) is EndResult.ENDED
    run = await store.read(RUN)
    exact = math.fsum([0.1, 0.2, 0.3])
    assert (run.status, run.total, run.count, run.chunks) == ("done", exact, 3, 2)
    assert await store.finish(RUN, ExactSum(), count=3, chunks=2) is EndResult.WAS_DONE
    assert (await store.read(RUN)).total == exact


async def test_partial_after_the_sender_lease_lapsed_abandons_the_run(
    store: RunStore, redis: ArqRedis
) -> None:
    """A partial recorded while the run is unsealed and its sender lease gone says so;
    abandon fails the run with a reason."""
    await start_sending(store, redis)
    await redis.delete(KEYS.sender(RUN))  # the lease lapsed
    assert await store.record(RUN, 0, ExactSum.of(1, 0, 0), count=1) is Recorded.ABANDONED
    assert await store.abandon(RUN) is EndResult.ENDED
    run = await store.read(RUN)
    assert run.status == "failed"
    assert run.error is not None
    assert "abandoned" in run.error


async def test_abandon_ends_only_a_run_whose_sender_lease_lapsed(
    store: RunStore, redis: ArqRedis
) -> None:
    """abandon leaves a run whose submitter holds its lease, or sealed it, as it is; a
    reading never changes a run."""
    await start_sending(store, redis)
    assert await store.abandon(RUN) is EndResult.LIVE  # lease held
    await redis.delete(KEYS.sender(RUN))
    assert (await store.read(RUN)).status == "queued"  # reading changes nothing
    assert await store.abandon(RUN) is EndResult.ENDED
    assert (await store.read(RUN)).status == "failed"
    await create_run(store, "sealed", chunks=1)
    assert await store.abandon("sealed") is EndResult.LIVE


async def test_record_counts_a_chunk_once(store: RunStore, redis: ArqRedis) -> None:
    """Recording the same chunk twice counts it and pushes it to the inbox once."""
    await create_run(store, RUN, chunks=3)
    partial = ExactSum.of(5, -1, 1)
    assert await store.record(RUN, 0, partial, count=1) is Recorded.RECORDED
    assert await store.record(RUN, 0, ExactSum.of(7, 0, 0), count=1) is Recorded.NOTHING
    assert await inbox(redis) == [[0, partial.to_wire(), 1]]
    assert await settle(redis.hlen(KEYS.partials(RUN))) == 1
    run = await store.read(RUN)
    assert (run.status, run.done_chunks) == ("running", 1)


async def test_record_finishes_the_chunks_job_unless_the_run_needs_more(
    store: RunStore, redis: ArqRedis
) -> None:
    """Given its arq job, record finishes it as arq's worker would (record, in-progress
    mark, try count, queue and abort entries gone), except for the partial that leaves the
    run to finalise: that job stays until its worker has done so (if it dies, another runs
    the job again and finalises)."""
    await create_run(store, RUN, chunks=2)
    queue = ChunkQueue(redis, KEYS, job_ttl_s=60, max_chunk_bytes=1 << 20)
    finishes = [queue.job_finish(job_id(RUN, index)) for index in range(2)]
    for finish in finishes:
        (record_key, in_progress, tries), (queue_key, abort) = finish.job_keys, finish.set_keys
        await redis.set(record_key, b"job")
        await redis.set(in_progress, b"1")
        await redis.set(tries, b"1")
        await redis.zadd(queue_key, {finish.job_id: 1})
        await redis.zadd(abort, {finish.job_id: 1})

    async def left(finish: JobFinish) -> tuple[int, bool, bool]:
        """Return how many of the job's keys exist, and whether it is queued, and in the
        abort set."""
        (record_key, in_progress, tries), (queue_key, abort) = finish.job_keys, finish.set_keys
        queued = await redis.zscore(queue_key, finish.job_id) is not None
        aborting = await redis.zscore(abort, finish.job_id) is not None
        return await redis.exists(record_key, in_progress, tries), queued, aborting

    first, last = finishes
    assert await store.record(RUN, 0, ExactSum(), count=1, finish=first) is Recorded.RECORDED
    assert await left(first) == (0, False, False)
    assert await store.record(RUN, 1, ExactSum(), count=1, finish=last) is Recorded.LAST
    assert await left(last) == (3, True, True)
    assert await store.record(RUN, 1, ExactSum(), count=1, finish=last) is Recorded.LAST
    assert await left(last) == (3, True, True)  # a repeat that finalises keeps it too


async def test_record_chunks_records_many_in_one_call_each_once(
    store: RunStore, redis: ArqRedis
) -> None:
    """record_chunks records each new chunk of a call once (a repeat, in the call or
    before it, counts nothing), pushes them in order, and adds up their seconds."""
    await create_run(store, RUN, chunks=5)
    await store.record(RUN, 0, ExactSum.of(1, 0, 0), count=1, seconds=0.5)
    chunks = [
        ChunkRecord(i, ExactSum.of(10 + i, 0, 0), count=2, seconds=0.25 * i) for i in range(4)
    ]
    replies = await store.record_chunks(RUN, [*chunks, chunks[2]])
    assert replies == [
        Recorded.NOTHING,
        Recorded.RECORDED,
        Recorded.RECORDED,
        Recorded.RECORDED,
        Recorded.NOTHING,
    ]
    run = await store.read(RUN)
    assert (run.status, run.done_chunks) == ("running", 4)
    assert (run.chunk_seconds, run.chunk_seconds_max) == (0.5 + 0.25 + 0.5 + 0.75, 0.75)
    assert [entry[0] for entry in await inbox(redis)] == [0, 1, 2, 3]  # type: ignore[index]


async def test_record_chunks_finishes_every_job_but_the_one_that_finalises(
    store: RunStore, redis: ArqRedis
) -> None:
    """Of the chunks that complete a sealed run, one (the last of the call) is LAST and
    keeps its job for its worker to finalise the run; the others' jobs are finished."""
    await create_run(store, RUN, chunks=3)
    queue = ChunkQueue(redis, KEYS, job_ttl_s=60, max_chunk_bytes=1 << 20)
    finishes = [queue.job_finish(job_id(RUN, index)) for index in range(3)]
    for finish in finishes:
        await redis.set(finish.job_keys[0], b"job")
        await redis.zadd(finish.set_keys[0], {finish.job_id: 1})
    chunks = [ChunkRecord(i, ExactSum.of(i, 0, 0), count=1, finish=finishes[i]) for i in range(3)]
    replies = await store.record_chunks(RUN, chunks)
    assert replies == [Recorded.RECORDED, Recorded.RECORDED, Recorded.LAST]
    assert [await redis.exists(finish.job_keys[0]) for finish in finishes] == [0, 0, 1]
    assert await redis.zrange(KEYS.queue, 0, -1) == [finishes[2].job_id.encode()]
    with pytest.raises(ValueError, match="every chunk"):
        await store.record_chunks(RUN, [chunks[0], ChunkRecord(1, ExactSum(), count=1)])


async def test_record_chunks_asks_one_worker_to_abandon(store: RunStore, redis: ArqRedis) -> None:
    """New partials of an unsealed run whose sender's lease lapsed: one asks its worker to
    abandon the run."""
    await start_sending(store, redis)
    await redis.delete(KEYS.sender(RUN))
    chunks = [ChunkRecord(i, ExactSum.of(i, 0, 0), count=1) for i in range(3)]
    replies = await store.record_chunks(RUN, chunks)
    assert replies == [Recorded.RECORDED, Recorded.RECORDED, Recorded.ABANDONED]


async def test_record_moves_queued_to_running(store: RunStore, redis: ArqRedis) -> None:
    """The first partial moves the run to running and stamps started_at; later ones count up."""
    await create_run(store, RUN, chunks=3)
    await store.record(RUN, 0, ExactSum.of(1, 0, 0), count=1)
    started_at = await settle(redis.hget(KEYS.run(RUN), "started_at"))
    assert started_at is not None
    await store.record(RUN, 2, ExactSum.of(2**70 + 1, 0, 0), count=1)
    run = await store.read(RUN)
    assert (run.status, run.done_chunks) == ("running", 2)
    assert await settle(redis.hget(KEYS.run(RUN), "started_at")) == started_at
    entries = await inbox(redis)
    assert [entry[0] for entry in entries] == [0, 2]  # type: ignore[index]  # [index, wire]
    wire = entries[1][1]  # type: ignore[index]  # [index, wire]
    assert ExactSum.from_wire(wire) == ExactSum.of(2**70 + 1, 0, 0)


async def test_record_refuses_an_unknown_run(store: RunStore, redis: ArqRedis) -> None:
    """A partial for a run that doesn't exist (or has expired) is refused and stores nothing."""
    assert await store.record("nope", 0, ExactSum.of(1, 0, 0), count=1) is Recorded.NOTHING
    assert await redis.keys("*") == []


async def test_finish_writes_the_total_once(store: RunStore, redis: ArqRedis) -> None:
    """finish writes total, type, count and chunks, and deletes the partials and the inbox."""
    await create_run(store, RUN, chunks=2)
    await store.record(RUN, 0, ExactSum.of(3, 0, 0), count=1)
    await store.record(RUN, 1, ExactSum.of(4, 0, 0), count=1)
    assert await store.finish(RUN, ExactSum.of(7, 0, 0), count=10, chunks=2) is EndResult.ENDED
    fields = await settle(redis.hgetall(KEYS.run(RUN)))
    assert fields[b"total"] == b"7"
    assert fields[b"total_type"] == b"int"
    run = await store.read(RUN)
    assert (run.status, run.total, run.count, run.chunks, run.done_chunks) == ("done", 7, 10, 2, 2)
    assert run.finished_at is not None
    assert run.finished_at >= run.created_at
    assert not await redis.exists(KEYS.partials(RUN), KEYS.inbox(RUN))


async def test_second_finish_returns_the_previous_status(store: RunStore) -> None:
    """A second finish (or end) leaves the first total alone and returns the status it found."""
    await create_run(store, RUN, chunks=1)
    await store.finish(RUN, ExactSum.of(7, 0, 0), count=1, chunks=1)
    assert await store.finish(RUN, ExactSum.of(99, 0, 0), count=5, chunks=5) == "done"
    assert await store.end(RUN, Status.CANCELLED, error="too late") == "done"
    run = await store.read(RUN)
    assert (run.status, run.total, run.count, run.error) == ("done", 7, 1, None)


async def test_end_of_an_unknown_run_reports_missing(store: RunStore, redis: ArqRedis) -> None:
    """Ending a run that doesn't exist returns 'missing' and creates nothing."""
    assert await store.end("nope", Status.CANCELLED) == "missing"
    assert await redis.keys("*") == []


@pytest.mark.parametrize(
    "total",
    [
        ExactSum.of(1, -1, 1),
        ExactSum.of(-(2**200) - 1, 0, 0),
        ExactSum(0, 0, 1 | 2),
        ExactSum.of(3, 0, 1 | 8),
    ],
)
async def test_totals_keep_their_type_and_value(store: RunStore, total: ExactSum) -> None:
    """Float, big-int, NaN and infinite totals read back with their exact value and type."""
    await create_run(store, RUN, chunks=1)
    await store.finish(RUN, total, count=1, chunks=1)
    stored = (await store.read(RUN)).total
    expected = total.value()
    assert type(stored) is type(expected)
    if isinstance(expected, float) and math.isnan(expected):
        assert isinstance(stored, float)
        assert math.isnan(stored)
    else:
        assert stored == expected


async def test_records_after_the_run_ended_are_refused(store: RunStore, redis: ArqRedis) -> None:
    """Once a run is done, a late partial is refused and leaves no partials or inbox behind."""
    await create_run(store, RUN, chunks=2)
    await store.record(RUN, 0, ExactSum.of(1, 0, 0), count=1)
    await store.finish(RUN, ExactSum.of(1, 0, 0), count=1, chunks=1)
    assert await store.record(RUN, 1, ExactSum.of(5, 0, 0), count=1) is Recorded.NOTHING
    assert not await redis.exists(KEYS.partials(RUN), KEYS.inbox(RUN))
    assert (await store.read(RUN)).done_chunks == 1


@pytest.mark.parametrize("status", [Status.FAILED, Status.CANCELLED])
async def test_records_after_failure_or_cancel_are_refused(store: RunStore, status: Status) -> None:
    """A failed or cancelled run accepts no more partials."""
    await create_run(store, RUN, chunks=2)
    assert await store.end(RUN, status, error="stop") is EndResult.ENDED
    assert await store.record(RUN, 0, ExactSum.of(1, 0, 0), count=1) is Recorded.NOTHING
    run = await store.read(RUN)
    assert (run.status, run.error, run.done_chunks) == (status, "stop", 0)


async def test_fail_chunk_marks_the_run_failed(store: RunStore, redis: ArqRedis) -> None:
    """fail_chunk fails the run with the error and leaves exactly one failure entry in the inbox."""
    await create_run(store, RUN, chunks=3)
    await store.record(RUN, 0, ExactSum.of(1, 0, 0), count=1)
    await store.record(RUN, 1, ExactSum.of(2, 0, 0), count=1)
    await store.fail_chunk(RUN, 2, "chunk 2 can't be summed: bad part")
    run = await store.read(RUN)
    assert (run.status, run.error) == ("failed", "chunk 2 can't be summed: bad part")
    assert run.finished_at is not None
    assert await inbox(redis) == [[2, None, "chunk 2 can't be summed: bad part"]]
    assert not await redis.exists(KEYS.partials(RUN))


async def test_fail_chunk_after_done_changes_nothing(store: RunStore, redis: ArqRedis) -> None:
    """A chunk failure reported after the run is done neither fails it nor fills the inbox."""
    await create_run(store, RUN, chunks=1)
    await store.finish(RUN, ExactSum.of(1, 0, 0), count=1, chunks=1)
    await store.fail_chunk(RUN, 0, "late")
    assert (await store.read(RUN)).status == "done"
    assert not await redis.exists(KEYS.inbox(RUN))


async def test_ttls_are_set_when_configured(store: RunStore, redis: ArqRedis) -> None:
    """With ttl_s, the run, partials and inbox expire within ceil(ttl_s) seconds."""
    await create_run(store, RUN, chunks=2)
    assert 0 < await redis.ttl(KEYS.run(RUN)) <= 101
    await store.record(RUN, 0, ExactSum.of(1, 0, 0), count=1)
    for key in (KEYS.run(RUN), KEYS.partials(RUN), KEYS.inbox(RUN)):  # not the sender's
        assert 0 < await redis.ttl(key) <= 101, key
    await store.fail_chunk(RUN, 1, "boom")
    assert 0 < await redis.ttl(KEYS.run(RUN)) <= 101
    assert 0 < await redis.ttl(KEYS.inbox(RUN)) <= 101


async def test_ttl_is_refreshed_when_a_run_ends(store: RunStore, redis: ArqRedis) -> None:
    """Ending a run restarts the run hash's retention time."""
    await create_run(store, RUN, chunks=1)
    await redis.expire(KEYS.run(RUN), 5)
    await store.finish(RUN, ExactSum.of(1, 0, 0), count=1, chunks=1)
    assert 5 < await redis.ttl(KEYS.run(RUN)) <= 101


async def test_no_ttls_without_ttl_s(store_without_ttl: RunStore, redis: ArqRedis) -> None:
    """With ttl_s None, no key of the run expires."""
    store = store_without_ttl
    await create_run(store, RUN, chunks=2)
    await store.record(RUN, 0, ExactSum.of(1, 0, 0), count=1)
    for key in (KEYS.run(RUN), KEYS.partials(RUN), KEYS.inbox(RUN)):  # not the sender's
        assert await redis.ttl(key) == -1, key
    await store.fail_chunk(RUN, 1, "boom")
    assert await redis.ttl(KEYS.run(RUN)) == -1
    assert await redis.ttl(KEYS.inbox(RUN)) == -1


async def test_read_of_an_unknown_run_raises(store: RunStore) -> None:
    """Reading a run id that doesn't exist raises RunNotFoundError naming the id and prefix."""
    with pytest.raises(RunNotFoundError, match="no run 'nope' under key prefix 'test'"):
        await store.read("nope")


async def test_runs_are_separated_by_prefix(redis: ArqRedis) -> None:
    """A run stored under one key prefix is not visible under another."""
    await create_run(RunStore(redis, KEYS, ttl_s=None), RUN, chunks=1)
    with pytest.raises(RunNotFoundError):
        await RunStore(redis, Keys("other"), ttl_s=None).read(RUN)


async def test_repeat_of_a_complete_runs_chunk_finalises_it(store: RunStore) -> None:
    """If the worker that recorded a sealed run's last partial died before finalising, the
    chunk's rerun is told it is last, so that the run still ends; once it has, repeats do
    nothing."""
    await create_run(store, RUN, chunks=2, count=2)
    assert await store.record(RUN, 0, ExactSum.of(1, 0, 0), count=1) is Recorded.RECORDED
    assert (
        await store.record(RUN, 1, ExactSum.of(2, 0, 0), count=1) is Recorded.LAST
    )  # then it died
    assert await store.record(RUN, 1, ExactSum.of(2, 0, 0), count=1) is Recorded.LAST  # the rerun
    assert await store.finalise(RUN) is EndResult.ENDED
    assert (await store.read(RUN)).total == 3
    assert await store.record(RUN, 1, ExactSum.of(2, 0, 0), count=1) is Recorded.NOTHING


async def test_chunk_timings_and_retries_add_up(store: RunStore) -> None:
    """A run sums its chunks' seconds and keeps the longest; retries count while it is
    active, and not after."""
    await create_run(store, RUN, chunks=3)
    await store.record(RUN, 0, ExactSum.of(1, 0, 0), count=1, seconds=0.25)
    await store.record(RUN, 1, ExactSum.of(1, 0, 0), count=1, seconds=1.5)
    await store.record(RUN, 1, ExactSum.of(1, 0, 0), count=1, seconds=9.0)  # a repeat: not counted
    await store.note_retry(RUN, 2, ATTEMPT)
    run = await store.read(RUN)
    assert (run.chunk_seconds, run.chunk_seconds_max, run.retried_chunks) == (1.75, 1.5, 1)
    await store.end(RUN, Status.CANCELLED)
    await store.note_retry(RUN, 2, ATTEMPT)
    assert (await store.read(RUN)).retried_chunks == 1


async def test_snapshot_reads_status_and_partials_together(
    store: RunStore, redis: ArqRedis
) -> None:
    """snapshot returns the run's status and, per chunk, its recorded partial or None."""
    await create_run(store, RUN, chunks=3)
    await store.record(RUN, 1, ExactSum.of_ints(np.array([5])), count=1)
    status, partials = await store.snapshot(RUN, [0, 1, 2])
    assert status is Status.RUNNING
    assert [entry is not None for entry in partials] == [False, True, False]
    assert await store.snapshot(RUN, []) == (Status.RUNNING, [])
    assert await store.snapshot("vanished", [0]) == (None, [None])
