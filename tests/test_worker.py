"""The chunk job and the worker settings, on a real Redis with real arq workers."""

import asyncio
import inspect
import pickle
import sys
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from arq.connections import ArqRedis
from arq.constants import retry_key_prefix
from arq.jobs import serialize_job
from arq.worker import Worker

from app import codec
from app.errors import PayloadError, RunFailedError
from app.exact import ExactSum
from app.keys import (
    SUM_CHUNK_JOB,
    SUM_CSV_JOB,
    SUM_CSV_TEXT_JOB,
    SUM_NPY_JOB,
    SUM_PARQUET_JOB,
    SUM_RANGE_JOB,
    SUM_TEXT_JOB,
    SUM_URL_JOB,
    Keys,
    arq_in_progress_key,
    arq_job_key,
    job_id,
)
from app.run_status import EndResult, Status
from app.runs import RunStore
from app.settings import Settings
from app.submit import Client
from app.worker import WorkerSettings, worker_settings
from app.worker.chunksum_worker import ChunksumWorker
from app.worker.settings import ARQ_MAX_TRIES
from jobs.chunks import sum_chunk
from tests.harness import ROOT, create_run, process_env, read_hash, running_worker, worker_process

CORRUPT_PARTS = [["i8", b"abc"]]  # 3 bytes: not a whole number of int64s


class Touch:
    """Unpickles to a call of ``Path.touch``: a stand-in for code run by a pickled payload."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def chunk_job(run_id: object, index: object, parts: object) -> bytes:
    """Return a serialized ``sum_chunk`` job, as the client writes it."""
    kwargs = {"run_id": run_id, "index": index, "parts": parts}
    return serialize_job(SUM_CHUNK_JOB, (), kwargs, None, now_ms(), serializer=codec.dumps)


def now_ms() -> int:
    """Return the time in milliseconds, arq's queue score."""
    return int(time.time() * 1000)


async def enqueue_raw(redis: ArqRedis, keys: Keys, arq_job_id: str, data: bytes) -> None:
    """Put a job definition and its queue entry in Redis by hand, as a client would."""
    await redis.psetex(arq_job_key(arq_job_id), 60_000, data)
    await redis.zadd(keys.queue, {arq_job_id: now_ms()})


async def run_burst(settings: Settings) -> Worker:
    """Run an in-process worker until the queue is empty, then close it."""
    worker = ChunksumWorker(
        **{**worker_settings(settings), "burst": True, "poll_delay": 0, "handle_signals": False}
    )
    try:
        await asyncio.wait_for(worker.main(), 10)
    finally:
        await worker.close()
    return worker


async def inbox_entries(redis: ArqRedis, keys: Keys, run_id: str) -> list[Any]:
    """Return the run's inbox entries, decoded (a batch's one by one)."""
    raw = await cast(Awaitable[list[bytes]], redis.lrange(keys.inbox(run_id), 0, -1))
    return [item for entry in raw for item in codec.loads_all(entry)]


async def next_wake_run_id(pubsub: Any) -> str:
    """Return the run id of the next wake-up published (the client's jobs are then queued)."""
    async with asyncio.timeout(5):
        while (message := await pubsub.get_message(timeout=None)) is None:
            pass
    first_job, *_ = message["data"].decode().split()  # the wake-up names the queued jobs
    run_id: str = first_job.rsplit(":", 1)[0]
    return run_id


@pytest.fixture
def keys(settings: Settings) -> Keys:
    """Return the test's key names."""
    return Keys(settings.key_prefix)


@pytest.fixture
def runs(redis: ArqRedis, keys: Keys) -> RunStore:
    """Return a run store on the test Redis."""
    return RunStore(redis, keys, ttl_s=600)


