"""Tests for app.timeline and the run scripts that keep it: spans recorded with partials,
retries and failures, their expiry with the run, and the bound on their number."""

import asyncio
import time

import pytest
from arq.connections import ArqRedis

from app.exact import ExactSum
from app.keys import Keys
from app.run_status import Recorded, Status
from app.runs import ChunkRecord, RunStore
from app.timeline import SAMPLED_CHUNKS, SPANS_KEPT, Attempt, Outcome, Span, stride
from tests.harness import create_run, expire_together

RUN = "run1"
KEYS = Keys("test")
ONE = ExactSum.of(1, 0, 0)


def attempt(worker: str = "host:1:abc", job_try: int = 1) -> Attempt:
    """Return an attempt that started a second ago."""
    return Attempt(worker=worker, started_s=time.time() - 1, job_try=job_try)


@pytest.fixture
def store(redis: ArqRedis) -> RunStore:
    """Return a run store with a retention time."""
    return RunStore(redis, KEYS, ttl_s=100)


class TestSpan:
    def test_packs_and_unpacks_to_the_same_span(self) -> None:
        """A span survives its packed form, times to 0.1 ms, in a few dozen bytes."""
        span = Span(
            7, Attempt("h:42:ab12cd", 1_700_000_000.12345, 2), 1_700_000_001.5, Outcome.DONE, 9
        )
        packed = span.pack()
        assert len(packed) < 64
        back = Span.unpack(packed)
        assert back.attempt.started_s == pytest.approx(1_700_000_000.12345, abs=1e-4)
        assert (back.chunk, back.attempt.worker, back.attempt.job_try) == (7, "h:42:ab12cd", 2)
        assert (back.finished_s, back.outcome, back.numbers) == (1_700_000_001.5, "done", 9)

    def test_json_has_the_endpoints_fields(self) -> None:
        """to_json gives chunk, worker, started, finished, try and outcome (and numbers)."""
        span = Span(3, Attempt("w", 10.0, 1), 12.5, Outcome.RETRIED, None)
        assert span.to_json() == {
            "chunk": 3,
            "worker": "w",
            "started": 10.0,
            "finished": 12.5,
            "try": 1,
            "outcome": "retried",
            "numbers": None,
        }


class TestStride:
    @pytest.mark.parametrize(
        ("chunks", "expected"),
        [(None, 1), (1, 1), (SAMPLED_CHUNKS, 1), (SAMPLED_CHUNKS + 1, 2), (100_000, 20)],
    )
    def test_keeps_at_most_sampled_chunks(self, chunks: int | None, expected: int) -> None:
        """Every chunk up to SAMPLED_CHUNKS; past that, every k-th, k the smallest that
        keeps no more than SAMPLED_CHUNKS."""
        assert stride(chunks) == expected


