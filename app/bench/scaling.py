"""`chunksum bench --scaling`: throughput as worker processes are added.

Three kinds of chunk: CPU-bound ones (exact sums of float64s, the costliest arithmetic a
worker does), I/O-bound ones (each first awaits a simulated 50 ms of I/O, as a chunk that
fetched its numbers from elsewhere would) and byte ranges of a text file read by reference
(W8's file: each worker reads and parses its own ranges). For each worker count it starts
that many worker processes, waits until every one has a heartbeat, and times ``--repeat``
runs of each kind. CPU-bound throughput, the file's too, can only grow with free cores;
I/O-bound throughput grows with the chunks in flight (``CHUNKSUM_WORKER_MAX_JOBS`` per
worker) until the queue protocol is the limit. The submitter may keep every chunk in flight
here (``CHUNKSUM_MAX_IN_FLIGHT`` is raised to the chunk count): with its default of 64, 50 ms
chunks top out near 1,280 a second whatever the number of workers.
"""

import asyncio
import json
import math
import statistics
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from app.bench.datafiles import FileWorkload, write_text_workload
from app.bench.slow_chunks import WORKER_COMMAND, submit_with_io
from app.bench.workloads import RUN_TIMEOUT_S, Workload, measure, random_floats, same, scaled
from app.errors import ChunksumError
from app.exact import Total
from app.files import TextFile
from app.settings import Settings
from app.submit import Client
from app.worker_processes import WorkerProcesses

WORKER_COUNTS = (1, 2, 4, 8)
CPU_NUMBERS = 10_000_000  # float64s, in CPU_CHUNKS chunks
CPU_CHUNKS = 100
IO_CHUNKS = 400  # one number each, each chunk awaiting IO_S first
IO_S = 0.05
FILE_CHUNKS = 100  # byte ranges of W8's file (10 M ints, 135 MB at scale 1)
START_TIMEOUT_S = 60.0  # for every worker process to start and beat
WARM_UP_RUNS = 2  # untimed, of each kind with each worker count
KINDS = {
    "cpu": "CPU-bound: exact float sums",
    "io": "I/O-bound: 50 ms each",
    "file": "a text file by reference",
}


@dataclass(frozen=True, slots=True)
class ScalingPoint:
    """One worker count and kind of chunk: its run times and throughput."""

    kind: str  # a key of KINDS
    workers: int
    seconds: tuple[float, ...]
    chunks: int
    numbers: int

    @property
    def median_s(self) -> float:
        """Return the median run time."""
        return statistics.median(self.seconds)

    @property
    def chunks_per_s(self) -> float:
        """Return chunks per second at the median run time."""
        return self.chunks / self.median_s


def measure_scaling(
    settings: Settings, *, counts: tuple[int, ...], repeat: int, scale: float
) -> list[ScalingPoint]:
    """Time each kind of chunk with each worker count in ``counts``."""
    floats = random_floats(scaled(CPU_NUMBERS, scale))
    cpu = Workload("cpu", floats, min(CPU_CHUNKS, len(floats)), math.fsum(floats.tolist()))
    io_numbers = range(scaled(IO_CHUNKS, scale))
    io = Workload("io", io_numbers, len(io_numbers), sum(io_numbers))
    # every chunk in flight at once: the submitter's backpressure would cap what is measured
    settings = replace(settings, max_in_flight=max(settings.max_in_flight, len(io_numbers)))
    points: list[ScalingPoint] = []
    with tempfile.TemporaryDirectory(prefix="chunksum-bench-") as directory:
        text = write_text_workload(Path(directory) / "w8.txt", scale)
        for count in counts:
            with WorkerProcesses(count, settings, command=WORKER_COMMAND):
                points += asyncio.run(_measure_with(settings, count, (cpu, io), text, repeat))
    return points


