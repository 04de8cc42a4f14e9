"""`chunksum bench`: time chunksum's workloads (W1-W9, W8f) and, in the same run, the baselines.

The run has three phases, so that each measurement has the machine to itself:

1. no workers: the single-process sums, the file workloads' peers (polars, DuckDB...) and
   the Redis floor;
2. ``--workers`` chunksum worker processes: warm-up, then every workload ``--repeat`` times;
3. as many plain arq worker processes: warm-up, then the obvious arq code.

It uses ``--redis-url``/``REDIS_URL``, or else a private Redis it starts and stops, always
under its own key prefix and queue, so a deployment's workers never take its jobs.
"""

import asyncio
import contextlib
import os
import platform
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from app.bench.baselines import (
    ARQ_BASELINES,
    ArqBaseline,
    ArqWorkers,
    measure_arq,
    measure_floor,
    measure_local,
    measure_round_trip,
)
from app.bench.datafiles import (
    FileWorkload,
    write_float_workload,
    write_table_workloads,
    write_text_workload,
)
from app.bench.file_runs import VARIANTS, measure_variant
from app.bench.float_sums import float_sum_ns
from app.bench.peers import measure_peers
from app.bench.report import Report, Results, render
from app.bench.slow_chunks import WORKER_COMMAND, submit_with_io
from app.bench.stream import measure_streams
from app.bench.workloads import (
    RUN_TIMEOUT_S,
    W6_IO_S,
    WORKLOADS,
    Timing,
    Workload,
    bounded,
    build,
    idle_commands_per_s,
    idle_times,
    measure,
    same,
)
from app.connection import close, connect
from app.errors import SettingsError
from app.exact import Total
from app.redis_server import redis_for
from app.settings import Settings
from app.submit import Client
from app.worker_processes import WorkerProcesses

SIZED = ("W1", "W1i", "W2", "W3", "W3list", "W4", "W6")
NAIVE = ("W1", "W1i", "W2", "W3", "W4")
LOCAL = (*NAIVE, "W3list")  # W3list's peers are W3's: the same numbers, as an array
FLOOR = ("W3", "W4")
WARM_UP = range(1, 10_001)
WARM_UP_TIMEOUT_S = 60.0  # includes the worker processes' start
EXIT_WRONG = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchOptions:
    """What to run: how many workers, repeats, which workloads, at what scale."""

    workers: int = 2
    repeat: int = 5
    only: tuple[str, ...] = WORKLOADS
    scale: float = 1.0
    as_json: bool = False

    def __post_init__(self) -> None:
        if self.workers < 1 or self.repeat < 1:
            raise SettingsError(
                f"--workers and --repeat must be at least 1, got {self.workers} and {self.repeat}"
            )
        if not 0 < self.scale <= 1_000:
            raise SettingsError(f"--scale must be in (0, 1000], got {self.scale}; e.g. 0.1")
        if unknown := [name for name in self.only if name not in WORKLOADS]:
            raise SettingsError(
                f"--only names unknown workloads {', '.join(unknown)}; use e.g. W1,W3 "
                f"(known: {','.join(WORKLOADS)})"
            )


def parse_only(text: str | None) -> tuple[str, ...]:
    """Return the workloads that ``--only W1,W8f`` names, in any case (all for None)."""
    if text is None:
        return WORKLOADS
    known = {name.upper(): name for name in WORKLOADS}
    names = (name.strip().upper() for name in text.split(",") if name.strip())
    return tuple(known.get(name, name) for name in names)


def run_bench(options: BenchOptions, settings: Settings) -> int:
    """Run the benchmark, print the table (or JSON), and return 1 if a chunksum result was wrong."""
    with redis_for(settings) as settings:
        report = measure_all(options, settings)
    print(render(report, as_json=options.as_json))
    if report.chunksum_correct():
        return 0
    progress("error: a chunksum total was wrong (see the workloads marked ✗)")
    return EXIT_WRONG


def measure_all(options: BenchOptions, settings: Settings) -> Report:
    """Build the workloads, then run the three phases; see the module docstring."""
    progress(f"building workloads at scale {options.scale:g}")
    sized = {name: build(name, options.scale) for name in options.only if name in SIZED}
    results: Results = {}
    with tempfile.TemporaryDirectory(prefix="chunksum-bench-") as directory:
        files = _file_workloads(Path(directory), options)
        machine = asyncio.run(_baselines(settings, sized, files, options.repeat, results))
        progress(f"starting {options.workers} chunksum workers")
        with WorkerProcesses(options.workers, settings, command=WORKER_COMMAND):
            asyncio.run(_chunksum_phase(settings, sized, files, options, results))
    if any(name in NAIVE or name == "W7" for name in options.only):
        for baseline in ARQ_BASELINES:
            progress(f"starting {options.workers} plain arq workers: {baseline.label}")
            with ArqWorkers(options.workers, settings, baseline.command):
                asyncio.run(_arq_phase(baseline, settings, sized, options, results))
    return Report(machine, asdict(options), in_order(results))


def _file_workloads(directory: Path, options: BenchOptions) -> dict[str, FileWorkload]:
    """Write the files of W8, W8f and W9 that are to run in ``directory`` (each file serves
    both phases); return them by name."""
    files: list[FileWorkload] = []
    if "W8" in options.only:
        progress(f"W8: writing its numbers to {directory}")
        files.append(write_text_workload(directory / "w8.txt", options.scale))
    if "W8f" in options.only:
        progress(f"W8f: writing its numbers to {directory}")
        files.append(write_float_workload(directory / "w8f.txt", options.scale))
    if "W9" in options.only:
        progress(f"W9: writing its table to {directory}, as CSV and as Parquet")
        files += write_table_workloads(directory, options.scale)
    return {file.name: file for file in files}


