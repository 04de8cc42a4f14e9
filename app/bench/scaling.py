"""`chunksum bench --scaling`: throughput as worker processes are added.

Two kinds of chunk: CPU-bound ones (exact sums of float64s, the costliest arithmetic a
worker does) and I/O-bound ones (each first awaits a simulated 50 ms of I/O, as a chunk that
fetched its numbers from elsewhere would). For each worker count it starts that many worker
processes, waits until every one has a heartbeat, and times ``--repeat`` runs of each kind.
CPU-bound throughput can only grow with free cores; I/O-bound throughput grows with the
chunks in flight (``CHUNKSUM_WORKER_MAX_JOBS`` per worker) until the queue protocol is the
limit. The submitter may keep every chunk in flight here (``CHUNKSUM_MAX_IN_FLIGHT`` is
raised to the chunk count): with its default of 64, 50 ms chunks top out near 1,280 a second
whatever the number of workers.
"""

import asyncio
import json
import math
import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from app.bench.slow_chunks import WORKER_COMMAND, submit_with_io
from app.bench.workloads import Workload, measure, random_floats, same, scaled
from app.errors import ChunksumError
from app.exact import Total
from app.settings import Settings
from app.submit import Client
from app.worker_processes import WorkerProcesses

WORKER_COUNTS = (1, 2, 4, 8)
CPU_NUMBERS = 10_000_000  # float64s, in CPU_CHUNKS chunks
CPU_CHUNKS = 100
IO_CHUNKS = 400  # one number each, each chunk awaiting IO_S first
IO_S = 0.05
START_TIMEOUT_S = 60.0  # for every worker process to start and beat


@dataclass(frozen=True, slots=True)
class ScalingPoint:
    """One worker count and kind of chunk: its run times and throughput."""

    kind: str  # "cpu" or "io"
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
    """Time both kinds of chunk with each worker count in ``counts``."""
    floats = random_floats(scaled(CPU_NUMBERS, scale))
    cpu = Workload("cpu", floats, min(CPU_CHUNKS, len(floats)), math.fsum(floats.tolist()))
    io_numbers = range(scaled(IO_CHUNKS, scale))
    io = Workload("io", io_numbers, len(io_numbers), sum(io_numbers))
    # every chunk in flight at once: the submitter's backpressure would cap what is measured
    settings = replace(settings, max_in_flight=max(settings.max_in_flight, len(io_numbers)))
    points: list[ScalingPoint] = []
    for count in counts:
        with WorkerProcesses(count, settings, command=WORKER_COMMAND):
            points += asyncio.run(_measure_with(settings, count, (cpu, io), repeat))
    return points


async def _measure_with(
    settings: Settings, count: int, workloads: tuple[Workload, ...], repeat: int
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

            def check(total: object, workload: Workload = workload) -> bool:
                return same(total, workload.expected)

            timing = await measure(run, check, repeat=repeat)
            if not timing.correct:
                raise ChunksumError(f"{workload.name} with {count} workers: a wrong total")
            points.append(
                ScalingPoint(workload.name, count, timing.times_s, workload.chunks, workload.count)
            )
    return points


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
    for kind, label in (("cpu", "CPU-bound: exact float sums"), ("io", "I/O-bound: 50 ms each")):
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
    for kind in ("cpu", "io"):
        mine = sorted((p for p in points if p.kind == kind), key=lambda p: p.workers)
        for point in mine:
            table.add_row(
                "CPU-bound" if kind == "cpu" else "I/O-bound",
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
