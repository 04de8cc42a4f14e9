"""The `chunksum` command: run, submit, worker, status, result, wait, cancel, runs, workers,
health, bench."""

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar

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

from app.allocator import tune_allocator
from app.chunking import Numbers
from app.errors import ChunksumError, SettingsError, WaitTimeoutError
from app.exact import total_text
from app.inputs import inclusive_range, parse_lines
from app.keys import Keys
from app.redis_server import RedisServer
from app.runs import ACTIVE, RunStatus
from app.settings import Settings
from app.submit import Client, RunResult
from app.worker_processes import WorkerProcesses

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
WATCH_REFRESH_S = 0.5
DASHBOARD_TOKEN_ENV = "CHUNKSUM_DASHBOARD_TOKEN"  # set: the dashboard may cancel runs
T = TypeVar("T")
_JSON_INT_BITS = 14_000  # 10**4214 < 2**14000 < 10**4215: within the 4300-digit limit


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run one command, and return its exit status."""
    args = _parser().parse_args(argv)
    tune_allocator()
    try:
        settings = Settings.from_env()
        if args.redis_url is not None:
            settings = replace(settings, redis_url=args.redis_url)
        result: int = args.command(args, settings)
        return result
    except ChunksumError as exc:
        print(f"chunksum: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("chunksum: interrupted; the run was cancelled and its jobs removed", file=sys.stderr)
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chunksum", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run = _command(
        commands,
        "run",
        _run,
        "sum numbers start to finish; with no Redis URL, on a private Redis with local workers",
    )
    _add_input_options(run)
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local worker processes to start (default: one per CPU with the "
        "private Redis, none with --redis-url/REDIS_URL)",
    )
    submit = _command(commands, "submit", _submit, "sum numbers on the workers of a Redis")
    _add_input_options(submit)
    worker = _command(commands, "worker", _worker, "run an arq worker for chunk jobs")
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    worker.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    worker.add_argument(
        "--log-format", default="text", choices=["text", "json"], help="json: one object a line"
    )
    worker.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on this port"
    )
    worker.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="HOST", help="address for --metrics-port"
    )
    status = _command(commands, "status", _status, "show a run's state")
    status.add_argument("run_id", metavar="RUN_ID")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--watch", action="store_true", help="show live progress until the run ends, then its state"
    )
    runs = _command(commands, "runs", _runs, "list recent runs, newest first")
    runs.add_argument("--limit", type=int, default=20, metavar="N", help="at most N runs")
    runs.add_argument("--json", action="store_true", help="print JSON lines")
    workers = _command(commands, "workers", _workers, "list live workers (from heartbeats)")
    workers.add_argument("--json", action="store_true", help="print JSON lines")
    _command(commands, "health", _health, "exit 0 if Redis answers and a live worker serves")
    dashboard = _command(commands, "dashboard", _dashboard, "serve the live web dashboard")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on")
    dashboard.add_argument("--port", type=int, default=8000, help="port to listen on")
    result = _command(commands, "result", _result, "print a finished run's total")
    result.add_argument("run_id", metavar="RUN_ID")
    wait = _command(commands, "wait", _wait, "wait for a run to end, then print its total")
    wait.add_argument("run_id", metavar="RUN_ID")
    wait.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this long")
    cancel = _command(commands, "cancel", _cancel, "cancel a run and remove its queued chunks")
    cancel.add_argument("run_id", metavar="RUN_ID")
    _add_bench_options(_command(commands, "bench", _bench, "time chunksum against baselines"))
    return parser


def _command(commands: Any, name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help_text, description=help_text
    )
    parser.set_defaults(command=handler)
    parser.add_argument("--redis-url", metavar="URL", help="Redis to use (default: $REDIS_URL)")
    return parser


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--range",
        nargs=2,
        type=int,
        metavar=("FIRST", "LAST"),
        help="the integers FIRST..LAST, both included",
    )
    source.add_argument(
        "--file", metavar="PATH", help="one number per line ('-' for stdin, the default when piped)"
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--chunks", type=int, metavar="N", help="split into N balanced chunks")
    size.add_argument("--chunk-size", type=int, metavar="N", help="N numbers per chunk")
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="fail the run if it takes longer (default: wait)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_bench_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print every raw number as JSON")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="worker processes")
    parser.add_argument("--repeat", type=int, default=5, metavar="R", help="runs per workload")
    parser.add_argument("--only", metavar="W1,W3", help="run only these workloads (W1..W7)")
    parser.add_argument(
        "--scale", type=float, default=1.0, metavar="F", help="multiply workload sizes by F"
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="instead: chunks/s for 1, 2, 4 and 8 workers (see --counts), CPU- and I/O-bound",
    )
    parser.add_argument("--counts", default="1,2,4,8", metavar="1,2,4", help="with --scaling")
    parser.add_argument("--plot", metavar="PNG", help="with --scaling: draw the curve here")


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    # imported here: the bench pulls in its workloads and baselines, which other commands don't need
    from app.bench import BenchOptions, parse_only, run_bench

    if args.scaling:
        return _bench_scaling(args, settings)
    options = BenchOptions(
        workers=args.workers,
        repeat=args.repeat,
        only=parse_only(args.only),
        scale=args.scale,
        as_json=args.json,
    )
    return run_bench(options, settings)


def _bench_scaling(args: argparse.Namespace, settings: Settings) -> int:
    from app import bench_scaling
    from app.keys import BENCH_PREFIX

    try:
        counts = tuple(int(count) for count in args.counts.split(","))
    except ValueError as exc:
        raise SettingsError(
            f"--counts takes worker counts, e.g. 1,2,4,8, not {args.counts!r}"
        ) from exc
    with contextlib.ExitStack() as stack:
        if settings.redis_url is None:
            settings = replace(settings, redis_url=stack.enter_context(RedisServer()).url)
        settings = replace(settings, key_prefix=BENCH_PREFIX)
        points = bench_scaling.measure_scaling(
            settings, counts=counts, repeat=args.repeat, scale=args.scale
        )
    print(bench_scaling.render(points, as_json=args.json))
    if args.plot:
        bench_scaling.plot(points, Path(args.plot))
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    with contextlib.ExitStack() as stack:
        if settings.redis_url is None:
            server = stack.enter_context(RedisServer())
            settings = replace(settings, redis_url=server.url)
            workers = (os.cpu_count() or 2) if args.workers is None else args.workers
        else:
            workers = args.workers or 0
        if workers:
            stack.enter_context(WorkerProcesses(workers, settings))
        return _submit(args, settings)


def _submit(args: argparse.Namespace, settings: Settings) -> int:
    with _numbers(args) as numbers, _progress(args) as on_progress:
        result = _call(
            settings,
            lambda client: client.submit(
                numbers,
                chunks=args.chunks,
                chunk_size=args.chunk_size,
                timeout=args.timeout,
                on_progress=on_progress,
            ),
        )
    _print_result(result, as_json=args.json)
    return 0


def _call(settings: Settings, method: Callable[[Client], Awaitable[T]]) -> T:
    """Open a client, await ``method(client)`` in a fresh event loop, close the client."""

    async def call() -> T:
        async with Client(settings) as client:
            return await method(client)

    return asyncio.run(call())


@contextlib.contextmanager
def _numbers(args: argparse.Namespace) -> Iterator[Numbers]:
    if args.range is not None:
        yield inclusive_range(*args.range)
    elif args.file not in (None, "-"):
        # errors="replace": a non-UTF-8 line becomes "line N is not a number", not a traceback
        try:
            lines = open(args.file, encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as exc:
            raise SettingsError(
                f"cannot read --file {args.file!r} ({exc.strerror}); give a readable text file "
                "with one number per line, or '-' for stdin"
            ) from exc
        with lines:
            yield parse_lines(lines, args.file)
    elif args.file == "-" or not sys.stdin.isatty():
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
        yield parse_lines(stdin, "<stdin>")
    else:
        raise ChunksumError("no numbers: give --range FIRST LAST, --file PATH, or pipe them in")


@contextlib.contextmanager
def _progress(args: argparse.Namespace) -> Iterator[Any]:
    if args.quiet or not sys.stderr.isatty():
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    console = Console(stderr=True)
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("chunks", total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _print_result(result: RunResult, *, as_json: bool) -> None:
    if as_json:
        fields = {
            "run_id": result.run_id,
            "total": _json_number(result.total),
            "count": result.count,
            "chunks": result.chunks,
            "elapsed_s": result.elapsed_s,
        }
        print(json.dumps(fields))
        return
    print(f"run_id  {result.run_id}")
    print(f"total   {_text(result.total)}")
    print(f"count   {result.count} numbers in {result.chunks} chunks, {result.elapsed_s:.3f} s")


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    # imported here, not at the top: only a worker loads job code (the client never does)
    from app import logs, metrics
    from app.claims import ChunksumWorker
    from app.worker import worker_settings

    logs.configure(args.log_level, args.log_format)
    if args.metrics_port is not None:
        metrics.serve(args.metrics_port, args.metrics_host)
    ChunksumWorker(**worker_settings(settings), burst=args.burst).run()
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    if args.watch:
        run = _call(settings, lambda client: _watch(client, args.run_id))
    else:
        run = _call(settings, lambda client: client.status(args.run_id))
    if args.json:
        print(json.dumps(_status_fields(run)))
        return 0
    fields = {name: value for name, value in _status_fields(run).items() if value is not None}
    width = max(map(len, fields)) + 2
    for name, value in fields.items():
        print(f"{name:<{width}}{value}")
    return 0


def _status_fields(run: RunStatus) -> dict[str, Any]:
    return {**asdict(run), "total": _json_number(run.total)}


async def _watch(client: Client, run_id: str) -> RunStatus:
    """Show a run's progress (chunks, chunks/s, time left) until it ends; return it."""
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"run {run_id}", total=None, rate="")
        while (run := await client.status(run_id)).status in ACTIVE:
            elapsed_s = max(time.time() - run.created_at, 1e-3)
            rate = f"{run.done_chunks / elapsed_s:,.1f} chunks/s"
            if run.count and run.chunks:  # known once every chunk is enqueued
                rate += f", {run.count * run.done_chunks / run.chunks / elapsed_s:,.0f} numbers/s"
            progress.update(task, completed=run.done_chunks, total=run.chunks, rate=rate)
            with contextlib.suppress(WaitTimeoutError):  # the refresh interval of the display
                return await client.wait(run_id, timeout=WATCH_REFRESH_S)
    return run


