"""`chunksum bench`'s options, and what it runs: the workloads, or `--scaling`."""

import argparse
from dataclasses import replace
from pathlib import Path

from app.errors import SettingsError
from app.settings import Settings


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add `chunksum bench`'s options to ``parser``."""
    parser.add_argument("--json", action="store_true", help="print every raw number as JSON")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="worker processes")
    parser.add_argument("--repeat", type=int, default=5, metavar="R", help="runs per workload")
    parser.add_argument(
        "--only", metavar="W1,W3", help="run only these (W1, W1i, W2, W3, W3list, W4..W8, W8f, W9)"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, metavar="F", help="multiply workload sizes by F"
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="instead: chunks/s for 1, 2, 4 and 8 workers (see --counts): CPU- and I/O-bound "
        "chunks, and a file by reference",
    )
    parser.add_argument("--counts", default="1,2,4,8", metavar="1,2,4", help="with --scaling")
    parser.add_argument("--plot", metavar="PNG", help="with --scaling: draw the curve here")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the bench as ``args`` say; return 1 if a chunksum total was wrong."""
    # imported here: the bench's workloads and baselines are for `chunksum bench` alone
    from app.bench.keys import BENCH_PREFIX
    from app.bench.phases import BenchOptions, parse_only, run_bench

    settings = replace(settings, key_prefix=BENCH_PREFIX)
    if args.scaling:
        return _scaling(args, settings)
    options = BenchOptions(
        workers=args.workers,
        repeat=args.repeat,
        only=parse_only(args.only),
        scale=args.scale,
        as_json=args.json,
    )
    return run_bench(options, settings)


def _scaling(args: argparse.Namespace, settings: Settings) -> int:
    from app.bench import scaling
    from app.redis_server import redis_for

    try:
        counts = tuple(int(count) for count in args.counts.split(","))
    except ValueError as exc:
        raise SettingsError(
            f"--counts takes worker counts, e.g. 1,2,4,8, not {args.counts!r}"
        ) from exc
    with redis_for(settings) as settings:
        points = scaling.measure_scaling(
            settings, counts=counts, repeat=args.repeat, scale=args.scale
        )
    print(scaling.render(points, as_json=args.json))
    if args.plot:
        scaling.plot(points, Path(args.plot))
    return 0
