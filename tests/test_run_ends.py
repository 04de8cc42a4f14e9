"""A worker's record of runs' ends (app.worker.run_ends)."""

from app.worker.run_ends import RECENT_ENDS, RunEnds


def never_stop(run_id: str) -> None:
    raise AssertionError(f"run {run_id}'s chunks were stopped")


async def test_a_run_heard_to_end_before_the_wait_needs_no_waiting() -> None:
    """A job asking after a run whose end the worker heard first is told at once (it would
    otherwise wait its whole timeout and find the run ended only then)."""
    ends = RunEnds(stop_chunks=never_stop)
    ends.ended("run", "done")
    assert await ends.wait("run", timeout_s=0)
    assert not await ends.wait("other", timeout_s=0)


async def test_only_the_latest_ends_are_remembered() -> None:
    """The worker remembers the last RECENT_ENDS ends, not every run's for ever."""
    ends = RunEnds(stop_chunks=never_stop)
    for n in range(RECENT_ENDS + 1):
        ends.ended(f"run-{n}", "done")
    assert not await ends.wait("run-0", timeout_s=0)
    assert await ends.wait("run-1", timeout_s=0)
    assert await ends.wait(f"run-{RECENT_ENDS}", timeout_s=0)