async def test_corrupt_payload_fails_the_run(
    settings: Settings, redis: ArqRedis, keys: Keys, runs: RunStore
) -> None:
    """A chunk whose bytes can't be decoded fails the run, naming the chunk, and tells the inbox."""
    run_id = uuid.uuid4().hex
    await create_run(runs, run_id, chunks=4)
    await enqueue_raw(redis, keys, job_id(run_id, 3), chunk_job(run_id, 3, CORRUPT_PARTS))
    worker = await run_burst(settings)
    assert worker.jobs_failed == 1
    status = await runs.read(run_id)
    assert status.status == "failed"
    assert status.error is not None
    assert "chunk 3" in status.error
    assert "not a whole number" in status.error
    assert await inbox_entries(redis, keys, run_id) == [[3, None, status.error]]
    assert await redis.ttl(keys.inbox(run_id)) > 0
    assert await redis.zcard(keys.queue) == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("record", "reason"),
    [(b"\xc1 not msgpack", "unable to deserialize job"), (None, "job expired")],
    ids=["undecodable", "expired"],
)
async def test_job_arq_gives_up_on_fails_its_run(
    settings: Settings,
    redis: ArqRedis,
    keys: Keys,
    runs: RunStore,
    record: bytes | None,
    reason: str,
) -> None:
    """A chunk job arq drops unrun (its record undecodable, or gone) fails the run, naming the
    chunk, instead of leaving it to wait for that chunk for ever."""
    run_id = uuid.uuid4().hex
    await create_run(runs, run_id, chunks=2)
    if record is None:
        await redis.zadd(keys.queue, {job_id(run_id, 1): now_ms()})
    else:
        await enqueue_raw(redis, keys, job_id(run_id, 1), record)
    worker = await run_burst(settings)
    assert worker.jobs_failed == 1
    status = await runs.read(run_id)
    assert status.status == "failed"
    assert status.error is not None
    assert "chunk 1 was given up by arq" in status.error
    assert reason in status.error


async def test_stale_entry_of_a_summed_chunk_fails_nothing(
    settings: Settings, redis: ArqRedis, keys: Keys, runs: RunStore
) -> None:
    """A queue entry left for a chunk that is already summed (a plain arq worker's retry can
    re-add one after another worker finished the chunk) expires without failing the run."""
    run_id = uuid.uuid4().hex
    await create_run(runs, run_id, chunks=2)
    await runs.record(run_id, 1, ExactSum.of_ints(np.array([7])), count=1)
    await redis.zadd(keys.queue, {job_id(run_id, 1): now_ms()})  # no job record behind it
    worker = await run_burst(settings)
    assert worker.jobs_failed == 1  # arq's "job expired"
    assert (await runs.read(run_id)).status == "running"


async def test_a_retry_never_requeues_a_finished_chunk(
    settings: Settings, redis: ArqRedis, keys: Keys
) -> None:
    """ChunksumWorker re-queues a retried job only if it is still queued: a chunk that another
    worker finished meanwhile (job gone) stays gone, where arq's ZINCRBY would add it back."""
    worker = ChunksumWorker(**worker_settings(settings), redis_pool=redis, handle_signals=False)
    queued, finished = job_id("run", 0), job_id("run", 1)
    await redis.zadd(keys.queue, {queued: 1000})
    for chunk in (queued, finished):
        await redis.set(arq_in_progress_key(chunk), b"1")
        await worker.finish_job(chunk, False, None, None, False, 500, None)
    assert await redis.zrange(keys.queue, 0, -1, withscores=True) == [(queued.encode(), 1500)]
    assert not await redis.exists(arq_in_progress_key(queued), arq_in_progress_key(finished))


async def test_chunk_out_of_arq_tries_fails_its_run(
    settings: Settings, redis: ArqRedis, keys: Keys, runs: RunStore
) -> None:
    """A chunk whose workers died under it ARQ_MAX_TRIES times fails its run when arq drops it."""
    run_id = uuid.uuid4().hex
    await create_run(runs, run_id, chunks=1)
    chunk = job_id(run_id, 0)
    await enqueue_raw(redis, keys, chunk, chunk_job(run_id, 0, codec.encode_chunk([1, 2], 0)))
    await redis.set(retry_key_prefix + chunk, ARQ_MAX_TRIES)  # each death took a try
    worker = await run_burst(settings)
    assert (worker.jobs_complete, worker.jobs_failed) == (0, 1)
    status = await runs.read(run_id)
    assert status.status == "failed"
    assert status.error is not None
    assert f"max {ARQ_MAX_TRIES} retries exceeded" in status.error


