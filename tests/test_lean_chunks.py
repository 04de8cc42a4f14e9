"""The lean chunk path (app.worker.lean_chunks): claimed chunk jobs summed at once and
recorded a batch per script call, arq's semantics kept where anything is out of the way."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from arq.connections import ArqRedis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.keys import arq_in_progress_key, arq_job_key, job_id
from app.queue import ChunkJob, ChunkQueue
from app.run_status import Recorded
from app.runs import ChunkRecord, RunStore
from app.settings import Settings
from app.sources import plan_source
from app.submit import Client
from app.worker import worker_settings
from app.worker.chunksum_worker import ChunksumWorker
from app.worker.loaded_jobs import LoadedJobs
from jobs.chunks import QUEUE, RUNS
from tests.harness import create_run, eventually, running_worker

CHUNKS = 8


async def test_claimed_chunks_are_recorded_together_without_arqs_job_run(
    settings: Settings, redis: ArqRedis, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's chunks, claimed in a batch, are summed and recorded a script call per batch
    (fewer calls than chunks), none through arq's per-job run; every job is finished, and
    each chunk's span is in the run's timeline, on the worker, from its claim."""
    calls: list[int] = []
    record_chunks = RunStore.record_chunks

    async def counted(self: RunStore, run_id: str, chunks: Sequence[ChunkRecord]) -> list[Recorded]:
        calls.append(len(chunks))
        return await record_chunks(self, run_id, chunks)

    async def not_run(self: LoadedJobs, job_id: str, score: int) -> None:
        raise AssertionError(f"job {job_id} went through arq's run_job")

    monkeypatch.setattr(RunStore, "record_chunks", counted)
    monkeypatch.setattr(LoadedJobs, "run_job", not_run)
    async with running_worker(settings) as worker:
        result = await client.submit(range(10_000), chunks=CHUNKS, timeout=20)

        async def all_counted() -> bool:
            return worker.jobs_complete == CHUNKS

        await eventually(all_counted, what="the worker to count every chunk")
        (live,) = await client.workers()
    assert result.total == sum(range(10_000))
    spans = await client.runs.timeline(result.run_id)
    assert sorted(span.chunk for span in spans) == list(range(CHUNKS))
    assert {(span.attempt.worker, span.attempt.job_try) for span in spans} == {(live.worker_id, 1)}
    assert all(span.attempt.started_s <= span.finished_s for span in spans)
    assert sum(span.numbers or 0 for span in spans) == 10_000
    assert sum(calls) == CHUNKS
    assert len(calls) < CHUNKS
    assert await redis.keys("arq:*") == []  # records, in-progress marks, try counts: gone


@pytest.fixture
async def claimer(settings: Settings, redis: ArqRedis) -> ChunksumWorker:
    """A ChunksumWorker whose loop doesn't run (tests call start_jobs), with what its
    start-up would open for its jobs."""
    worker = ChunksumWorker(
        **{**worker_settings(settings), "redis_pool": redis}, handle_signals=False
    )
    worker.ctx["redis"] = redis
    worker.ctx[RUNS] = RunStore.for_settings(redis, settings)
    worker.ctx[QUEUE] = ChunkQueue.for_settings(redis, settings)
    return worker


async def enqueue(worker: ChunksumWorker, run_id: str, numbers: list[int]) -> list[bytes]:
    """Enqueue a sealed run of ``numbers``, one chunk each, as a submitter would; return the
    job ids."""
    queue: ChunkQueue = worker.ctx[QUEUE]
    await create_run(worker.ctx[RUNS], run_id, chunks=len(numbers))
    settings: Settings = worker.ctx["settings"]
    source = plan_source(numbers, chunks=len(numbers), chunk_size=None, settings=settings)
    async with queue.redis.pipeline(transaction=False) as pipe:
        for chunk in source.items:
            queue.add(pipe, run_id, chunk.index, chunk.args, ChunkJob())
        await pipe.execute()
    return [job_id(run_id, index).encode() for index in range(len(numbers))]


def retried(worker: ChunksumWorker, jobs: int) -> Callable[[], Awaitable[bool]]:
    """Return a probe of whether the worker has retried ``jobs`` jobs."""

    async def probe() -> bool:
        return worker.jobs_retried == jobs

    return probe


async def test_a_record_that_loses_redis_leaves_the_jobs_to_their_leases(
    claimer: ChunksumWorker,
    redis: ArqRedis,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If Redis goes before a batch is recorded, the worker says so and carries on; the
    jobs stay claimed on their leases (run again once those lapse), records and all."""

    async def lose_redis(*args: Any, **kwargs: Any) -> list[Recorded]:
        raise RedisConnectionError("Connection closed by server.")

    monkeypatch.setattr(RunStore, "record_chunks", lose_redis)
    ids = await enqueue(claimer, "run", [1, 2])
    with caplog.at_level(logging.WARNING):
        await claimer.start_jobs(ids)
        await eventually(retried(claimer, 2), what="the record to fail")
    assert "run run: could not record 2 chunks" in caplog.text
    for job in ids:
        assert await redis.exists(arq_job_key(job.decode()))
        assert 0 < await redis.pttl(arq_in_progress_key(job.decode())) <= settings.lease_s * 1000
    assert claimer.jobs_complete == 0


async def test_a_chunk_whose_sum_raises_runs_the_usual_way(
    claimer: ChunksumWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk whose sum raises as it is claimed goes to arq's usual run, which acts on that
    failure as sum_chunk does (here: a retry), without summing it again."""
    sums = 0

    def raising(parts: object) -> object:
        nonlocal sums
        sums += 1
        raise RuntimeError("boom")

    monkeypatch.setattr("app.worker.lean_chunks.chunk_sum", raising)
    ids = await enqueue(claimer, "run", [1])
    await claimer.start_jobs(ids)
    await eventually(retried(claimer, 1), what="the chunk to be retried")
    assert sums == 1
    assert claimer.jobs_complete == 0
