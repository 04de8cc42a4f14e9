"""The `chunksum` command: run, submit, worker, status, result, wait, cancel, runs, workers,
health, dashboard, bench."""

import argparse
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from app import display, interrupts
from app.allocator import tune_allocator
from app.bench import cli as bench_cli
from app.cli_inputs import FileOptions, command_line_input
from app.errors import ChunksumError, WaitTimeoutError
from app.keys import Keys
from app.redis_server import redis_for
from app.run_status import RunStatus, Status
from app.settings import Settings
from app.submit import Client
from app.worker_processes import WorkerProcesses

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
WATCH_REFRESH_S = 0.5
T = TypeVar("T")
Handler = Callable[[argparse.Namespace, Settings], int]


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

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name, help=help_text, description=help_text
        )
        sub.set_defaults(command=handler)
        sub.add_argument("--redis-url", metavar="URL", help="Redis to use (default: $REDIS_URL)")
        return sub

    _add_summing_commands(command)
    _add_run_commands(command)
    _add_cluster_commands(command)
    bench_cli.add_options(command("bench", bench_cli.run, "time chunksum against baselines"))
    return parser


Command = Callable[[str, Handler, str], argparse.ArgumentParser]


def _add_summing_commands(command: Command) -> None:
    """run, submit and worker."""
    run = command(
        "run",
        _run,
        "sum numbers start to finish; with no Redis URL, on a private Redis with local workers",
    )
    _add_input_options(run)
    run.set_defaults(shared=True)  # its local workers see the file: they read it themselves
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local worker processes to start (default: one per CPU with the "
        "private Redis, none with --redis-url/REDIS_URL)",
    )
    submit = command("submit", _submit, "sum numbers on the workers of a Redis")
    _add_input_options(submit)
    submit.add_argument(
        "--shared",
        action="store_true",
        help="the workers see --file PATH too (same machine or shared filesystem): they read "
        "it themselves, in byte ranges",
    )
    add_worker_options(command("worker", run_worker, "run an arq worker for chunk jobs"))


def _add_run_commands(command: Command) -> None:
    """status, result, wait, cancel and runs: what happened to runs."""
    status = command("status", _status, "show a run's state")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--watch", action="store_true", help="show live progress until the run ends, then its state"
    )
    result = command("result", _result, "print a finished run's total")
    wait = command("wait", _wait, "wait for a run to end, then print its total")
    wait.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this long")
    cancel = command("cancel", _cancel, "cancel a run and remove its queued chunks")
    for parser in (status, result, wait, cancel):
        parser.add_argument("run_id", metavar="RUN_ID")
    runs = command("runs", _runs, "list recent runs, newest first")
    runs.add_argument("--limit", type=int, default=20, metavar="N", help="at most N runs")
    runs.add_argument("--json", action="store_true", help="print JSON lines")