async def test_submit_waiting_on_a_corrupt_chunk_raises(
    settings: Settings, redis: ArqRedis, client: Client, keys: Keys, runs: RunStore
) -> None:
    """A submit whose chunk turns out corrupt raises RunFailedError naming the chunk."""
    async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(keys.wake_channel)
        submitting = asyncio.create_task(client.submit(range(300), chunks=3, timeout=20))
        run_id = await next_wake_run_id(pubsub)
    # the jobs are queued and no worker runs yet: corrupt chunk 1 where it waits
    await redis.psetex(arq_job_key(job_id(run_id, 1)), 60_000, chunk_job(run_id, 1, CORRUPT_PARTS))
    async with running_worker(settings):
        with pytest.raises(RunFailedError, match="chunk 1 can't be summed") as caught:
            await asyncio.wait_for(submitting, 20)
    assert caught.value.run_id == run_id
    status = await runs.read(run_id)
    assert (status.status, status.total) == ("failed", None)
    assert status.error is not None
    assert "chunk 1" in status.error


async def test_second_job_for_a_chunk_counts_once(
    settings: Settings, redis: ArqRedis, keys: Keys, runs: RunStore
) -> None:
    """Two jobs for the same chunk (different job ids) record one partial and count once."""
    run_id = uuid.uuid4().hex
    await create_run(runs, run_id, chunks=2)
    parts = codec.encode_chunk(range(10), 0)
    await enqueue_raw(redis, keys, job_id(run_id, 0), chunk_job(run_id, 0, parts))
    await enqueue_raw(redis, keys, job_id(run_id, 0) + ":again", chunk_job(run_id, 0, parts))
    worker = await run_burst(settings)
    assert (worker.jobs_complete, worker.jobs_failed) == (2, 0)
    await assert_recorded_once(redis, keys, runs, run_id, total=45)


