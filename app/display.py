"""What the `chunksum` command prints: results, run status, tables of runs and workers,
progress bars. Totals print in full, however large (see :func:`app.exact.total_text`)."""

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from app.exact import Total, json_total, total_text
from app.heartbeat import WorkerInfo
from app.run_status import RunStatus
from app.submission import RunResult


def text(total: Total) -> str:
    """Return a total as text: repr() refuses ints of over 4300 digits, total_text() doesn't."""
    return total_text(total)[0]


def print_result(result: RunResult, *, as_json: bool) -> None:
    """Print a finished run's id, total and counts."""
    if as_json:
        print(json.dumps({**asdict(result), "total": json_total(result.total)}))
        return
    print(f"run_id  {result.run_id}")
    print(f"total   {text(result.total)}")
    print(f"count   {result.count} numbers in {result.chunks} chunks, {result.elapsed_s:.3f} s")


def print_status(run: RunStatus, *, as_json: bool) -> None:
    """Print a run's stored state: a field a line (those that are set), or JSON."""
    fields = run.to_json()
    if as_json:
        print(json.dumps(fields))
        return
    shown = {name: value for name, value in fields.items() if value is not None}
    width = max(map(len, shown)) + 2
    for name, value in shown.items():
        print(f"{name:<{width}}{value}")


def print_runs(runs: list[RunStatus], *, as_json: bool) -> None:
    """Print runs as a table, or as JSON lines."""
    if as_json:
        for run in runs:
            print(json.dumps(run.to_json()))
        return
    table = Table("run", "status", "chunks", "count", "total", "took", "error", box=None)
    for run in runs:
        took = "" if run.finished_at is None else f"{run.finished_at - run.created_at:.2f} s"
        table.add_row(
            run.run_id,
            run.status,
            f"{run.done_chunks}/{run.chunks if run.chunks is not None else '?'}",
            "" if run.count is None else f"{run.count:,}",
            "" if run.total is None else text(run.total),
            took,
            run.error or "",
        )
    Console().print(table)


def print_workers(workers: list[WorkerInfo], *, as_json: bool) -> None:
    """Print live workers as a table, or as JSON lines."""
    if as_json:
        for worker in workers:
            print(json.dumps(asdict(worker)))
        return
    now = time.time()
    table = Table("worker", "host", "pid", "up", "done", "failed", "running", "seen", box=None)
    for worker in workers:
        table.add_row(
            worker.worker_id,
            worker.host,
            str(worker.pid),
            f"{now - worker.started_at:.0f} s",
            *("" if n is None else str(n) for n in (worker.done, worker.failed, worker.running)),
            f"{now - worker.last_seen:.1f} s ago",
        )
    Console().print(table)


@contextlib.contextmanager
def chunk_progress(shown: bool) -> Iterator[Callable[[int, int | None], None] | None]:
    """Show a progress bar of chunks done on stderr; yield its update function (None if
    not ``shown``)."""
    if not shown:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    console = Console(stderr=True)
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("chunks", total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update


@contextlib.contextmanager
def run_progress(run_id: str) -> Iterator[Callable[[RunStatus], None]]:
    """Show a run's progress on stderr (chunks, chunks/s, numbers/s, time left); yield the
    function that updates it from the run's latest state."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"run {run_id}", total=None, rate="")

        def update(run: RunStatus) -> None:
            progress.update(task, completed=run.done_chunks, total=run.chunks, rate=_rate(run))

        yield update


def _rate(run: RunStatus) -> str:
    elapsed_s = max(time.time() - run.created_at, 1e-3)
    rate = f"{run.done_chunks / elapsed_s:,.1f} chunks/s"
    if run.count and run.chunks:  # known once every chunk is enqueued
        rate += f", {run.count * run.done_chunks / run.chunks / elapsed_s:,.0f} numbers/s"
    return rate
