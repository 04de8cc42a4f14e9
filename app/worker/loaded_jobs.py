"""Running jobs that their claim loaded: arq's ``run_job``, less its first round trip.

arq's worker reads each job it has claimed in a transaction of its own (GET the record,
INCR and EXPIRE its try count, ZREM an abort request): one round trip a job, after the
claim's. chunksum's claim script (``app/lua/claim.lua``) does the same in the claim, for a
batch of jobs, and :class:`LoadedJobs` runs each job from what the claim returned, step for
step as arq 0.28's ``Worker.run_job`` does after its read: an expired or undecodable
record, an abort asked before the start, an unknown function, a try count raised by
``enqueue_job(_job_try=...)``, ``max_tries``, the hooks, the job's timeout, ``Retry`` and
its defer, a cancelled job (run again) or an aborted one (finished), and the result.
arq's own worker tests run against it (tests/test_arq_compat.py). It also skips building
arq's "job started" log line (a repr of the job's arguments, a chunk's bytes and all)
unless that line is logged.
"""

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from arq import worker as arq_worker
from arq.cron import CronJob
from arq.jobs import SerializationError, deserialize_job_raw, serialize_result
from arq.utils import args_to_string, ms_to_datetime, timestamp_ms, truncate
from arq.worker import Function, JobExecutionFailed, Retry, RetryJob, Worker, no_result

from app.keys import arq_retry_key

logger = logging.getLogger("arq.worker")  # arq's own lines, under arq's logger
TRY_COUNT_TTL_S = 88_400  # how long arq keeps a job's try count


@dataclass(frozen=True, slots=True)
class Loaded:
    """A claimed job as the claim script read it."""

    record: bytes | None  # None: the record is gone (the job expired)
    job_try: int
    aborted: bool  # an abort was asked for before it started (allow_abort_jobs)
    # what to run in place of the job's function, which was run already (and raised) as
    # it was claimed (app.worker.lean_chunks)
    instead: Function | None = None


@dataclass(slots=True)
class JobRun:
    """One run of a job: what arq's ``run_job`` keeps in its locals."""

    job_id: str
    score: int
    job_try: int
    start_ms: int
    function_name: str = "<unknown>"
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    enqueue_time_ms: int = 0

    def seconds_since(self, then_ms: int) -> float:
        """Return the seconds from ``then_ms`` (a timestamp in ms) to now, for arq's lines."""
        return (timestamp_ms() - then_ms) / 1000


@dataclass(slots=True)
class _Outcome:
    """How a job's call ended, as arq's ``run_job`` decides it."""

    result: Any = no_result
    success: bool = False
    finish: bool = False
    incr_score: int | None = None
    finished_ms: int = 0