async def test_a_chunks_record_script_finishes_its_job(
    settings: Settings,
    redis: ArqRedis,
    keys: Keys,
    runs: RunStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The script that records a chunk's partial finishes its arq job: nothing of the job
    is left in Redis, and the worker skips arq's own finish (a round trip) for it."""
    run_id = uuid.uuid4().hex
    await create_run(runs, run_id, chunks=2)
    arq_finishes: list[str] = []
    arq_finish = Worker.finish_job

    async def spy(self: Worker, job_id: str, *args: Any) -> None:
        arq_finishes.append(job_id)
        await arq_finish(self, job_id, *args)

    monkeypatch.setattr(Worker, "finish_job", spy)
    chunk = job_id(run_id, 0)
    await enqueue_raw(redis, keys, chunk, chunk_job(run_id, 0, codec.encode_chunk([1, 2], 1)))
    worker = await run_burst(settings)
    assert (worker.jobs_complete, arq_finishes) == (1, [])
    await assert_recorded_once(redis, keys, runs, run_id, total=3)
    assert await redis.exists(arq_job_key(chunk), arq_in_progress_key(chunk)) == 0
    assert await redis.exists(retry_key_prefix + chunk) == 0
    assert await redis.zscore(keys.queue, chunk) is None


async def test_same_job_redelivered_counts_once(
    settings: Settings, redis: ArqRedis, keys: Keys, runs: RunStore
) -> None:
    """The same chunk job delivered again after it finished changes nothing."""
    run_id = uuid.uuid4().hex
    await create_run(runs, run_id, chunks=2)
    data = chunk_job(run_id, 1, codec.encode_chunk([2**70, -1], 1))
    for _ in range(2):
        await enqueue_raw(redis, keys, job_id(run_id, 1), data)
        worker = await run_burst(settings)
        assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    await assert_recorded_once(redis, keys, runs, run_id, total=2**70 - 1, index=1)


async def assert_recorded_once(
    redis: ArqRedis, keys: Keys, runs: RunStore, run_id: str, *, total: int, index: int = 0
) -> None:
    """Check that exactly one partial, chunk ``index``'s, reached the run."""
    status = await runs.read(run_id)
    assert (status.status, status.done_chunks) == ("running", 1)
    assert list(await read_hash(redis, keys.partials(run_id))) == [str(index).encode()]
    [[recorded_index, wire, count]] = await inbox_entries(redis, keys, run_id)
    assert recorded_index == index
    assert ExactSum.from_wire(wire).value() == total
    assert count > 0


@pytest.mark.parametrize("status", [Status.DONE, Status.FAILED, Status.CANCELLED, None])
async def test_chunk_for_an_ended_run_records_nothing(
    settings: Settings, redis: ArqRedis, keys: Keys, runs: RunStore, status: Status | None
) -> None:
    """A chunk job for a run that ended (or no longer exists) leaves no partial behind."""
    run_id = uuid.uuid4().hex
    if status is not None:
        await create_run(runs, run_id, chunks=1)
        assert await runs.end(run_id, status) is EndResult.ENDED
    await enqueue_raw(redis, keys, job_id(run_id, 0), chunk_job(run_id, 0, [["i1", b"\x05"]]))
    worker = await run_burst(settings)
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    assert await redis.exists(keys.partials(run_id), keys.inbox(run_id)) == 0
    if status is not None:
        stored = await runs.read(run_id)
        assert (stored.status, stored.done_chunks) == (status, 0)
    else:
        assert await redis.exists(keys.run(run_id)) == 0


async def test_pickled_job_is_never_unpickled(
    settings: Settings, redis: ArqRedis, keys: Keys, tmp_path: Path
) -> None:
    """A pickled job (arq's default format) is refused unread and dropped from the queue."""
    probe, marker = tmp_path / "probe", tmp_path / "marker"

    def pickled_job(path: Path) -> bytes:
        job = {"t": 1, "f": SUM_CHUNK_JOB, "a": (), "k": {"parts": Touch(path)}, "et": now_ms()}
        return pickle.dumps(job)

    pickle.loads(pickled_job(probe))  # the payload is live: unpickling it runs code
    assert probe.exists()
    await enqueue_raw(redis, keys, "planted", pickled_job(marker))
    worker = await run_burst(settings)
    assert worker.jobs_failed == 1
    assert not marker.exists()
    assert await redis.zscore(keys.queue, "planted") is None
    assert await redis.exists(arq_job_key("planted")) == 0


@pytest.mark.timeout(60)
async def test_worker_process_sums_a_run(settings: Settings, client: Client) -> None:
    """A `chunksum worker` subprocess picks up and sums a submitted run."""
    async with worker_process(settings):
        result = await client.submit(range(1, 1001), chunks=4, timeout=45)
    assert (result.total, result.chunks) == (500_500, 4)


@pytest.mark.timeout(60)
async def test_procfile_worker_command_sums_a_run(
    settings: Settings, redis: ArqRedis, client: Client, keys: Keys
) -> None:
    """`arq app.worker.WorkerSettings --burst` (the Procfile's command) drains a submitted run."""
    async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(keys.wake_channel)
        submitting = asyncio.create_task(client.submit(range(1000), chunks=4, timeout=45))
        await next_wake_run_id(pubsub)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "arq",
        "app.worker.WorkerSettings",
        "--burst",
        env=process_env(settings),
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    result = await asyncio.wait_for(submitting, 10)
    assert (result.total, result.chunks) == (499_500, 4)


def test_worker_settings_module_is_what_arq_needs() -> None:
    """`app.worker.WorkerSettings` holds only Worker arguments, with its own prefix's queue."""
    settings = WorkerSettings
    assert isinstance(settings, dict)
    assert set(settings) <= set(inspect.signature(Worker).parameters)
    assert {"functions", "queue_name", "redis_settings", "job_deserializer"} <= set(settings)
    own: Settings = settings["ctx"]["settings"]
    assert settings["queue_name"] == Keys(own.key_prefix).queue
    jobs = [function.name for function in settings["functions"]]
    assert jobs == [
        SUM_CHUNK_JOB,
        SUM_RANGE_JOB,
        SUM_TEXT_JOB,
        SUM_NPY_JOB,
        SUM_PARQUET_JOB,
        SUM_CSV_JOB,
        SUM_CSV_TEXT_JOB,
        SUM_URL_JOB,
    ]
    assert settings["job_deserializer"] is codec.loads


def test_worker_settings_follow_the_settings() -> None:
    """worker_settings() takes the queue, limits and poll from the Settings it is given."""
    settings = Settings.from_env(
        env={"CHUNKSUM_KEY_PREFIX": "staging", "CHUNKSUM_WORKER_MAX_JOBS": "3"}
    )
    options = worker_settings(settings)
    assert options["queue_name"] == Keys("staging").queue == "staging:queue"
    assert options["max_jobs"] == 3
    assert options["ctx"] == {"settings": settings}
    assert worker_settings(settings)["ctx"] is not options["ctx"]  # each worker its own ctx


@pytest.mark.parametrize(
    ("run_id", "index"), [(1, 0), (None, 0), (b"run", 0), ("run", "0"), ("run", 1.0), ("run", None)]
)
async def test_sum_chunk_refuses_wrong_typed_ids(
    runs: RunStore, run_id: object, index: object
) -> None:
    """sum_chunk raises PayloadError for a run_id that isn't a str or an index that isn't an int."""
    await create_run(runs, "run", chunks=1)
    ids: dict[str, Any] = {"run_id": run_id, "index": index}  # as decoded from a bad job
    with pytest.raises(PayloadError, match="run_id: str and index: int"):
        await sum_chunk({"runs": runs}, **ids, parts=[["i1", b"\x01"]])
    stored = await runs.read("run")
    assert (stored.status, stored.done_chunks) == ("queued", 0)


async def test_sum_chunk_records_once(runs: RunStore) -> None:
    """sum_chunk returns True for a chunk's first partial and False for a duplicate."""
    await create_run(runs, "run", chunks=2)
    parts = codec.encode_chunk(np.arange(100), 0)
    assert await sum_chunk({"runs": runs}, run_id="run", index=0, parts=parts) is True
    assert await sum_chunk({"runs": runs}, run_id="run", index=0, parts=parts) is False
    stored = await runs.read("run")
    assert (stored.status, stored.done_chunks) == ("running", 1)


async def test_sum_chunk_fails_the_run_on_a_bad_payload(runs: RunStore) -> None:
    """sum_chunk raises PayloadError for an undecodable payload and fails the run with it."""
    await create_run(runs, "run", chunks=2)
    with pytest.raises(PayloadError, match="not a whole number"):
        await sum_chunk({"runs": runs}, run_id="run", index=1, parts=CORRUPT_PARTS)
    stored = await runs.read("run")
    assert stored.status == "failed"
    assert stored.error is not None
    assert stored.error.startswith("chunk 1 can't be summed: ")


def failing_sum_parts(failures: int) -> Any:
    """Return a sum_parts that raises RuntimeError ``failures`` times, then works."""
    calls = 0
    real = codec.sum_parts

    def sum_parts(parts: object) -> ExactSum:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise RuntimeError(f"boom {calls}")
        return real(parts)

    return sum_parts


@pytest.mark.timeout(30)
async def test_transient_chunk_failure_is_retried(
    client: Client, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk that raises unexpectedly is retried with backoff, the total stays exact, and
    the run counts the retries; its timeline has each try, on the worker that ran it."""
    monkeypatch.setattr("jobs.chunks.RETRY_BASE_S", 0.01)
    monkeypatch.setattr(codec, "sum_parts", failing_sum_parts(2))
    result = await client.submit(range(100), chunks=1, timeout=20)
    assert result.total == 4950
    assert (await client.status(result.run_id)).retried_chunks == 2
    (live,) = await client.workers()
    spans = await client.runs.timeline(result.run_id)
    assert [(s.attempt.job_try, s.outcome, s.numbers) for s in spans] == [
        (1, "retried", None),
        (2, "retried", None),
        (3, "done", 100),
    ]
    assert {s.attempt.worker for s in spans} == {live.worker_id}


@pytest.mark.timeout(30)
async def test_chunk_that_keeps_failing_fails_the_run(
    client: Client, redis: ArqRedis, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After CHUNK_TRIES failures the run fails with the chunk index and the worker's error."""
    monkeypatch.setattr("jobs.chunks.RETRY_BASE_S", 0.01)
    monkeypatch.setattr(codec, "sum_parts", failing_sum_parts(100))
    with pytest.raises(RunFailedError, match=r"chunk 0 failed 4 times .*with RuntimeError: boom 4"):
        await client.submit(range(100), chunks=1, timeout=20)
    assert await redis.zcard(client.keys.queue) == 0
    (run,) = await client.recent_runs(1)
    (live,) = await client.workers()
    assert (run.failed_chunk, run.failed_worker) == (0, live.worker_id)
    spans = await client.runs.timeline(run.run_id)
    assert [(s.attempt.job_try, s.outcome) for s in spans] == [
        (1, "retried"),
        (2, "retried"),
        (3, "retried"),
        (4, "failed"),
    ]