async def _measure_with(
    settings: Settings,
    count: int,
    workloads: tuple[Workload, ...],
    text: FileWorkload,
    repeat: int,
) -> list[ScalingPoint]:
    points = []
    async with Client(settings) as client:
        await _all_beating(client, count)
        for workload in workloads:
            io_s = IO_S if workload.name == "io" else 0.0

            async def run(workload: Workload = workload, io_s: float = io_s) -> Total:
                result = await submit_with_io(
                    client, workload.numbers, io_s=io_s, chunks=workload.chunks
                )
                return result.total

            # untimed: each worker loads what it sums with (numba's float kernel compiles,
            # or loads from its cache, in a background thread on a worker's first big array)
            for _ in range(WARM_UP_RUNS):
                await run()
            points.append(await _point(workload, count, run, repeat))
        points.append(await _file_point(client, count, text, repeat))
    return points


async def _file_point(client: Client, count: int, text: FileWorkload, repeat: int) -> ScalingPoint:
    """Time W8's file by reference in FILE_CHUNKS byte ranges (fewer for a tiny file)."""
    chunks = min(FILE_CHUNKS, text.count)

    async def run() -> Total:
        file = TextFile(str(text.path))
        return (await client.submit(file, chunks=chunks, timeout=RUN_TIMEOUT_S)).total

    await run()  # untimed: each worker imports polars on its first range
    workload = Workload("file", range(text.count), chunks, text.expected)
    return await _point(workload, count, run, repeat)


async def _point(
    workload: Workload, count: int, run: Callable[[], Awaitable[object]], repeat: int
) -> ScalingPoint:
    """Time ``repeat`` runs of ``workload`` with ``count`` workers; raise ChunksumError if a
    total is wrong."""
    timing = await measure(run, lambda total: same(total, workload.expected), repeat=repeat)
    if not timing.correct:
        raise ChunksumError(f"{workload.name} with {count} workers: a wrong total")
    return ScalingPoint(workload.name, count, timing.times_s, workload.chunks, workload.count)


async def _all_beating(client: Client, count: int) -> None:
    """Wait until ``count`` workers have a heartbeat (their start is not timed)."""
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while len(await client.workers()) < count:  # noqa: ASYNC110  # Redis state
                await asyncio.sleep(0.1)
    except TimeoutError as exc:
        raise ChunksumError(
            f"{count} worker processes did not all start within {START_TIMEOUT_S:g} s"
        ) from exc


def plot(points: list[ScalingPoint], path: Path) -> None:
    """Draw chunks/s against worker count, one line per kind, as a PNG at ``path``."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ChunksumError("--plot needs matplotlib: pip install matplotlib") from exc

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 3.6), dpi=120)
    for kind, label in KINDS.items():
        mine = sorted((p for p in points if p.kind == kind), key=lambda p: p.workers)
        axes.plot(
            [p.workers for p in mine], [p.chunks_per_s for p in mine], marker="o", label=label
        )
    counts = sorted({p.workers for p in points})
    axes.set_xscale("log", base=2)
    axes.set_xticks(counts, labels=[str(count) for count in counts])
    axes.set_xlabel("worker processes")
    axes.set_ylabel("chunks per second")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def render(points: list[ScalingPoint], *, as_json: bool) -> str:
    """Return the points as a table, or as JSON lines."""
    if as_json:
        return "\n".join(json.dumps({**asdict(p), "chunks_per_s": p.chunks_per_s}) for p in points)
    table = Table(
        "chunks", "workers", "median (min-max)", "chunks/s", "numbers/s", "vs 1 worker", box=None
    )
    for kind, label in KINDS.items():
        mine = sorted((p for p in points if p.kind == kind), key=lambda p: p.workers)
        for point in mine:
            table.add_row(
                label,
                str(point.workers),
                f"{point.median_s:.3f} s ({min(point.seconds):.3f}-{max(point.seconds):.3f})",
                f"{point.chunks_per_s:,.0f}",
                f"{point.numbers / point.median_s:,.0f}",
                f"x{point.chunks_per_s / mine[0].chunks_per_s:.2f}",
            )
    console = Console(width=120, record=True)
    with console.capture() as captured:
        console.print(table)
    return captured.get()