def _runs(args: argparse.Namespace, settings: Settings) -> int:
    runs = _call(settings, lambda client: client.recent_runs(args.limit))
    if args.json:
        for run in runs:
            print(json.dumps(_status_fields(run)))
        return 0
    table = Table("run", "status", "chunks", "count", "total", "took", "error", box=None)
    for run in runs:
        took = "" if run.finished_at is None else f"{run.finished_at - run.created_at:.2f} s"
        table.add_row(
            run.run_id,
            run.status,
            f"{run.done_chunks}/{run.chunks if run.chunks is not None else '?'}",
            "" if run.count is None else f"{run.count:,}",
            "" if run.total is None else _text(run.total),
            took,
            run.error or "",
        )
    Console().print(table)
    return 0


def _workers(args: argparse.Namespace, settings: Settings) -> int:
    workers = _call(settings, lambda client: client.workers())
    if args.json:
        for worker in workers:
            print(json.dumps(asdict(worker)))
        return 0
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
    return 0


def _dashboard(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn  # imported here: only the dashboard serves HTTP

    from app.dashboard import create_app

    token = os.environ.get(DASHBOARD_TOKEN_ENV) or None
    mode = "cancelling allowed with the token" if token else "read-only"
    print(f"chunksum dashboard on http://{args.host}:{args.port}/ ({mode})", file=sys.stderr)
    uvicorn.run(
        create_app(settings, token=token), host=args.host, port=args.port, log_level="warning"
    )
    return 0


def _health(args: argparse.Namespace, settings: Settings) -> int:
    workers = _call(settings, lambda client: client.workers())
    queue = Keys(settings.key_prefix).queue
    if not workers:
        print(f"unhealthy: Redis answers, but no live worker serves {queue}", file=sys.stderr)
        return EXIT_FAILED
    print(f"ok: {len(workers)} live worker(s) serve {queue}")
    return 0


def _result(args: argparse.Namespace, settings: Settings) -> int:
    print(_text(_call(settings, lambda client: client.result(args.run_id))))
    return 0


def _wait(args: argparse.Namespace, settings: Settings) -> int:
    run = _call(settings, lambda client: client.wait(args.run_id, timeout=args.timeout))
    if run.status != "done" or run.total is None:
        print(f"chunksum: run {run.run_id} {run.status}: {run.error}", file=sys.stderr)
        return EXIT_FAILED
    print(_text(run.total))
    return 0


def _cancel(args: argparse.Namespace, settings: Settings) -> int:
    run = _call(settings, lambda client: client.cancel(args.run_id))
    if run.status != "cancelled":
        print(f"run {run.run_id} had already ended: {run.status}")
    else:
        print(f"run {run.run_id} cancelled")
    return 0


def _text(total: int | float) -> str:
    """Return a total as text: repr() refuses ints of over 4300 digits, total_text() doesn't."""
    return total_text(total)[0]


def _json_number(value: int | float | None) -> int | float | str | None:
    """Keep ints and finite floats as JSON numbers; NaN, infinities and huge ints become strings.

    json.dumps() and json.loads() refuse ints of over 4300 digits (CVE-2020-10735 guard).
    """
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, int) and value.bit_length() > _JSON_INT_BITS:
        return _text(value)
    return value


if __name__ == "__main__":
    sys.exit(main())