class TestRecording:
    async def test_record_keeps_each_chunks_span(self, store: RunStore) -> None:
        """Recording a partial keeps its chunk's span (worker, times, try, numbers) once:
        a repeat of the chunk adds none."""
        await create_run(store, RUN, chunks=2)
        before = time.time()
        await store.record(RUN, 0, ONE, count=5, attempt=attempt("a"))
        await store.record(RUN, 1, ONE, count=6, attempt=attempt("b", job_try=2))
        await store.record(RUN, 1, ONE, count=6, attempt=attempt("c"))  # a repeat
        spans = await store.timeline(RUN)
        assert [(s.chunk, s.attempt.worker, s.attempt.job_try, s.numbers) for s in spans] == [
            (0, "a", 1, 5),
            (1, "b", 2, 6),
        ]
        assert all(s.outcome is Outcome.DONE for s in spans)
        assert all(s.attempt.started_s < before <= s.finished_s <= time.time() for s in spans)
        assert (await store.read(RUN)).done_numbers == 11

    async def test_retries_and_failures_are_kept_with_their_outcome(self, store: RunStore) -> None:
        """A retried chunk's span says so; the failing chunk's span ends the timeline, and the
        run names the chunk and its worker."""
        await create_run(store, RUN, chunks=3)
        await store.record(RUN, 0, ONE, count=1, attempt=attempt("a"))
        await store.note_retry(RUN, 1, attempt("b"))
        await store.fail_chunk(RUN, 1, "chunk 1 failed: boom", attempt("a", job_try=2))
        spans = await store.timeline(RUN)
        assert [(s.chunk, s.outcome, s.attempt.worker) for s in spans] == [
            (0, "done", "a"),
            (1, "retried", "b"),
            (1, "failed", "a"),
        ]
        run = await store.read(RUN)
        assert (run.status, run.failed_chunk, run.failed_worker) == ("failed", 1, "a")
        assert run.error == "chunk 1 failed: boom"

    async def test_nothing_is_kept_once_the_run_ended(self, store: RunStore) -> None:
        """A cancelled run's timeline takes no more spans, retried or done."""
        await create_run(store, RUN, chunks=2)
        await store.cancel(RUN, "cancelled")
        await store.note_retry(RUN, 0, attempt())
        await store.record(RUN, 1, ONE, count=1, attempt=attempt())
        assert await store.timeline(RUN) == []

    async def test_timeline_expires_with_the_run(self, store: RunStore, redis: ArqRedis) -> None:
        """The timeline has the run hash's expiry once the run ends."""
        await create_run(store, RUN, chunks=1)
        await store.record(RUN, 0, ONE, count=1, attempt=attempt())
        assert 0 < await redis.ttl(KEYS.timeline(RUN)) <= 100
        await store.finalise(RUN)
        assert await expire_together(redis, KEYS.timeline(RUN), KEYS.run(RUN))
        assert len(await store.timeline(RUN)) == 1  # the end leaves it, as the run hash

    async def test_record_without_an_attempt_keeps_no_span(self, store: RunStore) -> None:
        """A caller that names no attempt (a plain client) leaves the timeline alone."""
        await create_run(store, RUN, chunks=1)
        await store.record(RUN, 0, ONE, count=1)
        assert await store.timeline(RUN) == []


class TestBound:
    async def test_a_big_run_keeps_every_kth_chunk(self, store: RunStore, redis: ArqRedis) -> None:
        """A run of 4 x SAMPLED_CHUNKS chunks keeps the done span of every 4th chunk only,
        and says so in its hash; its retries are kept regardless."""
        chunks = 4 * SAMPLED_CHUNKS
        await create_run(store, RUN, chunks=chunks)
        assert (await store.read(RUN)).span_stride == 4
        await asyncio.gather(
            *(store.record(RUN, i, ONE, count=1, attempt=attempt()) for i in range(40))
        )
        await store.note_retry(RUN, 41, attempt())
        spans = await store.timeline(RUN)
        assert sorted(s.chunk for s in spans if s.outcome is Outcome.DONE) == list(range(0, 40, 4))
        assert [s.chunk for s in spans if s.outcome is Outcome.RETRIED] == [41]

    async def test_no_more_than_spans_kept(self, store: RunStore, redis: ArqRedis) -> None:
        """Past SPANS_KEPT spans the timeline takes no more (retries of a run of unknown
        size here), and the run carries on counting them."""
        async with redis.pipeline(transaction=True) as pipe:
            store.add_create(pipe, RUN, chunks=None, sender_lease_s=None)
            await pipe.execute()
        tries = SPANS_KEPT + 5
        await asyncio.gather(*(store.note_retry(RUN, i, attempt()) for i in range(tries)))
        assert len(await store.timeline(RUN)) == SPANS_KEPT
        assert (await store.read(RUN)).retried_chunks == tries
        await store.end(RUN, Status.CANCELLED)
        assert len(await store.timeline(RUN)) == SPANS_KEPT

    async def test_a_batch_fills_the_room_left_and_no_more(self, store: RunStore) -> None:
        """A batch of chunks recorded together (app.worker.lean_chunks) with room for two
        more spans keeps the first two of its spans, and still records every partial."""
        await create_run(store, RUN, chunks=5)  # the batch doesn't complete it
        await asyncio.gather(*(store.note_retry(RUN, 0, attempt()) for i in range(SPANS_KEPT - 2)))
        batch = [ChunkRecord(i, ONE, 1, attempt=attempt(f"w{i}")) for i in range(4)]
        assert await store.record_chunks(RUN, batch) == [Recorded.RECORDED] * 4
        spans = await store.timeline(RUN)
        assert len(spans) == SPANS_KEPT
        assert [span.attempt.worker for span in spans[-2:]] == ["w0", "w1"]
        assert (await store.read(RUN)).done_chunks == 4