def _add_cluster_commands(command: Command) -> None:
    """workers, health and dashboard: who serves the queue."""
    workers = command("workers", _workers, "list live workers (from heartbeats)")
    workers.add_argument("--json", action="store_true", help="print JSON lines")
    command("health", _health, "exit 0 if Redis answers and a live worker serves")
    dashboard = command("dashboard", _dashboard, "serve the live web dashboard")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on")
    dashboard.add_argument("--port", type=int, default=8000, help="port to listen on")
    dashboard.add_argument(
        "--public",
        action="store_true",
        help="let anyone who reaches it view, without a token (beyond 127.0.0.1 one is needed)",
    )
    dashboard.add_argument(
        "--public-metrics", action="store_true", help="serve /metrics without a token"
    )


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
    size.add_argument(
        "--chunk-bytes",
        type=int,
        metavar="N",
        help="a file read by the workers: N bytes per chunk (default: $CHUNKSUM_CHUNK_BYTES)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="fail the run if it takes longer (default: wait)",
    )
    parser.add_argument(
        "--format",
        choices=["lines", "csv", "npy", "parquet"],
        help="--file's format (default: from its extension; .tsv is csv with tabs)",
    )
    parser.add_argument("--column", metavar="NAME|INDEX", help="a CSV or Parquet column")
    parser.add_argument("--delimiter", metavar="CHAR", help="a CSV file's (default: ',')")
    parser.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a CSV file's first line names its columns",
    )
    parser.add_argument(
        "--decimal",
        action="store_true",
        help="sum text as exact decimals (0.1 + 0.2 = 0.3), not as binary floats",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """Add the options of `chunksum worker` to ``parser``."""
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument(
        "--log-format", default="text", choices=["text", "json"], help="json: one object a line"
    )
    parser.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on this port"
    )
    parser.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="HOST", help="address for --metrics-port"
    )


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run `chunksum worker` with ``args`` (see :func:`add_worker_options`) until stopped."""
    from app.worker.serve import serve  # imported here: only a worker loads job code

    serve(settings, args)
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    private = settings.redis_url is None
    with redis_for(settings) as settings, contextlib.ExitStack() as stack:
        workers = args.workers
        if workers is None:
            workers = (os.cpu_count() or 2) if private else 0
        if workers:
            stack.enter_context(WorkerProcesses(workers, settings))
        return _submit(args, settings)


def _submit(args: argparse.Namespace, settings: Settings) -> int:
    show_progress = not args.quiet and sys.stderr.isatty()
    if args.chunk_bytes is not None:
        settings = replace(settings, chunk_bytes=args.chunk_bytes)
    file_options = FileOptions(
        shared=args.shared,
        form=args.format,
        column=args.column,
        delimiter=args.delimiter,
        header=args.header,
    )
    numbers = command_line_input(args.range, args.file, file_options)
    with display.chunk_progress(show_progress) as progress:
        result = _call(
            settings,
            lambda client: client.submit(
                numbers,
                chunks=args.chunks,
                chunk_size=args.chunk_size,
                timeout=args.timeout,
                on_progress=progress,
                decimal=args.decimal,
            ),
        )
    display.print_result(result, as_json=args.json)
    return 0


def _call(settings: Settings, method: Callable[[Client], Awaitable[T]]) -> T:
    """Open a client, await ``method(client)`` in a fresh event loop, close the client."""

    async def call() -> T:
        async with Client(settings) as client:
            return await method(client)

    return interrupts.run(call())


def _status(args: argparse.Namespace, settings: Settings) -> int:
    if args.watch:
        run = _call(settings, lambda client: _watch(client, args.run_id))
    else:
        run = _call(settings, lambda client: client.status(args.run_id))
    display.print_status(run, as_json=args.json)
    return 0


async def _watch(client: Client, run_id: str) -> RunStatus:
    """Show a run's progress until it ends; return it."""
    with display.run_progress(run_id) as update:
        while (run := await client.status(run_id)).status.active:
            update(run)
            with contextlib.suppress(WaitTimeoutError):  # the refresh interval of the display
                return await client.wait(run_id, timeout=WATCH_REFRESH_S)
    return run


def _runs(args: argparse.Namespace, settings: Settings) -> int:
    runs = _call(settings, lambda client: client.recent_runs(args.limit))
    display.print_runs(runs, as_json=args.json)
    return 0


def _workers(args: argparse.Namespace, settings: Settings) -> int:
    workers = _call(settings, lambda client: client.workers())
    display.print_workers(workers, as_json=args.json)
    return 0


def _dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from app.dashboard import serve  # imported here: only the dashboard serves HTTP

    serve(
        settings,
        host=args.host,
        port=args.port,
        public=args.public,
        public_metrics=args.public_metrics,
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
    print(display.text(_call(settings, lambda client: client.result(args.run_id))))
    return 0


def _wait(args: argparse.Namespace, settings: Settings) -> int:
    run = _call(settings, lambda client: client.wait(args.run_id, timeout=args.timeout))
    if run.status is not Status.DONE or run.total is None:
        print(f"chunksum: run {run.run_id} {run.status}: {run.error}", file=sys.stderr)
        return EXIT_FAILED
    print(display.text(run.total))
    return 0


def _cancel(args: argparse.Namespace, settings: Settings) -> int:
    run = _call(settings, lambda client: client.cancel(args.run_id))
    if run.status is not Status.CANCELLED:
        print(f"run {run.run_id} had already ended: {run.status}")
    else:
        print(f"run {run.run_id} cancelled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