def in_order(results: Results) -> Results:
    """Return the rows in WORKLOADS order: the file rows' peers are measured in phase 1,
    before W5's; rows of one workload keep the order they were made in."""
    return dict(sorted(results.items(), key=lambda row: WORKLOADS.index(row[0].split()[0])))


def progress(message: str) -> None:
    """Print a progress line to stderr."""
    print(f"chunksum bench: {message}", file=sys.stderr, flush=True)


async def _baselines(
    settings: Settings,
    sized: dict[str, Workload],
    files: dict[str, FileWorkload],
    repeat: int,
    results: Results,
) -> dict[str, Any]:
    """Measure the single-process sums, the files' peers and the Redis floor; describe the
    machine."""
    redis = await connect(settings)
    try:
        for name, workload in sized.items():
            if name in LOCAL:
                progress(f"{name} baselines: local sum{', Redis floor' if name in FLOOR else ''}")
                results.setdefault(name, {})["local"] = await measure_local(workload, repeat)
            if name in FLOOR:
                results[name]["floor"] = await measure_floor(settings, workload, repeat)
            if name in ("W1", "W1i"):
                results[name]["round_trip"] = await measure_round_trip(redis, workload)
        for name, file in files.items():
            results[name] = await measure_peers(file, repeat, progress)
        return await _machine(redis)
    finally:
        await close(redis)


async def _machine(redis: Any) -> dict[str, Any]:
    info = await redis.info("server")
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "redis": info["redis_version"],
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


async def _chunksum_phase(
    settings: Settings,
    sized: dict[str, Workload],
    files: dict[str, FileWorkload],
    options: BenchOptions,
    results: Results,
) -> None:
    async with Client(settings) as client:
        await client.submit(WARM_UP, chunks=4, timeout=WARM_UP_TIMEOUT_S)
        for name in options.only:
            if name in sized:
                progress(f"{name} chunksum ({sized[name].count:,} numbers)")
                timing = await measure_chunksum(client, sized[name], options.repeat)
                results.setdefault(name, {})["chunksum"] = timing
            elif name == "W5":
                results.update(
                    await measure_streams(
                        client, settings, scale=options.scale, repeat=options.repeat, note=progress
                    )
                )
            elif name == "W7":
                progress("W7 chunksum: idle workers")
                results.setdefault("W7", {})["chunksum"] = await measure_idle(
                    client.redis, lambda: submit_one(client), options
                )
            elif name in VARIANTS:
                await _measure_files(client, files, name, options.repeat, results)


async def _measure_files(
    client: Client, files: dict[str, FileWorkload], name: str, repeat: int, results: Results
) -> None:
    """Time each of file workload ``name``'s variants (W8: by reference, then raw bytes)."""
    for variant in VARIANTS[name]:
        file = files[variant.file]
        progress(
            f"{variant.row} chunksum: {file.count:,} numbers from a {file.size_mb:,.0f} MB file"
        )
        timing = await measure_variant(client, variant, file, repeat)
        results.setdefault(variant.row, {})["chunksum"] = timing


async def measure_chunksum(client: Client, workload: Workload, repeat: int) -> Timing:
    """Time chunksum on a sized workload; W6's chunks each first await a simulated I/O."""
    io_s = W6_IO_S if workload.name == "W6" else 0.0

    async def run() -> Total:
        result = await submit_with_io(client, workload.numbers, io_s=io_s, chunks=workload.chunks)
        return result.total

    repeat *= workload.runs_per_repeat
    timing = await measure(
        run,
        lambda total: same(total, workload.expected),
        repeat=repeat,
        idle_max_s=workload.idle_max_s,
    )
    extra: dict[str, float] = {"numbers": workload.count, "chunks": workload.chunks}
    if workload.idle_max_s:
        extra["idle_max_s"] = workload.idle_max_s
    if workload.name == "W4":  # measured on W4's own chunks, as the workers sum them
        extra |= float_sum_ns(workload)
    if io_s:
        extra["serial_loop_s"] = workload.chunks * io_s
    return replace(timing, extra=extra)


async def submit_one(client: Client) -> Total:
    """Submit the single number 1 and return the total: W7's latency probe."""
    return (await client.submit([1], timeout=RUN_TIMEOUT_S)).total


async def measure_idle(
    redis: Any, probe: Callable[[], Awaitable[object]], options: BenchOptions
) -> Timing:
    """Count idle workers' Redis commands, then time one-number probes after idleness."""
    window_s, gap_s, samples = idle_times(options.scale)
    extra = await idle_commands_per_s(redis, window_s, options.workers, settle_s=gap_s)
    timing = await measure(probe, lambda total: same(total, 1), repeat=samples, pause_s=gap_s)
    return replace(timing, extra={**extra, "idle_gap_s": gap_s})


async def _arq_phase(
    baseline: ArqBaseline,
    settings: Settings,
    sized: dict[str, Workload],
    options: BenchOptions,
    results: Results,
) -> None:
    pool = await baseline.open_pool(settings)
    try:
        await bounded(baseline.sums(pool, WARM_UP, 4, None), WARM_UP_TIMEOUT_S)
        for name in options.only:
            if name in NAIVE:
                progress(f"{name} {baseline.label}")
                timing = await measure_arq(pool, baseline.sums, sized[name], options.repeat)
                results[name][baseline.key] = timing
            elif name == "W7":
                progress(f"W7 {baseline.label}: idle workers")
                results["W7"][baseline.key] = await measure_idle(
                    pool, lambda: baseline.sums(pool, range(1, 2), 1, None), options
                )
    finally:
        await pool.aclose()