class LoadedJobs(Worker):
    """An arq ``Worker`` that runs jobs from their claim's read (see :meth:`preload`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: dict[str, Loaded] = {}

    def preload(self, job_id: str, loaded: Loaded) -> None:
        """Hand :meth:`run_job` what the claim read of ``job_id``."""
        self._loaded[job_id] = loaded

    async def run_job(self, job_id: str, score: int) -> None:
        loaded = self._loaded.pop(job_id, None)
        if loaded is None:  # not claimed by a batch claim: arq reads it itself
            await super().run_job(job_id, score)
            return
        run = JobRun(job_id, score, loaded.job_try, timestamp_ms())
        function = await self._checked(run, loaded)
        if function is not None:
            await self._execute(run, loaded.instead or function)

    async def _checked(self, run: JobRun, loaded: Loaded) -> Function | CronJob | None:
        """Return the job's function, or None if the job failed arq's checks (and was
        finished as failed)."""
        if loaded.record is None:
            logger.warning("job %s expired", run.job_id)
            await self._failed(run, JobExecutionFailed("job expired"))
            return None
        try:
            decoded = deserialize_job_raw(loaded.record, deserializer=self.job_deserializer)
        except SerializationError as exc:
            logger.exception("deserializing job %s failed", run.job_id)
            await self._failed(run, exc)
            return None
        run.function_name, run.args, run.kwargs, enqueue_job_try, run.enqueue_time_ms = decoded
        if loaded.aborted:
            t = run.seconds_since(run.enqueue_time_ms)
            logger.info("%6.2fs ⊘ %s:%s aborted before start", t, run.job_id, run.function_name)
            await self._failed(run, asyncio.CancelledError())
            return None
        function = self.functions.get(run.function_name)
        if function is None:
            logger.warning("job %s, function %r not found", run.job_id, run.function_name)
            message = f"function {run.function_name!r} not found"
            await self._failed(run, JobExecutionFailed(message))
            return None
        if enqueue_job_try and enqueue_job_try > run.job_try:
            run.job_try = enqueue_job_try
            await self.pool.setex(arq_retry_key(run.job_id), TRY_COUNT_TTL_S, str(run.job_try))
        max_tries = self.max_tries if function.max_tries is None else function.max_tries
        if run.job_try > max_tries:
            ref = job_ref(run, function)
            t = run.seconds_since(run.enqueue_time_ms)
            logger.warning("%6.2fs ! %s max retries %d exceeded", t, ref, max_tries)
            failure = JobExecutionFailed(f"max {max_tries} retries exceeded")
            await self._failed(run, failure, ref=ref)
            return None
        return function

    def job_ctx(self, run: JobRun) -> dict[str, Any]:
        """Return the ctx arq hands a job's hooks and function: the worker's, and the job's."""
        return {
            **self.ctx,
            "job_id": run.job_id,
            "job_try": run.job_try,
            "enqueue_time": ms_to_datetime(run.enqueue_time_ms),
            "score": run.score,
        }

    async def _failed(self, run: JobRun, exc: BaseException, *, ref: str | None = None) -> None:
        """Finish a job that failed before its function ran, as arq's ``job_failed``."""
        self.jobs_failed += 1
        result_data = serialize_result(
            function=run.function_name,
            args=run.args,
            kwargs=run.kwargs,
            job_try=run.job_try,
            enqueue_time_ms=run.enqueue_time_ms,
            success=False,
            result=exc,
            start_ms=run.start_ms,
            finished_ms=timestamp_ms(),
            ref=ref or f"{run.job_id}:{run.function_name}",
            serializer=self.job_serializer,
            queue_name=self.queue_name,
            job_id=run.job_id,
        )
        await asyncio.shield(self.finish_failed_job(run.job_id, result_data))

    async def _execute(self, run: JobRun, function: Function | CronJob) -> None:
        """Run the job's function with arq's hooks, then finish the job as arq does."""
        ref = job_ref(run, function)
        # read where arq's run_job reads it (its module), when the job runs
        cron = isinstance(function, CronJob)
        keep_in_progress = arq_worker.keep_cronjob_progress if cron else None  # type: ignore[attr-defined]
        ctx = self.job_ctx(run)
        if self.on_job_start:
            await self.on_job_start(ctx)
        run.start_ms = timestamp_ms()
        outcome = await self._call(run, function, ctx, ref)
        forever = self.keep_result_forever
        if function.keep_result_forever is not None:
            forever = function.keep_result_forever
        result_s = self.keep_result_s if function.keep_result_s is None else function.keep_result_s
        result_data = None
        if outcome.result is not no_result and (forever or result_s > 0):
            result_data = serialize_result(
                run.function_name,
                run.args,
                run.kwargs,
                run.job_try,
                run.enqueue_time_ms,
                outcome.success,
                outcome.result,
                run.start_ms,
                outcome.finished_ms,
                ref,
                self.queue_name,
                job_id=run.job_id,
                serializer=self.job_serializer,
            )
        if self.on_job_end:
            await self.on_job_end(ctx)
        finish = self.finish_job(
            run.job_id,
            outcome.finish,
            result_data,
            result_s,
            forever,
            outcome.incr_score,
            keep_in_progress,
        )
        await asyncio.shield(finish)
        if self.after_job_end:
            await self.after_job_end(ctx)

    async def _call(
        self, run: JobRun, function: Function | CronJob, ctx: dict[str, Any], ref: str
    ) -> _Outcome:
        """Call the job's function within its timeout; return how that ended."""
        timeout_s = self.job_timeout_s if function.timeout_s is None else function.timeout_s
        self.log_start(run, ref)
        task = self.loop.create_task(function.coroutine(ctx, *run.args, **run.kwargs))
        self.job_tasks[run.job_id] = task
        try:
            result = await asyncio.wait_for(task, timeout_s)
            # within the try, as arq: a repr that raises fails the job
            finished_ms = self.log_done(run, ref, result)
        except (Exception, asyncio.CancelledError) as exc:
            return self._outcome_of_failure(run, exc, ref)
        finally:
            del self.job_tasks[run.job_id]
        self.jobs_complete += 1
        return _Outcome(result=result, success=True, finish=True, finished_ms=finished_ms)

    def log_start(self, run: JobRun, ref: str) -> None:
        """Log arq's line for a job's start: a repr of every argument, so only if logged."""
        if logger.isEnabledFor(logging.INFO):
            extra = f" try={run.job_try}" if run.job_try > 1 else ""
            if (run.start_ms - run.score) > 1200:
                extra += f" delayed={(run.start_ms - run.score) / 1000:0.2f}s"
            t = (run.start_ms - run.enqueue_time_ms) / 1000
            logger.info("%6.2fs → %s(%s)%s", t, ref, args_to_string(run.args, run.kwargs), extra)

    def log_done(self, run: JobRun, ref: str, result: Any) -> int:
        """Log arq's line for a job that returned ``result``; return the time (ms)."""
        shown = "" if result is None or not self.log_results else truncate(repr(result))
        finished_ms = timestamp_ms()
        logger.info("%6.2fs ← %s ● %s", (finished_ms - run.start_ms) / 1000, ref, shown)
        return finished_ms

    def _outcome_of_failure(self, run: JobRun, exc: BaseException, ref: str) -> _Outcome:
        """Decide as arq does: retry (Retry, cancelled), aborted, or failed."""
        finished_ms = timestamp_ms()
        t = (finished_ms - run.start_ms) / 1000
        if self.retry_jobs and isinstance(exc, Retry):
            incr_score = exc.defer_score
            logger.info("%6.2fs ↻ %s retrying job in %0.2fs", t, ref, (incr_score or 0) / 1000)
            if incr_score:
                incr_score += timestamp_ms() - run.score
            self.jobs_retried += 1
            return _Outcome(incr_score=incr_score, finished_ms=finished_ms)
        if run.job_id in self.aborting_tasks and isinstance(exc, asyncio.CancelledError):
            logger.info("%6.2fs ⊘ %s aborted", t, ref)
            self.aborting_tasks.remove(run.job_id)
            self.jobs_failed += 1
            return _Outcome(result=exc, finish=True, finished_ms=finished_ms)
        if self.retry_jobs and isinstance(exc, asyncio.CancelledError | RetryJob):
            logger.info("%6.2fs ↻ %s cancelled, will be run again", t, ref)
            self.jobs_retried += 1
            return _Outcome(finished_ms=finished_ms)
        extra = getattr(exc, "extra", None)
        extra = extra() if callable(extra) else extra
        name = type(exc).__name__
        logger.error(
            "%6.2fs ! %s failed, %s: %s", t, ref, name, exc, exc_info=exc, extra={"extra": extra}
        )
        self.jobs_failed += 1
        return _Outcome(result=exc, finish=True, finished_ms=finished_ms)


def job_ref(run: JobRun, function: Function | CronJob) -> str:
    """arq's name for a job in its log lines and results: a cron job's name, else id:name."""
    if isinstance(function, CronJob):
        return run.function_name
    return f"{run.job_id}:{run.function_name}"
